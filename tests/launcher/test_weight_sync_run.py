"""`azr run` with `training.weightSync: nccl` on CPUs: a self-play run whose every policy version
reaches the vLLM engine by broadcast from the learner (gloo here; docs/weight-sync.md)."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.learner.conftest import TEST_SPEC

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1500)
def test_every_version_of_a_run_reaches_the_engine_by_broadcast(tmp_path, model_path):
    spec = yaml.safe_load(yaml.safe_dump(TEST_SPEC))
    spec["spec"]["training"]["weightSync"] = "nccl"
    spec["spec"]["proposer"]["engine"] = spec["spec"]["solver"]["engine"] = "vllm"
    spec_file, run_dir = tmp_path / "broadcast.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(spec))
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "run", "-f", str(spec_file), "--steps", "2",
                             "--run-dir", str(run_dir), "--plain"], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    assert [(s["step"], s["policy_version"], s["sync_broadcast"]) for s in steps] == [(1, 1, 1.0), (2, 2, 1.0)]
    proposer_log = (run_dir / "logs" / "proposer.log").read_text()
    assert "policy version 1 loaded from a gloo broadcast" in proposer_log
    assert "policy version 2 loaded from a gloo broadcast" in proposer_log
    learner_log = (run_dir / "logs" / "learner.log").read_text()
    assert learner_log.count("weight broadcast group") == 1  # joined once, reused for version 2
    assert (run_dir / "weights" / "v000002").is_dir()  # written after the broadcast: restarts and resumes load it
