"""Starting real `azr serve` processes for tests, as a user would, and stopping them."""

import os
import subprocess
import sys

import pytest

import azr_rpc as rpc
from azr_launcher.runner import free_port  # noqa: F401  (tests import it from here)

START_TIMEOUT = 600


def start_server(role: str, log_dir, *args: str, env: dict[str, str] | None = None, tls=None):
    """A real `azr serve <role>` process, as a user would start it; returns (process, channel).
    The process's `address` attribute is the host:port it serves on. `env` is added to the
    process's environment; `tls` (an azr_rpc.TLS) is what the returned channel presents."""
    port = free_port()
    log = log_dir / f"{role}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "azr_launcher.cli", "serve", role, *args, "--address", f"127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    proc.address = f"127.0.0.1:{port}"
    channel = rpc.channel(f"127.0.0.1:{port}", tls)
    try:
        rpc.wait_serving(channel, START_TIMEOUT, proc, poll_s=2)
    except rpc.NotServing as exc:
        proc.kill()
        pytest.fail(f"the {role} server is not serving ({exc}):\n{log.read_text()[-4000:]}")
    return proc, channel


def stop_server(proc, channel) -> None:
    channel.close()
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
