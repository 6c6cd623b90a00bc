"""Mutual TLS between a run's services (AZR_TLS_DIR), on a real `azr serve executor` process:
the run's certificate gets in; plaintext and a stranger's certificate do not; the plaintext
status port carries health only."""

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import azr_rpc as rpc
from azr_contracts.v1 import executor_pb2, executor_pb2_grpc, learner_pb2, learner_pb2_grpc
from azr_learner.learner import Status
from azr_learner.server import SERVICE as LEARNER
from azr_learner.server import ReadOnlyLearnerService
from tests.services import free_port, start_server, stop_server

pytestmark = pytest.mark.slow
REQUEST = executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(id="a", program="def f(x):\n    return x + 1",
                                                                      inputs=["1"])])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return rpc.make_certificates(tmp_path_factory.mktemp("tls")), rpc.make_certificates(tmp_path_factory.mktemp("stranger"))


@pytest.fixture(scope="module")
def executor(certificates, tmp_path_factory):
    ours, _ = certificates
    status_port = free_port()
    proc, channel = start_server("executor", tmp_path_factory.mktemp("logs"), "--sandbox", "process",
                                 "--status-address", f"127.0.0.1:{status_port}",
                                 env={rpc.TLS_DIR_ENV: str(ours)}, tls=rpc.TLS.from_dir(ours))
    yield proc, channel, status_port
    stop_server(proc, channel)


def _validate(channel):
    return executor_pb2_grpc.ExecutorStub(channel).Validate(REQUEST, timeout=30)


def test_the_runs_certificate_is_served(executor):
    _, channel, _ = executor
    assert list(_validate(channel).results[0].outputs) == ["2"]


@pytest.mark.parametrize("who", ["plaintext", "stranger", "no client certificate"])
def test_anyone_else_is_refused(executor, certificates, who):
    proc, _, _ = executor
    ours, stranger = certificates
    if who == "plaintext":
        channel = grpc.insecure_channel(proc.address)
    elif who == "stranger":
        channel = rpc.channel(proc.address, rpc.TLS.from_dir(stranger))
    else:  # trusts our CA but shows no certificate of its own
        channel = grpc.secure_channel(proc.address, grpc.ssl_channel_credentials((ours / "ca.crt").read_bytes()),
                                      options=[("grpc.ssl_target_name_override", "azr")])
    with channel, pytest.raises(grpc.RpcError) as info:
        _validate(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_status_port_is_plaintext_health_only(executor):
    _, _, status_port = executor
    with grpc.insecure_channel(f"127.0.0.1:{status_port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            _validate(channel)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_learners_status_port_reports_progress_but_cannot_stop_it():
    class Loop:
        status = Status(step=2, total_steps=5)

        def request_stop(self):
            raise AssertionError("the status port must not stop the run")

    address = f"127.0.0.1:{free_port()}"
    server = rpc.status_server(address, health.HealthServicer(), [(ReadOnlyLearnerService(Loop()), LEARNER)])
    server.start()
    try:
        with grpc.insecure_channel(address) as channel:
            stub = learner_pb2_grpc.LearnerStub(channel)
            assert stub.GetStatus(learner_pb2.LearnerStatusRequest(), timeout=10).step == 2
            with pytest.raises(grpc.RpcError) as info:
                stub.Stop(learner_pb2.StopRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        server.stop(grace=None)


def test_a_missing_certificate_file_is_a_clear_error(tmp_path):
    (tmp_path / "tls.crt").write_text("not a certificate")
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "serve", "executor", "--sandbox", "process",
                             "--address", f"127.0.0.1:{free_port()}"],
                            env={"PATH": "/usr/bin:/bin", rpc.TLS_DIR_ENV: str(tmp_path)}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "cannot read tls.key" in result.stderr
