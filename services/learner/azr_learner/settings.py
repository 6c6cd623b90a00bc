"""The learner's settings: the SelfPlayRun spec, the command line's flags on top (as vLLM's
`EngineArgs.from_cli_args` does). The training hyperparameters stay the spec's
`training` section, which the policy and the driver read as they are."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azr.spec import SelfPlayRun, load_run_or_default


@dataclass(frozen=True)
class LearnerSettings:
    run: SelfPlayRun
    model: str          # the initial policy: an embedded name, a folder or a hub ID
    steps: int          # total steps of the run
    run_dir: Path
    proposers: tuple[str, ...]
    solvers: tuple[str, ...]
    executor: str

    @classmethod
    def from_spec(cls, run: SelfPlayRun, overrides: Mapping[str, Any]) -> LearnerSettings:
        """`overrides` must name run_dir, proposers and executor (where the services are is not
        in the spec); model, steps and solvers fall back to the spec and the proposers."""
        given = {k: v for k, v in overrides.items() if v is not None}
        steps = given.get("steps", run.spec.training.steps)
        if steps < 1:
            raise ValueError(f"steps: must be at least 1, got {steps}")
        proposers = tuple(given["proposers"])
        return cls(run=run, model=given.get("model", run.spec.model.name), steps=steps, run_dir=Path(given["run_dir"]),
                   proposers=proposers, solvers=tuple(given.get("solvers") or proposers), executor=given["executor"])

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> LearnerSettings:
        return cls.from_spec(load_run_or_default(args.file), {"model": args.model, "steps": args.steps, "run_dir": args.run_dir,
                                                              "proposers": args.proposer, "solvers": args.solver,
                                                              "executor": args.executor})
