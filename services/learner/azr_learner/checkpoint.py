"""Checkpoints: everything needed to continue a run exactly, written atomically.

    RUN_DIR/checkpoints/step-000012/
        model/          the weights (safetensors), config and tokenizer: a Hugging Face folder
        optimizer/      DeepSpeed's checkpoint (optimizer state, one part per rank under ZeRO)
        state.json      step, policy version, the three buffers, RNG states, the step's metrics
    RUN_DIR/checkpoints/latest   the name of the newest complete checkpoint

A checkpoint is written into `step-N.partial` and renamed when complete, then `latest` is
replaced; a crash or a full disk at any point leaves the previous checkpoint as `latest`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

STATE = "state.json"
LATEST = "latest"


class CheckpointError(RuntimeError):
    pass


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = checkpoints_dir(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    if not (path / STATE).is_file():
        raise CheckpointError(f"{pointer} names {path.name}, which is not a complete checkpoint")
    return path


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE).read_text())


def torch_rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_torch_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["cpu"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _write_text_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def write_checkpoint(policy, run_dir: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step` (every rank takes part through `policy`); returns its folder."""
    root = checkpoints_dir(run_dir)
    final = root / f"step-{step:06d}"
    partial = root / f"step-{step:06d}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        policy.save_weights(partial / "model")
        policy.save_optimizer(partial / "optimizer")
        _write_text_atomic(partial / STATE, json.dumps({**state, "step": step, "torch_rng": torch_rng_state()}))
        if final.exists():  # the same step checkpointed again (a resumed run stopped at once)
            shutil.rmtree(final)
        os.replace(partial, final)
        _write_text_atomic(root / LATEST, final.name)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        previous = latest_checkpoint(run_dir) if (root / LATEST).exists() else None
        raise CheckpointError(f"cannot write checkpoint {final}: {exc.strerror or exc}; "
                              f"the previous checkpoint ({previous or 'none'}) is intact") from exc
    _prune(root, keep, final)
    return final


def _prune(root: Path, keep: int, newest: Path) -> None:
    complete = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".partial"))
    for old in complete[:-keep]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)
