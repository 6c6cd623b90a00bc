"""The learner end to end: real SmolLM2, real gVisor executor, real gRPC, real DeepSpeed.

- a synchronous run seeds, trains two steps (parameters change, metrics written, checkpoints);
- a run killed with SIGKILL during step 2 resumes from checkpoint 1 and ends in exactly the
  state of the uninterrupted run (buffers, RNG, step numbering, weights);
- an asynchronous run overlaps rollout and update, respects maxPolicyLag, and on SIGTERM
  writes a checkpoint of its last completed step and exits cleanly.
"""

import json
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.learner.conftest import LearnerProcess, write_spec

pytestmark = pytest.mark.slow

REQUIRED = ["reward.deduction.propose", "reward.induction.solve", "valid_rate.abduction", "s_bar.deduction",
            "accuracy.induction", "format_error.abduction.solve", "buffer.deduction", "entropy", "loss", "grad_norm",
            "tokens_generated", "seconds.propose", "seconds.validate", "seconds.monte_carlo", "seconds.solve",
            "seconds.check", "seconds.update", "seconds.sync", "step_seconds",
            "reward.repair.propose", "valid_rate.repair", "buffer.repair"]  # the bug-repair domain is on too


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def checkpoint_state(run_dir, step):
    return json.loads((run_dir / "checkpoints" / f"step-{step:06d}" / "state.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(services, tmp_path_factory, model_path):
    """A synchronous run of two steps, start to end."""
    root = tmp_path_factory.mktemp("sync")
    spec = write_spec(root / "run.yaml")
    run_dir = root / "run"
    learner = LearnerProcess(spec, run_dir, services)
    seen_phases = set()
    while learner.proc.poll() is None:
        status = learner.status()
        if status is not None:
            seen_phases.add(status.phase)
            assert status.total_steps == 2
        time.sleep(1)
    assert learner.wait() == 0, learner.output()
    learner.close()
    return run_dir, spec, seen_phases


def test_a_synchronous_run_trains_and_writes_metrics_and_checkpoints(uninterrupted, model_path):
    run_dir, _, phases = uninterrupted
    lines = metrics(run_dir)
    assert [line["step"] for line in lines] == [0, 1, 2]
    assert lines[0]["phase"] == "seeding" and lines[0]["buffer.deduction"] >= 1
    for line in lines[1:]:
        missing = [k for k in REQUIRED if k not in line]
        assert not missing, missing
        assert line["samples_trained"] > 0 and line["tokens_generated"] > 0
        assert line["dropped_stale"] == 0 and line["max_policy_lag"] == 0  # synchronous: always the current policy
    assert lines[2]["policy_version"] == 2
    assert {"propose", "solve", "update"} <= phases
    state = checkpoint_state(run_dir, 2)
    assert state["step"] == 2 and state["policy_version"] == 2
    assert (run_dir / "checkpoints" / "latest").read_text() == "step-000002"
    base, trained = weights(model_path), weights(run_dir / "checkpoints" / "step-000002" / "model")
    assert set(base) == set(trained)
    assert any(not torch.equal(base[k], trained[k]) for k in base), "the update changed no parameter"
    # The weights the generators were given are the checkpoint's.
    published = weights(run_dir / "weights" / "v000002")
    assert all(torch.equal(published[k], trained[k]) for k in trained)


def test_a_killed_run_resumes_exactly(uninterrupted, services, tmp_path):
    reference_dir, spec, _ = uninterrupted
    run_dir = tmp_path / "run"
    learner = LearnerProcess(spec, run_dir, services)
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 1200
    while not (latest.exists() and latest.read_text() == "step-000001"):
        assert learner.proc.poll() is None, learner.output()
        assert time.monotonic() < deadline, "no checkpoint of step 1"
        time.sleep(0.5)
    time.sleep(3)  # well into step 2
    learner.proc.send_signal(signal.SIGKILL)
    learner.proc.wait()
    learner.close()
    assert not (run_dir / "checkpoints" / "step-000002").exists()

    resumed = LearnerProcess(spec, run_dir, services)
    assert resumed.wait() == 0, resumed.output()
    resumed.close()
    assert "resumed from" in resumed.log.read_text()
    assert [line["step"] for line in metrics(run_dir)] == [0, 1, 2]
    expected, actual = checkpoint_state(reference_dir, 2), checkpoint_state(run_dir, 2)
    assert actual["selfplay"] == expected["selfplay"]  # the three buffers and the loop's RNG
    assert actual["policy_version"] == expected["policy_version"] == 2
    a = weights(reference_dir / "checkpoints" / "step-000002" / "model")
    b = weights(run_dir / "checkpoints" / "step-000002" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run's"


def test_a_finished_run_holds_its_status_until_sigterm(uninterrupted, services, tmp_path):
    """In a StatefulSet an exit is restarted: with --hold-when-done the learner of a finished
    run keeps answering 'done' (the operator then scales the run down) until SIGTERM."""
    import shutil

    reference_dir, spec, _ = uninterrupted
    run_dir = tmp_path / "finished"
    shutil.copytree(reference_dir, run_dir)
    learner = LearnerProcess(spec, run_dir, services, "--hold-when-done")
    try:
        deadline = time.monotonic() + 600
        while (status := learner.status()) is None or status.phase != "done":
            assert learner.proc.poll() is None, learner.output()
            assert time.monotonic() < deadline, "no 'done' from the finished run's learner"
            time.sleep(0.5)
        assert (status.step, status.total_steps) == (2, 2)
        time.sleep(2)
        assert learner.proc.poll() is None, "the learner exited instead of holding"
        learner.proc.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=120) == 0, learner.output()
    finally:
        learner.close()
    assert [line["step"] for line in metrics(run_dir)] == [0, 1, 2]  # nothing trained again


def test_async_mode_overlaps_respects_the_lag_bound_and_checkpoints_on_sigterm(services, tmp_path):
    spec = write_spec(tmp_path / "run.yaml", mode="async", maxPolicyLag=1, checkpointEvery=10, oldLogProbs="engine")
    run_dir = tmp_path / "run"
    learner = LearnerProcess(spec, run_dir, services, "--steps", "6")
    deadline = time.monotonic() + 1500
    while True:
        status = learner.status()
        if status is not None and status.step >= 3:
            break
        assert learner.proc.poll() is None, learner.output()
        assert time.monotonic() < deadline, "the async run did not reach step 3"
        time.sleep(0.5)
    assert status.total_steps == 6 and status.policy_version == status.step
    learner.proc.send_signal(signal.SIGTERM)
    assert learner.wait(timeout=600) == 0, learner.output()
    learner.close()

    lines = {line["step"]: line for line in metrics(run_dir)}
    # The stop finishes an update already running (step 4's rollout may be complete by then),
    # abandons a rollout in flight, and checkpoints the last completed step.
    last = max(lines)
    assert 3 <= last < 6 and sorted(lines) == list(range(last + 1))
    assert (run_dir / "checkpoints" / "latest").read_text() == f"step-{last:06d}"
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step-*")) == [f"step-{last:06d}"]  # none by the cadence
    for step in (1, 2, 3):
        assert lines[step]["max_policy_lag"] <= 1 and lines[step]["dropped_stale"] == 0
    # Overlap: step 2 was rolled out while step 1 trained.
    assert lines[2]["time.rollout_start"] < lines[1]["time.update_end"]
    # The bound: step 3's rollout waited for version 1, the end of step 1's update.
    assert lines[3]["time.rollout_start"] >= lines[1]["time.update_end"]
    assert checkpoint_state(run_dir, last)["policy_version"] == last
