"""The README's main job, as a user runs it: `azr run -f examples/selfplayrun-cpu.yaml` on the
embedded Qwen2.5-Coder-0.5B. Its promise: tasks proposed, validated and solved from the first
step, and the live output shows them. One step here (the preset runs four)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1500)  # the command's own limit below: Qwen-0.5B's step on 2 cores takes minutes
def test_the_cpu_preset_proposes_valid_tasks_and_solves_some_in_step_one(tmp_path):
    run_dir = tmp_path / "cpu-tiny"
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "run", "-f", str(ROOT / "examples" / "selfplayrun-cpu.yaml"),
                             "--steps", "1", "--run-dir", str(run_dir), "--plain"],
                            capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    step = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert step["step"] == 1
    assert step["valid_rate.deduction"] > 0 and step["valid_rate.abduction"] > 0, step
    assert step["accuracy.deduction"] + step["accuracy.abduction"] > 0, step
    examples = json.loads((run_dir / "examples.jsonl").read_text().splitlines()[0])["examples"]
    assert any(e["kind"] == "valid" for e in examples) and any(e["kind"] in ("correct", "wrong") for e in examples)
    assert " proposed: def f(" in result.stderr  # the plain live output (on stderr) shows what the model wrote
