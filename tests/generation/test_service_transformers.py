"""The Generator service in-process over real gRPC, with the transformers engine."""

import grpc
import pytest

from azr.prompts import solve_prompt
from azr.tasks import TaskType, Triplet
from azr_contracts.convert import prompt_to_proto
from azr_contracts.v1 import generator_pb2, generator_pb2_grpc
from azr_generation.server import GeneratorService

TASK = Triplet("def f(s):\n    return s.upper()", "'ab'", "'AB'")


@pytest.fixture
def served(transformers_engine, model_path):
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service = GeneratorService("solver", "smollm2-135m-instruct", 2048)
    generator_pb2_grpc.add_GeneratorServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    service.address = f"127.0.0.1:{port}"  # for the learner's client
    yield service, generator_pb2_grpc.GeneratorStub(channel), str(model_path)
    channel.close()
    server.stop(grace=None)
    if service.batcher:
        service.batcher.close()


def _request(n=2):
    return generator_pb2.GenerateRequest(prompts=[prompt_to_proto(solve_prompt(TASK, TaskType.DEDUCTION))], n=n,
                                         sampling=generator_pb2.SamplingParams(temperature=1.0, top_p=1.0, max_tokens=8))


def test_unavailable_until_the_engine_is_attached_then_serving(served, transformers_engine):
    service, stub, path = served
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(_request(), timeout=30)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert not stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=30).ready
    service.attach(transformers_engine, path)
    reply = stub.Generate(_request(n=3), timeout=120)
    assert len(reply.completions) == 3 and all(len(c.token_ids) == len(c.logprobs) for c in reply.completions)
    status = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=30)
    assert (status.role, status.engine, status.ready) == ("solver", "transformers", True)


def test_an_engine_failure_is_unavailable_and_the_server_recovers(served, transformers_engine, monkeypatch):
    service, stub, path = served
    service.attach(transformers_engine, path)

    def broken(prompts, sampling):
        raise RuntimeError("injected engine failure")

    with monkeypatch.context() as patch:
        patch.setattr(transformers_engine, "generate", broken)
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(_request(), timeout=60)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE and "injected engine failure" in info.value.details()
    assert len(stub.Generate(_request(), timeout=120).completions) == 2  # the next request is served



def test_a_replica_that_loads_from_disk_only_refuses_a_broadcast_and_the_learner_falls_back(served, transformers_engine):
    import torch

    from azr_learner.broadcast import BroadcastError, WeightBroadcaster
    from azr_learner.clients import GeneratorClient

    service, stub, path = served
    service.attach(transformers_engine, path)
    status = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=30)
    assert (status.transfer_backend, status.transfer_ranks) == ("", 0)
    request = generator_pb2.UpdateWeightsRequest(version=1, broadcast=generator_pb2.WeightBroadcast(
        backend="gloo", group="g", master_address="127.0.0.1", master_port=29999, world_size=2, rank_offset=1,
        tensors=[generator_pb2.TensorMeta(name="model.norm.weight", dtype="float32", shape=[576])]))
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "loads weights from disk only" in info.value.details()
    client = GeneratorClient("solver", service.address, retry_seconds=5)
    try:
        with pytest.raises(BroadcastError, match="load from disk only"):
            WeightBroadcaster(lambda: [("model.norm.weight", torch.ones(576))]).send(1, [client])
    finally:
        client.close()
