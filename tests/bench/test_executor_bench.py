"""`azr bench executor --programs FILE` on a user's file: programs that loop, crash or raise are
counted on both sides (the reference's pool and ours), and the benchmark finishes (issue 19)."""

import json
import re
import subprocess
import sys

import pytest


@pytest.mark.parametrize("in_flight", ["1", "3"])  # with --batch 1, three requests at once
def test_a_file_with_looping_and_crashing_programs_is_measured_on_both_sides(tmp_path, in_flight):
    programs = tmp_path / "programs.jsonl"
    programs.write_text("".join(json.dumps({"program": p, "input": "3"}) + "\n" for p in (
        "def f(x):\n    return x * 2",
        "def f(x):\n    while True:\n        x += 1",
        "import os\ndef f(x):\n    os._exit(1)",       # kills the reference's worker; refused by our checks
        "def f(x):\n    return 1 // (x - 3)",
    )))
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "bench", "executor", "--programs", str(programs),
                             "--repeat", "1", "--rounds", "1", "--sandbox", "process", "--workers", "2", "--timeout", "1",
                             "--batch", "1", "--in-flight", in_flight],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "reference: 1 of 4 valid, 1 timed out, 1 crashed" in out, out
    assert "process: 1 of 4 valid, 1 timed out, 0 crashed" in out, out
    assert re.search(r"^reference_pool_validations_per_s=\d+", out, re.M)
    assert re.search(r"^process_validations_per_s=\d+  \d+\.\d\dx reference$", out, re.M), out
