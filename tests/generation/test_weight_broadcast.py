"""`weightSync: nccl` on CPUs: the learner's broadcaster (rank 0, gloo) into a real `azr serve
proposer` whose vLLM workers receive with azr's gloo engine through vLLM's weight-transfer
calls. NCCL itself needs two GPUs (docs/weight-sync.md says what was run where)."""

import os

import grpc
import pytest
import torch
from safetensors.torch import load_file

from azr_contracts.v1 import generator_pb2, generator_pb2_grpc
from azr_learner.broadcast import WeightBroadcaster, plan_group
from azr_learner.clients import GeneratorClient
from tests.generation.test_generator_service import DEADLINE, _greedy, _perturbed


@pytest.fixture(scope="module")
def stub(vllm_server):
    return generator_pb2_grpc.GeneratorStub(vllm_server)


@pytest.fixture(scope="module")
def client(vllm_process):
    client = GeneratorClient("proposer", vllm_process[0].address, retry_seconds=30)
    yield client
    client.close()


def _weights(folder):
    return [(name, tensor) for file in sorted(folder.glob("*.safetensors")) for name, tensor in load_file(file).items()]


def test_a_group_gives_the_learner_rank_0_and_each_replica_its_workers():
    group = plan_group("gloo", ["a:1", "b:2", "c:3"], [1, 2, 1], port=4000)
    assert (group.offsets, group.world_size, group.members) == ((1, 2, 4), 5, ("a:1", "b:2", "c:3"))
    assert plan_group("gloo", ["a:1"], [1], 4000).name != group.name


def test_broadcast_weights_serve_as_the_same_weights_from_disk(stub, client, model_path, tmp_path):
    status = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=DEADLINE)
    assert (status.transfer_backend, status.transfer_ranks, status.transfer_group) == ("gloo", 1, "")
    before, version = _greedy(stub)
    changed = _perturbed(model_path, tmp_path / "changed", scale=-1.0)
    weights = _weights(changed)
    broadcaster = WeightBroadcaster(lambda: weights)
    assert broadcaster.send(version + 1, [client]) > 0
    by_broadcast, now = _greedy(stub)
    assert now == version + 1 and by_broadcast != before
    group = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=DEADLINE).transfer_group
    assert group == broadcaster.group.name

    # The same weights from disk give the same tokens: every tensor arrived, in its place.
    stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 2, path=str(changed)), timeout=DEADLINE)
    assert _greedy(stub) == (by_broadcast, version + 2)

    # The next version reuses the group; the original weights give the original tokens.
    weights[:] = _weights(model_path)
    broadcaster.send(version + 3, [client])
    assert _greedy(stub) == (before, version + 3)
    assert stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=DEADLINE).transfer_group == group


def _broadcast_request(version, **changes):
    fields = dict(backend="gloo", group="g", master_address="127.0.0.1", master_port=29999, world_size=2, rank_offset=1,
                  tensors=[generator_pb2.TensorMeta(name="model.norm.weight", dtype="float32", shape=[576])])
    fields.update(changes)
    return generator_pb2.UpdateWeightsRequest(version=version, broadcast=generator_pb2.WeightBroadcast(**fields))


@pytest.mark.parametrize("changes, needle", [
    ({"backend": "nccl"}, "receives by gloo"),
    ({"group": ""}, "broadcast.group: empty"),
    ({"master_port": 0}, "master_port"),
    ({"rank_offset": 0}, "rank_offset"),
    ({"rank_offset": 2}, "rank_offset"),
    ({"tensors": []}, "tensors: empty"),
    ({"tensors": [generator_pb2.TensorMeta(name="model.norm.weight", dtype="int64", shape=[576])]}, "dtype"),
    ({"tensors": [generator_pb2.TensorMeta(name="model.norm.weight", dtype="float32", shape=[576])] * 2}, "twice"),
    ({}, "do not match the model: missing"),
])
def test_a_broadcast_this_replica_cannot_join_is_refused_and_nothing_waits(stub, changes, needle):
    version = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=DEADLINE).policy_version
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(_broadcast_request(version + 1, **changes), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and needle in info.value.details()


def test_path_and_broadcast_together_are_refused(stub, model_path):
    request = _broadcast_request(10**6)
    request.path = str(model_path)
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(request, timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "exactly one of path and broadcast" in info.value.details()


def test_validate_only_loads_nothing(stub, model_path):
    before = _greedy(stub)
    request = generator_pb2.UpdateWeightsRequest(version=before[1] + 1, path=str(model_path), validate_only=True)
    assert stub.UpdateWeights(request, timeout=DEADLINE).version == before[1] + 1
    assert _greedy(stub) == before


@pytest.fixture
def policy(model_path):
    """A world-of-one DeepSpeed policy in this process. It sets RANK and WORLD_SIZE here, which
    processes started later by the suite (`azr run`) would inherit and take for a torchrun's:
    the environment is put back afterwards."""
    from azr.spec import TrainingSpec
    from azr_learner.policy import Policy

    environment = dict(os.environ)
    yield Policy(str(model_path), TrainingSpec(zero_stage=0, precision="float32"))
    os.environ.clear()
    os.environ.update(environment)


def test_the_learner_publishes_by_broadcast_writes_the_folder_after_and_falls_back_to_disk(client, stub, policy, tmp_path):
    """The policy's own weights (DeepSpeed, names as save_weights writes them, the tied output
    layer once) through the publisher; a broadcast that cannot be made leaves that version
    and the rest of the run to disk."""
    from azr_learner.publisher import WeightPublisher

    names = [name for name, _ in policy.named_weights()]
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names and len(names) == len(set(names))
    _, version = _greedy(stub)
    with torch.no_grad():
        policy.module.get_input_embeddings().weight.mul_(-1.0)
    publisher = WeightPublisher(tmp_path / "run", policy.save_weights, lambda: [client, client],
                                WeightBroadcaster(policy.named_weights))
    publisher.publish(version + 1)
    assert publisher.broadcasts == 1 and publisher.broadcaster is not None
    by_broadcast = _greedy(stub)
    assert by_broadcast[1] == version + 1
    folder = publisher.folder(version + 1)
    assert folder.is_dir()  # written after the broadcast, for restarts and resumes
    stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 2, path=str(folder)), timeout=DEADLINE)
    assert _greedy(stub)[0] == by_broadcast[0]

    # A tensor the replica does not know: refused before anyone waits, loaded from disk instead.
    named_weights = policy.named_weights
    publisher.broadcaster.weights = lambda: [*named_weights(), ("model.extra.weight", torch.zeros(2))]
    publisher.publish(version + 3)
    assert publisher.broadcaster is None and publisher.broadcasts == 1
    assert _greedy(stub) == (by_broadcast[0], version + 3)
