"""The learner's executor client across an executor killed in the middle of a batch: the
batch is sent again to the restarted server and every item comes back once, right."""

import signal
import subprocess
import sys
import threading
import time

import pytest

from azr.jobs import ValidationJob
from azr_learner.clients import ExecutorClient
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.gvisor]
SLOW = "def f(n):\n    total = 0\n    for i in range(n):\n        total += i % 7\n    return total"


def serve_executor(port: int, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "azr_launcher.cli", "serve", "executor", "--address", f"127.0.0.1:{port}",
                             "--timeout", "60", "--workers", "2"], stdout=log, stderr=subprocess.STDOUT)


def test_a_batch_in_flight_when_the_executor_dies_completes_once(tmp_path, caplog):
    caplog.set_level("WARNING", logger="azr_learner.clients")
    port = free_port()
    log = open(tmp_path / "executor.log", "w")
    first = serve_executor(port, log)
    client = ExecutorClient(f"127.0.0.1:{port}", timeout=120, retry_seconds=120)
    sizes = [20_000_000 + k for k in range(4)]
    items = [ValidationJob(SLOW, (str(n),)) for n in sizes] + [ValidationJob("def f(x):\n    return x[::-1]", ("'abc'",))]
    expected = [str(n // 7 * 21 + sum(range(n % 7))) for n in sizes] + ["'cba'"]
    results: list = []
    call = threading.Thread(target=lambda: results.extend(client.validate(items)))
    try:
        assert client.validate([ValidationJob("def f(x):\n    return x", ("1",))])[0].valid  # up, and the client connected
        call.start()
        time.sleep(1.5)  # the batch is running in the sandbox: each item loops for seconds
        assert call.is_alive(), "the batch finished before the kill: make the programs slower"
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(1.0)  # down for a moment, as while the runner restarts it
        second = serve_executor(port, log)
        call.join(timeout=240)
        assert not call.is_alive()
        assert [r.valid for r in results] == [True] * 5
        assert [r.outputs[0] for r in results] == expected  # each item once, in order, right
        assert "answered UNAVAILABLE; retrying" in caplog.text  # the kill did land mid-call
        second.terminate()
        second.wait(timeout=60)
    finally:
        client.close()
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
        log.close()
