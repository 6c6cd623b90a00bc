"""The executor's settings: the SelfPlayRun spec, with the command line's flags on top.

`azr serve executor` and `azr exec` both build one `ExecutorSettings` with `from_spec`, in the
manner of vLLM's `EngineArgs.from_cli_args`: a flag that is given wins, the spec fills the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azr.programs import EntryFunctionRule
from azr.spec import SandboxMode, SelfPlayRun, load_run_or_default


@dataclass(frozen=True)
class ExecutorSettings:
    sandbox: SandboxMode | None   # None: gvisor where runsc is on PATH, else process (`pool.default_mode`)
    workers: int
    timeout_seconds: float
    memory_mib: int
    output_max_chars: int
    max_inflight_batches: int
    entry_rule: EntryFunctionRule

    @classmethod
    def from_spec(cls, run: SelfPlayRun, overrides: Mapping[str, Any] | None = None, spec_sandbox: bool = True) -> ExecutorSettings:
        """`overrides`: flag values by field name; None means not given. `spec_sandbox`: take the
        spec's sandbox (false for a run of defaults, where the machine decides)."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        e = run.spec.executor
        sandbox = given.get("sandbox", e.sandbox if spec_sandbox else None)
        return cls(sandbox=SandboxMode(sandbox) if sandbox is not None else None,
                   workers=given.get("workers", e.workers),
                   timeout_seconds=given.get("timeout_seconds", e.timeout_seconds),
                   memory_mib=given.get("memory_mib", e.memory_mib),
                   output_max_chars=given.get("output_max_chars", run.spec.method.output_max_chars),
                   max_inflight_batches=given.get("max_inflight_batches", e.max_inflight_batches),
                   entry_rule=run.spec.method.single_function)

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> ExecutorSettings:
        run_file = getattr(args, "run_file", None)
        flags = {"sandbox": args.sandbox, "workers": args.workers, "timeout_seconds": args.timeout,
                 "memory_mib": args.memory_mib, "output_max_chars": args.output_max_chars,
                 "max_inflight_batches": getattr(args, "max_inflight_batches", None)}
        return cls.from_spec(load_run_or_default(run_file), flags, spec_sandbox=bool(run_file))

    def make_pool_and_limits(self):
        from azr_executor.engine import Limits
        from azr_executor.pool import SandboxPool, default_mode

        pool = SandboxPool(self.sandbox.value if self.sandbox else default_mode(), workers=self.workers, memory_mib=self.memory_mib)
        return pool, Limits(timeout_seconds=self.timeout_seconds, output_max_chars=self.output_max_chars, entry_rule=self.entry_rule)
