"""Checking a folder of new weights against the running model before any engine sees it.

A failed reload can break an engine for good, so a folder whose tensor names or shapes
differ from the model's own files is refused with a message, and the old weights keep serving.
"""

from __future__ import annotations

from pathlib import Path


class WeightsError(ValueError):
    pass


def tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{folder}: no .safetensors files")
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():
                    shapes[name] = tuple(handle.get_slice(name).get_shape())
        except Exception as exc:  # a truncated or foreign file
            raise WeightsError(f"{file}: not a readable safetensors file ({exc})") from None
    return shapes


def check_weights(folder: str, expected: dict[str, tuple[int, ...]] | None) -> Path:
    path = Path(folder)
    if not folder or not path.is_dir():
        raise WeightsError(f"{folder!r} is not a folder")
    shapes = tensor_shapes(path)
    if expected is not None and (details := _mismatch(shapes, expected)):
        raise WeightsError(f"weights in {folder} do not match the model: {details}")
    return path


def _mismatch(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], optional: tuple[str, ...] = ()) -> str:
    """What differs between the tensors sent and the model's own, or "" (`optional` ones may be left out or added)."""
    missing = sorted(set(expected) - set(shapes) - set(optional))
    extra = sorted(set(shapes) - set(expected) - set(optional))
    wrong = sorted(n for n in set(expected) & set(shapes) if expected[n] != shapes[n])
    details = []
    if missing:
        details.append(f"missing {missing[:3]}")
    if extra:
        details.append(f"unexpected {extra[:3]}")
    if wrong:
        details.append(", ".join(f"{n} has shape {list(shapes[n])}, the model {list(expected[n])}" for n in wrong[:3]))
    return "; ".join(details)


DTYPES = ("float32", "bfloat16", "float16")
# A tied output layer shares the embeddings' tensor: a learner need not send it twice.
TIED = ("lm_head.weight",)


def check_broadcast(broadcast, backend: str, ranks: int, expected: dict[str, tuple[int, ...]] | None):
    """An UpdateWeights broadcast (`azr_contracts.v1.WeightBroadcast`) as the engine's `Broadcast`,
    refused with a message when this replica cannot take part in it as sent."""
    from azr_generation.engines import Broadcast

    if not backend:
        raise WeightsError("broadcast: this replica loads weights from disk only (started without weightSync: nccl)")
    if broadcast.backend != backend:
        raise WeightsError(f"broadcast.backend: this replica receives by {backend}, got {broadcast.backend!r}")
    if not broadcast.group:
        raise WeightsError("broadcast.group: empty")
    if not broadcast.master_address:
        raise WeightsError("broadcast.master_address: empty")
    if not 1 <= broadcast.master_port <= 65535:
        raise WeightsError(f"broadcast.master_port: must be between 1 and 65535, got {broadcast.master_port}")
    if not 1 <= broadcast.rank_offset <= broadcast.world_size - ranks:
        raise WeightsError(f"broadcast.rank_offset: this replica's {ranks} ranks from {broadcast.rank_offset} do not fit "
                           f"a group of {broadcast.world_size} whose rank 0 is the learner")
    if not broadcast.tensors:
        raise WeightsError("broadcast.tensors: empty")
    shapes: dict[str, tuple[int, ...]] = {}
    for i, tensor in enumerate(broadcast.tensors):
        if tensor.name in shapes:
            raise WeightsError(f"broadcast.tensors[{i}].name: {tensor.name!r} twice")
        if tensor.dtype not in DTYPES:
            raise WeightsError(f"broadcast.tensors[{i}].dtype: must be one of {', '.join(DTYPES)}, got {tensor.dtype!r}")
        if any(size < 0 for size in tensor.shape):
            raise WeightsError(f"broadcast.tensors[{i}].shape: negative size in {list(tensor.shape)}")
        shapes[tensor.name] = tuple(tensor.shape)
    if expected is not None and (details := _mismatch(shapes, expected, optional=TIED)):
        raise WeightsError(f"broadcast.tensors do not match the model: {details}")
    return Broadcast(broadcast.group, broadcast.master_address, broadcast.master_port, broadcast.world_size,
                     broadcast.rank_offset, tuple(t.name for t in broadcast.tensors), tuple(t.dtype for t in broadcast.tensors),
                     tuple(tuple(t.shape) for t in broadcast.tensors))
