"""`azr bench learner --ranks 2`: the learner's update on one rank and on two (torchrun; gloo
on CPUs, NCCL on GPUs), tokens/s of each and their ratio, as issue 20's measurement runs it."""

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_learner_benchmark_compares_two_ranks_with_one(tmp_path):
    figures = tmp_path / "ranks.json"
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "bench", "learner", "--shape", "smollm2-135m",
                             "--precision", "float32", "--ranks", "2", "--samples", "8", "--steps", "1",
                             "--prompt-min", "16", "--prompt-max", "32", "--response-min", "8", "--response-max", "32",
                             "--micro-batch-tokens", "256", "--json", str(figures)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"learner on 1 rank\(s\) +\d+ tok/s", result.stdout)
    assert re.search(r"learner on 2 rank\(s\) +\d+ tok/s", result.stdout)
    ratio = float(re.search(r"ranks_2_over_1=([0-9.]+)", result.stdout).group(1))
    ranks = json.loads(figures.read_text())["ranks"]
    one, two = ranks["1"], ranks["2"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert one["tokens"] == two["tokens"] > 0  # the same samples, split over the ranks
    assert ratio == pytest.approx(two["tokens_per_second"] / one["tokens_per_second"], abs=0.01)
