"""The embedded model and the transformers engine, with the real SmolLM2 weights."""

import json

import pytest
import torch

from azr.prompts import solve_prompt
from azr.tasks import TaskType, Triplet
from azr_contracts.convert import prompt_to_proto
from azr_generation.engines import Sampling
from azr_generation.server import render_prompt

TASK = Triplet("def f(a, b):\n    return a * b + 1", "3, 4", "13")


def test_embedded_model_is_an_unquantized_hf_folder(model_path):
    config = json.loads((model_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert list(model_path.glob("*.safetensors")) and (model_path / "tokenizer.json").exists()


def test_prompts_render_with_the_chat_template_and_end_in_think(transformers_engine):
    tokenizer = transformers_engine.tokenizer
    ids = render_prompt(tokenizer, prompt_to_proto(solve_prompt(TASK, TaskType.DEDUCTION, format_examples=1)))
    text = tokenizer.decode(ids)
    assert text.rstrip().endswith("<|im_start|>assistant\n<think>")
    assert text.count("<|im_start|>user") == 2  # the worked example and the task


def test_samples_carry_the_log_probs_of_the_model(transformers_engine):
    engine = transformers_engine
    prompt = render_prompt(engine.tokenizer, prompt_to_proto(solve_prompt(TASK, TaskType.DEDUCTION)))
    (group,) = engine.generate([prompt], [Sampling(n=3, temperature=1.0, max_tokens=24, seed=7)])
    assert len(group) == 3
    for completion in group:
        assert len(completion.token_ids) == len(completion.logprobs) > 0
        assert all(lp <= 0 for lp in completion.logprobs)
        # Teacher forcing gives the same log-probabilities: they are the policy's, not the sampler's.
        ids = torch.tensor([prompt + completion.token_ids])
        with torch.inference_mode():
            logits = engine.model(ids).logits[0, len(prompt) - 1:-1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(completion.logprobs), atol=1e-3)


def test_greedy_is_deterministic_and_sampling_is_seeded(transformers_engine):
    engine = transformers_engine
    prompt = render_prompt(engine.tokenizer, prompt_to_proto(solve_prompt(TASK, TaskType.ABDUCTION)))
    greedy = [engine.generate([prompt], [Sampling(n=1, temperature=0.0, max_tokens=16)])[0][0].token_ids for _ in range(2)]
    assert greedy[0] == greedy[1]
    seeded = [engine.generate([prompt], [Sampling(n=2, temperature=1.0, max_tokens=16, seed=3)])[0] for _ in range(2)]
    assert [c.token_ids for c in seeded[0]] == [c.token_ids for c in seeded[1]]


@pytest.mark.parametrize("n", [1, 4])
def test_mixed_sampling_parameters_in_one_call(transformers_engine, n):
    engine = transformers_engine
    prompts = [engine.tokenizer.encode("Hello"), engine.tokenizer.encode("def f(x):")]
    groups = engine.generate(prompts, [Sampling(n=n, max_tokens=4), Sampling(n=1, temperature=0.0, max_tokens=6)])
    assert [len(g) for g in groups] == [n, 1]
    assert all(len(c.token_ids) <= 4 for c in groups[0]) and len(groups[1][0].token_ids) <= 6


def test_dtype_and_memory_share_defaults_follow_the_device(monkeypatch):
    """No GPU here: `auto` is float32 and vLLM's share is of RAM (0.3 unless overridden); a
    given dtype passes through unchanged."""
    from azr_generation.engines import cuda_available, default_memory_fraction, resolve_dtype

    assert not cuda_available()
    assert resolve_dtype("auto") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    monkeypatch.delenv("AZR_VLLM_MEMORY_FRACTION", raising=False)
    assert (default_memory_fraction(False), default_memory_fraction(True)) == (0.3, 0.9)
    monkeypatch.setenv("AZR_VLLM_MEMORY_FRACTION", "0.2")
    assert default_memory_fraction(False) == 0.2


def test_a_cpu_memory_fraction_is_of_the_machine_even_where_the_numa_node_reports_less():
    """vLLM's CPU backend reads its fraction as a share of one NUMA node; ours is of the machine's
    RAM (one dev machine's node reported 20.2 of its 23.5 GiB, and the preset's KV cache vanished)."""
    import psutil
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_cgroup_memory_limit, get_memory_node_info

    from azr_generation.engines import cpu_memory_utilization

    node = get_memory_node_info(get_allowed_cpu_list()[0].numa_node).total_memory
    machine = min(psutil.virtual_memory().total, get_cgroup_memory_limit() or float("inf"))
    assert cpu_memory_utilization(0.1) * node == pytest.approx(0.1 * machine, rel=1e-6)  # the same bytes
    assert cpu_memory_utilization(0.99) == 0.95  # never all of a node
