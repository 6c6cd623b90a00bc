"""A generator replica's settings: the SelfPlayRun spec for its role, the command line's flags
on top (as vLLM's `EngineArgs.from_cli_args` does)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azr.spec import DType, SelfPlayRun, WeightSync, load_run_or_default

ROLES = ("proposer", "solver")


@dataclass(frozen=True)
class GeneratorSettings:
    role: str
    model: str                     # an embedded name, a folder or a hub ID (`azr_models.resolve_model`)
    engine: str                    # vllm | transformers
    dtype: DType                   # may be auto: resolved where the engine starts (`engines.resolve_dtype`)
    max_model_len: int
    memory_fraction: float | None  # None: the engine's default for the device
    seed: int
    weight_sync: WeightSync        # nccl: the engine also receives weights broadcast by the learner

    @classmethod
    def from_spec(cls, run: SelfPlayRun, role: str, overrides: Mapping[str, Any] | None = None) -> GeneratorSettings:
        if role not in ROLES:
            raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        spec = run.spec
        role_spec = spec.proposer if role == "proposer" else spec.solver
        return cls(role=role, model=given.get("model", spec.model.name), engine=given.get("engine", role_spec.engine.value),
                   dtype=DType(given.get("dtype", spec.model.dtype)), max_model_len=given.get("max_model_len", spec.model.max_model_len),
                   memory_fraction=given.get("memory_fraction", role_spec.memory_fraction), seed=given.get("seed", 0),
                   weight_sync=WeightSync(given.get("weight_sync", spec.training.weight_sync)))

    @classmethod
    def from_cli_args(cls, role: str, args: argparse.Namespace) -> GeneratorSettings:
        flags = {name: getattr(args, name, None) for name in ("model", "engine", "dtype", "max_model_len", "memory_fraction", "seed",
                                                           "weight_sync")}
        return cls.from_spec(load_run_or_default(args.file), role, flags)
