"""Packed attention's Flash varlen call, checked on CPU: the real kernel needs CUDA, so a
stand-in with the same signature (one per torch release's spelling) computes causal SDPA per
sequence from the cumulative lengths it is given, and must match the per-sequence path."""

import pytest
import torch
import torch.nn.functional as F

from azr_learner.attention import VarlenCall, packed, packed_attention, register
from azr_learner.loss import token_log_probs
from azr_learner.policy import _compile

LENGTHS = [5, 1, 9, 3]


def _causal_per_sequence(q, k, v, cumulative, scale, enable_gqa):
    """[T, heads, dim] in and out, as Flash's varlen kernel lays them."""
    assert cumulative.dtype == torch.int32 and cumulative[-1] == q.shape[0]
    assert enable_gqa or k.shape[1] == q.shape[1], "grouped heads reached a kernel that cannot take them"
    outputs = []
    for start, end in zip(cumulative[:-1].tolist(), cumulative[1:].tolist()):
        part = (t[start:end].transpose(0, 1) for t in (q, k, v))
        outputs.append(F.scaled_dot_product_attention(*part, is_causal=True, scale=scale, enable_gqa=enable_gqa).transpose(0, 1))
    return torch.cat(outputs)


def kernel_with_window(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                       window_size=(-1, -1), enable_gqa=False):
    assert window_size == (-1, 0) and torch.equal(cu_seq_q, cu_seq_k) and max_q == max_k == max(LENGTHS)
    return _causal_per_sequence(query, key, value, cu_seq_q, scale, enable_gqa)


def kernel_with_is_causal(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False):
    assert is_causal
    return _causal_per_sequence(query, key, value, cu_seq_q, None, False)


@pytest.mark.parametrize("kernel", [kernel_with_window, kernel_with_is_causal])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_the_varlen_call_matches_attention_one_sequence_at_a_time(kernel, kv_heads):
    torch.manual_seed(0)
    total = sum(LENGTHS)
    query = torch.randn(1, 4, total, 8)
    key, value = torch.randn(1, kv_heads, total, 8), torch.randn(1, kv_heads, total, 8)
    scaling = None if kernel is kernel_with_is_causal else 0.3
    with packed(LENGTHS):
        expected, _ = packed_attention(None, query, key, value, None, scaling=scaling)
    got = VarlenCall.of(kernel)(query, key, value, LENGTHS, scaling)
    assert got.shape == expected.shape == (1, total, 4, 8)
    torch.testing.assert_close(got, expected)


def test_the_call_spells_arguments_as_the_kernel_does():
    new, old = VarlenCall.of(kernel_with_window), VarlenCall.of(kernel_with_is_causal)
    assert (new.causal, new.takes_scale, new.takes_gqa) == ({"window_size": (-1, 0)}, True, True)
    assert (old.causal, old.takes_scale, old.takes_gqa) == ({"is_causal": True}, False, False)


def test_whole_layers_compile_once_for_rows_of_any_length_and_match_eager(monkeypatch):
    """The learner's `layers` compile mode on a two-layer model: lengths reach the attention
    from the `packed` block, not as arguments, so rows of new lengths and sequence counts reuse
    the one compiled graph (a recompilation raises), and log-probs match the eager model."""
    import torch._dynamo
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=97, tie_word_embeddings=True, use_cache=False)
    torch.manual_seed(0)
    eager = Qwen2ForCausalLM(config).eval()
    eager.config._attn_implementation = register()
    compiled = Qwen2ForCausalLM(config).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.config._attn_implementation = register()
    torch._dynamo.reset()
    log_probs = _compile(compiled, "layers")

    def run(model, lengths, log_probs_of):
        ids = torch.randint(config.vocab_size, (1, sum(lengths)), generator=torch.Generator().manual_seed(sum(lengths)))
        positions = torch.cat([torch.arange(n) for n in lengths])[None]
        with packed(lengths), torch.no_grad():
            logits = model(input_ids=ids, position_ids=positions).logits
        return log_probs_of(logits[:, :-1], ids[:, 1:])[0]

    rows = [[7, 3, 12], [20, 5], [4, 4, 4, 9, 2]]
    run(compiled, rows[0], log_probs)  # the one compilation
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    for lengths in rows:
        assert torch.allclose(run(compiled, lengths, log_probs), run(eager, lengths, token_log_probs), atol=1e-4)
