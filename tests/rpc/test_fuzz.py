"""Every RPC of every service, fuzzed over real gRPC: random, malformed and oversized requests
get OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED, within their deadline, and the server still
answers afterwards. Requests are drawn from the protobuf descriptors, so a field added to a
contract is fuzzed without touching this file.

The servers are the ones `azr serve` builds (each service's `build_server`), with the real
gVisor sandbox and the real SmolLM2 transformers engine behind them.
"""

import threading

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import azr_rpc as rpc
from azr_executor.engine import Executor, Limits
from azr_executor.server import SERVICE as EXECUTOR
from azr_executor.server import build_server as build_executor
from azr_generation.server import SERVICE as GENERATOR
from azr_generation.server import GeneratorService
from azr_generation.server import build_server as build_generator
from azr_learner.learner import Status
from azr_learner.server import SERVICE as LEARNER
from azr_learner.server import build_server as build_learner

pytestmark = pytest.mark.slow
DEADLINE = 120
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

# Values that sit on the edges of what the services accept, next to arbitrary ones.
TEXTS = st.one_of(st.text(max_size=30), st.sampled_from(
    ["", " ", "1", "'abc'", "[1, 2]", "def f(x):\n    return x", "def f(x):\n    while True: pass",
     "import os\ndef f(x):\n    return os.getcwd()", "\x00", "/", ".", "..", "/proc/self/environ", "user", "system",
     "x" * 200_001]))
INTS = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 2, -1, 64, 65, 4096, 2**31 - 1]))
FLOATS = st.one_of(st.floats(width=32), st.sampled_from([0.0, 1.0, 0.5, -1.0]))


def messages(descriptor, depth: int = 0) -> st.SearchStrategy:
    """Arbitrary messages of a protobuf type: every field optional, repeated fields short."""
    message_class = message_factory.GetMessageClass(descriptor)
    fields = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry or depth > 2:
                continue
            value = messages(field.message_type, depth + 1)
        elif field.type == FieldDescriptor.TYPE_STRING:
            value = TEXTS
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = st.booleans()
        elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            value = FLOATS
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = st.integers(-3, 20)  # proto3 enums are open: unknown numbers decode
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = st.binary(max_size=64)
        else:
            value = INTS if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64) else st.integers(0, 2**31)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: message_class(**kw))


def call(channel: grpc.Channel, service, method: str, payload: bytes) -> grpc.StatusCode:
    """Send raw bytes to service/method; the status code that comes back."""
    send = channel.unary_unary(f"/{service.full_name}/{method}")  # no serializers: bytes as they are
    try:
        send(payload, timeout=DEADLINE)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def still_serving(channel: grpc.Channel) -> bool:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return response.status == health_pb2.HealthCheckResponse.SERVING


def fuzz_method(channel, service, method) -> None:
    """Descriptor-drawn messages, then bytes that are not a message at all."""
    @FUZZ
    @given(messages(method.input_type))
    def well_formed(message):
        code = call(channel, service, method.name, message.SerializeToString())
        assert code in ANSWERS, f"{method.name}({message!r:.300}) -> {code}"

    @FUZZ
    @given(st.binary(min_size=1, max_size=256))
    def garbage(payload):
        code = call(channel, service, method.name, payload)
        assert code in ANSWERS, f"{method.name}({payload!r}) -> {code}"

    well_formed()
    garbage()


def fuzz_service(channel, service) -> None:
    for method in service.methods:
        fuzz_method(channel, service, method)
        assert still_serving(channel)


def oversized(channel, service, limit: int) -> grpc.StatusCode:
    return call(channel, service, service.methods[0].name, b"\n" + b"\xff" * (limit + 16))


@pytest.fixture(scope="module")
def serve():
    """Start a built server, SERVING, on loopback; yield a channel to it."""
    started = []

    def start(built):
        server, port, health_servicer = built[:3]
        server.start()
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        channel = rpc.channel(f"127.0.0.1:{port}", max_message_bytes=512 * 2**20)
        started.append((server, channel))
        return channel

    yield start
    for server, channel in started:
        channel.close()
        server.stop(grace=None)


def test_executor_rpcs_fuzzed(serve, gvisor_pool):
    from azr_executor.server import MAX_MESSAGE_BYTES

    channel = serve(build_executor(Executor(gvisor_pool, Limits(timeout_seconds=2.0)), "127.0.0.1:0", 2))
    fuzz_service(channel, EXECUTOR)
    assert oversized(channel, EXECUTOR, MAX_MESSAGE_BYTES) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert still_serving(channel)


def test_generator_rpcs_fuzzed(serve, transformers_engine, model_path):
    from azr_generation.server import MAX_MESSAGE_BYTES

    service = GeneratorService("solver", "smollm2-135m-instruct", 2048)
    service.attach(transformers_engine, str(model_path))
    channel = serve(build_generator(service, "127.0.0.1:0"))
    try:
        fuzz_service(channel, GENERATOR)
        assert oversized(channel, GENERATOR, MAX_MESSAGE_BYTES) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert still_serving(channel)
        assert service.batcher.version == 0  # no fuzzed UpdateWeights got through
    finally:
        service.batcher.close()


class _Loop:
    """The learner loop as its service sees it: a status, and a stop that is honoured at once."""

    def __init__(self):
        self.status = Status(step=1, total_steps=3, metrics={"reward": 0.5, "nan": float("nan")})
        self.done = threading.Event()

    def request_stop(self):
        self.done.set()


def test_learner_rpcs_fuzzed(serve):
    from azr_learner.server import MAX_MESSAGE_BYTES

    channel = serve(build_learner(_Loop(), "127.0.0.1:0"))
    fuzz_service(channel, LEARNER)
    assert oversized(channel, LEARNER, MAX_MESSAGE_BYTES) == grpc.StatusCode.RESOURCE_EXHAUSTED
