"""The executor's gRPC contract over a real server on loopback."""

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from azr_contracts.v1 import common_pb2, executor_pb2, executor_pb2_grpc
from azr_executor.engine import Executor, Limits
from azr_executor.server import SERVICE_NAME, build_server

DEADLINE = 30


@pytest.fixture(scope="module")
def running(gvisor_pool):
    grpc_server, port, health_servicer, service = build_server(
        Executor(gvisor_pool, Limits(timeout_seconds=2.0)), "127.0.0.1:0", 1)
    grpc_server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel, service
    channel.close()
    grpc_server.stop(grace=None)


@pytest.fixture(scope="module")
def server(running):
    return running[0]


@pytest.fixture(scope="module")
def stub(server):
    return executor_pb2_grpc.ExecutorStub(server)


def test_health_and_reflection(server):
    health = health_pb2_grpc.HealthStub(server).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(server)
    responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=DEADLINE)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert SERVICE_NAME in names and "grpc.health.v1.Health" in names


def test_validate_round_trip(stub):
    request = executor_pb2.ValidateRequest(items=[
        executor_pb2.ValidateItem(id="ok", program="def f(x):\n    return x[::-1]", inputs=["'abc'"]),
        executor_pb2.ValidateItem(id="bad", program="import os\ndef f(x):\n    return x", inputs=["1"]),
    ])
    ok, bad = stub.Validate(request, timeout=DEADLINE).results
    assert (ok.id, ok.valid, list(ok.outputs), ok.error_kind) == ("ok", True, ["'cba'"], common_pb2.ERROR_KIND_UNSPECIFIED)
    assert (bad.valid, bad.error_kind) == (False, common_pb2.ERROR_KIND_FORBIDDEN) and "os" in bad.error_message


def test_check_round_trip(stub):
    request = executor_pb2.CheckRequest(items=[
        executor_pb2.CheckItem(id="d", task_type=common_pb2.TASK_TYPE_DEDUCTION, gold_output="[1]", answer="[1]"),
        executor_pb2.CheckItem(id="a", task_type=common_pb2.TASK_TYPE_ABDUCTION, program="def f(x):\n    return x * 2",
                               gold_output="8", answer="3"),
        executor_pb2.CheckItem(id="i", task_type=common_pb2.TASK_TYPE_INDUCTION, answer="def f(x):\n    return -x",
                               hidden_inputs=["1", "2"], hidden_outputs=["-1", "-2"]),
    ])
    d, a, i = stub.Check(request, timeout=DEADLINE).results
    assert d.correct and i.correct
    assert not a.correct and a.error_kind == common_pb2.ERROR_KIND_WRONG_ANSWER


@pytest.mark.parametrize("request_, needle", [
    (executor_pb2.ValidateRequest(), "at least one item"),
    (executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(program="def f(x):\n    return x")]), "items[0].inputs"),
    (executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(program="x" * 200_001, inputs=["1"])]), "items[0].program"),
    (executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(program="p", inputs=["1"])] * 4097), "limit is 4096"),
])
def test_bad_validate_requests_are_invalid_argument(stub, request_, needle):
    with pytest.raises(grpc.RpcError) as info:
        stub.Validate(request_, timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and needle in info.value.details()


@pytest.mark.parametrize("item, needle", [
    (executor_pb2.CheckItem(answer="1", gold_output="1"), "task_type"),
    (executor_pb2.CheckItem(task_type=common_pb2.TASK_TYPE_DEDUCTION, answer="1"), "gold_output"),
    (executor_pb2.CheckItem(task_type=common_pb2.TASK_TYPE_ABDUCTION, answer="1", gold_output="1"), "program"),
    (executor_pb2.CheckItem(task_type=common_pb2.TASK_TYPE_INDUCTION, answer="def f(x):\n    return x",
                            hidden_inputs=["1"], hidden_outputs=[]), "hidden"),
])
def test_bad_check_requests_are_invalid_argument(stub, item, needle):
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(executor_pb2.CheckRequest(items=[item]), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and needle in info.value.details()


def test_busy_server_answers_resource_exhausted(stub, running):
    """The fixture allows one batch in flight: a second one is refused, not queued."""
    service = running[1]
    slow = executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(
        id="slow", program="def f(x):\n    while True:\n        pass", inputs=["1"])])
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(slow=stub.Validate(slow, timeout=DEADLINE)))
    thread.start()
    for _ in range(500):  # until the slow batch holds the only slot
        if service.inflight:
            break
        time.sleep(0.01)
    assert service.inflight == 1
    quick = executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(id="q", program="def f(x):\n    return x", inputs=["1"])])
    with pytest.raises(grpc.RpcError) as info:
        stub.Validate(quick, timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    thread.join()
    assert outcome["slow"].results[0].error_kind == common_pb2.ERROR_KIND_TIMEOUT
    assert stub.Validate(quick, timeout=DEADLINE).results[0].valid  # and it serves again afterwards


def test_client_deadline_is_honoured(stub):
    """The answer comes before the caller's deadline, what is unfinished then marked timed out."""
    slow = executor_pb2.ValidateRequest(items=[
        executor_pb2.ValidateItem(id="quick", program="def f(x):\n    return x", inputs=["1"]),
        executor_pb2.ValidateItem(id="slow", program="def f(x):\n    while True:\n        pass", inputs=["1"])])
    started = time.monotonic()
    response = stub.Validate(slow, timeout=0.8)
    assert time.monotonic() - started < 0.8
    quick_result, slow_result = response.results
    assert slow_result.error_kind == common_pb2.ERROR_KIND_TIMEOUT and "deadline" in slow_result.error_message
    assert quick_result.valid


def test_serve_executor_as_a_process(tmp_path):
    """`azr serve executor -f RUN.yaml` as a user runs it: healthy, answering, stopped by SIGTERM."""
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = Path(__file__).parents[2] / "examples" / "selfplayrun-cpu.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "azr_launcher.cli", "serve", "executor", "-f", str(spec),
                             "--address", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                time.sleep(0.1)
        stub = executor_pb2_grpc.ExecutorStub(channel)
        reply = stub.Validate(executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(
            id="a", program="def f(x):\n    return x * 3", inputs=["'ab'"])]), timeout=DEADLINE)
        assert list(reply.results[0].outputs) == ["'ababab'"]
    finally:
        channel.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
