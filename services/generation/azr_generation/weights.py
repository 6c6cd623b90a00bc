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
    if expected is None:
        return path
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = sorted(n for n in set(expected) & set(shapes) if expected[n] != shapes[n])
    if missing or extra or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}")
        if extra:
            details.append(f"unexpected {extra[:3]}")
        if wrong:
            details.append(", ".join(f"{n} has shape {list(shapes[n])}, the model {list(expected[n])}" for n in wrong[:3]))
        raise WeightsError(f"weights in {folder} do not match the model: " + "; ".join(details))
    return path
