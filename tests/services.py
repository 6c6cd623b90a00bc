"""Starting real `azr serve` processes for tests, as a user would, and stopping them."""

import os
import socket
import subprocess
import sys
import time

import azr_rpc as rpc
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(role: str, log_dir, *args: str, env: dict[str, str] | None = None, tls=None):
    """A real `azr serve <role>` process, as a user would start it; returns (process, channel).
    The process's `address` attribute is the host:port it serves on. `env` is added to the
    process's environment; `tls` (an azr_rpc.TLS) is what the returned channel presents."""
    port = free_port()
    log = log_dir / f"{role}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "azr.cli", "serve", role, *args, "--address", f"127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    proc.address = f"127.0.0.1:{port}"
    channel = rpc.channel(f"127.0.0.1:{port}", tls)
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the {role} server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                return proc, channel
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the {role} server did not become healthy:\n{log.read_text()[-4000:]}")
        time.sleep(2)


def stop_server(proc, channel) -> None:
    channel.close()
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
