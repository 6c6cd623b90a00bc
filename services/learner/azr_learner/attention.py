"""Attention over packed rows: every sequence attends causally within itself, nothing more.

A packed micro-batch lays several sequences end to end in one row (`policy.pack_row`).
transformers would express that as a [T, T] block-diagonal mask: T^2 memory, and SDPA's
masked kernels spend the FLOPs of one T-long sequence. Here no mask is built. On GPUs in
bf16/fp16 the whole row goes to Flash Attention's variable-length kernel
(`torch.nn.attention.varlen`, given the cumulative sequence lengths); elsewhere (CPU, fp32)
every sequence gets its own causal SDPA call on its slice of the row. Registered with
transformers as `attn_implementation="azr_packed"`; the lengths come from the enclosing
`with packed(lengths):` block rather than as an argument. That is what lets the learner
torch.compile whole decoder layers: this function stays outside the compiled graphs
(`torch.compiler.disable`), so the lengths, Python ints that change with every micro-batch,
never reach Dynamo's guards and cause no recompilation.
`AZR_PACKED_ATTENTION=per_sequence` forces the second path (for benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "azr_packed"

_current = threading.local()


@contextlib.contextmanager
def packed(lengths: Sequence[int]) -> Iterator[None]:
    """The sequence lengths of the row that forward passes inside this block work on."""
    previous = getattr(_current, "lengths", None)
    _current.lengths = tuple(lengths)
    try:
        yield
    finally:
        _current.lengths = previous


@torch.compiler.disable
def packed_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask,
                     dropout: float = 0.0, scaling: float | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """query [1, heads, T, dim], key and value [1, kv_heads, T, dim] -> [1, T, heads, dim]."""
    lengths = getattr(_current, "lengths", None) or [query.shape[2]]
    assert sum(lengths) == query.shape[2] and attention_mask is None, "a packed row, unpadded"
    if _varlen is not None and query.is_cuda and query.dtype in (torch.bfloat16, torch.float16) and dropout == 0.0:
        return _varlen(query, key, value, lengths, scaling), None
    gqa = query.shape[1] != key.shape[1]
    outputs, start = [], 0
    for n in lengths:
        end = start + n
        outputs.append(F.scaled_dot_product_attention(query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                                                      dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=gqa))
        start = end
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return out.transpose(1, 2).contiguous(), None


@dataclass(frozen=True)
class VarlenCall:
    """torch's Flash varlen kernel and how this torch's release spells its arguments: causality
    is `is_causal=True` in some releases and `window_size=(-1, 0)` in others; `scale` and
    `enable_gqa` (grouped-query heads without copying keys and values) are not in every one."""

    kernel: Callable
    causal: dict
    takes_scale: bool
    takes_gqa: bool

    @classmethod
    def of(cls, kernel: Callable) -> VarlenCall:
        parameters = inspect.signature(kernel).parameters
        causal = {"is_causal": True} if "is_causal" in parameters else {"window_size": (-1, 0)}
        return cls(kernel, causal, "scale" in parameters, "enable_gqa" in parameters)

    def __call__(self, query, key, value, lengths: Sequence[int], scaling: float | None) -> torch.Tensor:
        """query [1, heads, T, dim], key and value [1, kv_heads, T, dim] -> [1, T, heads, dim]."""
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, heads, dim]
        options = dict(self.causal)
        if self.takes_scale:
            options["scale"] = scaling
        if k.shape[1] != q.shape[1]:  # grouped-query attention: one key/value head per group of query heads
            if self.takes_gqa:
                options["enable_gqa"] = True
            else:
                groups = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        cumulative = _cumulative_lengths(tuple(lengths), q.device)
        longest = max(lengths)
        return self.kernel(q, k, v, cumulative, cumulative, longest, longest, **options).unsqueeze(0)


@functools.lru_cache(maxsize=4)
def _cumulative_lengths(lengths: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """[0, l0, l0+l1, ...] on the device, once per micro-batch rather than once per layer."""
    return torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=device)


def _load_varlen() -> VarlenCall | None:
    if os.environ.get("AZR_PACKED_ATTENTION", "auto") == "per_sequence":
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return VarlenCall.of(varlen_attn)


_varlen = _load_varlen()


def _no_mask(*args, **kwargs) -> None:
    return None


def register() -> str:
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, _no_mask)
    return NAME
