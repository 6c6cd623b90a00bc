"""One converted model, one transformers engine and one vLLM server for the whole session."""

import os
import socket
import subprocess
import sys
import time

import grpc
import pytest
from azr_generation.models import ensure_embedded_model
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT = 600


@pytest.fixture(scope="session")
def model_path():
    return ensure_embedded_model()


@pytest.fixture(scope="session")
def transformers_engine(model_path):
    from azr_generation.engines import TransformersEngine

    return TransformersEngine(str(model_path), "float32", 2048)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_server(model_path, tmp_path_factory):
    """A real `azr serve proposer` process with the vLLM engine, as a user would start it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "azr.cli", "serve", "proposer", "--engine", "vllm",
                                 "--model", str(model_path), "--max-model-len", "2048", "--address", f"127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the vLLM server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                break
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the vLLM server did not become healthy:\n{log.read_text()[-4000:]}")
        time.sleep(2)
    yield channel
    channel.close()
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
