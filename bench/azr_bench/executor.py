"""`azr bench executor`: validations per second, ours against the reference's design.

Ours: the full validation path (static checks, literal parsing, two runs in workers of
different hash seeds inside the sandbox, strict comparison), in gVisor and process mode.

Baseline, measured in the same run: the AZR reference executor's design, a `pebble`
ProcessPool whose workers `exec` each program and call it twice in the same process,
comparing reprs; no sandbox and no isolation between jobs. Its throughput on this
machine was ~770-1060 validations/s when the issue was filed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

DEFAULT_PROGRAMS = Path(__file__).resolve().parents[1] / "data" / "programs.jsonl"


def _reference_snippet(item: tuple[str, str]) -> tuple[bool, str]:
    """One job as the reference runs it: exec, call twice in one process, compare reprs."""
    program, input_text = item
    scope: dict = {}
    try:
        exec(program, scope)  # noqa: S102 - the baseline has no sandbox, which is the point
        first = repr(eval(f"f({input_text})", scope))  # noqa: S307
        second = repr(eval(f"f({input_text})", scope))  # noqa: S307
        return first == second, first
    except BaseException as exc:  # noqa: BLE001
        return False, type(exc).__name__


def reference_throughput(items: list[tuple[str, str]], workers: int, timeout: float) -> float:
    from pebble import ProcessPool

    with ProcessPool(max_workers=workers) as pool:
        list(pool.map(_reference_snippet, items[: workers * 4], timeout=timeout).result())  # warm the pool
        start = time.perf_counter()
        future = pool.map(_reference_snippet, items, timeout=timeout)
        outcomes = list(future.result())
        elapsed = time.perf_counter() - start
    assert len(outcomes) == len(items)
    return len(items) / elapsed


def ours_throughput(items: list[tuple[str, str]], mode: str, workers: int, timeout: float, batch: int) -> tuple[float, int]:
    from azr.selfplay import ValidationJob
    from azr_executor.engine import Executor, Limits
    from azr_executor.pool import SandboxPool

    validate_items = [ValidationJob(p, (i,)) for p, i in items]
    with SandboxPool(mode, workers=workers) as pool:
        executor = Executor(pool, Limits(timeout_seconds=timeout))
        executor.validate(validate_items[: workers * 4])  # warm the workers
        start = time.perf_counter()
        valid = 0
        for offset in range(0, len(validate_items), batch):
            valid += sum(r.valid for r in executor.validate(validate_items[offset:offset + batch]))
        elapsed = time.perf_counter() - start
    return len(items) / elapsed, valid


def load_programs(path: Path, repeat: int) -> list[tuple[str, str]]:
    """The file's programs, `repeat` times; each pass's text differs by a trailing comment so
    that no cache (ours or the interpreter's) can serve a program twice."""
    items = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                record = json.loads(line)
                items.append((record["program"], record["input"]))
    return [(f"{program}\n# pass {k}\n", input_text) for k in range(repeat) for program, input_text in items]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--programs", type=Path, default=DEFAULT_PROGRAMS, help="JSON lines {program, input}")
    parser.add_argument("--repeat", type=int, default=10, help="passes over the file")
    parser.add_argument("--workers", type=int, default=4, help="sandbox workers (the reference pool gets one per CPU)")
    parser.add_argument("--sandbox", choices=["gvisor", "process", "both"], default="both")
    parser.add_argument("--batch", type=int, default=256, help="validations per Validate call")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--no-baseline", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Rounds interleave the baseline and our modes, so that a noisy neighbour hurts all of them
    alike; the figures are medians over the rounds."""
    items = load_programs(args.programs, args.repeat)
    modes = ["process", "gvisor"] if args.sandbox == "both" else [args.sandbox]
    print(f"programs: {args.programs} ({len(items)} validations), sandbox workers: {args.workers}, "
          f"cpus: {os.cpu_count()}, rounds: {args.rounds}")
    rates: dict[str, list[float]] = {name: [] for name in (["reference"] if not args.no_baseline else []) + modes}
    for round_ in range(args.rounds):
        if not args.no_baseline:
            rates["reference"].append(reference_throughput(items, os.cpu_count() or 2, 10.0))
        for mode in modes:
            rate, valid = ours_throughput(items, mode, max(2, args.workers), 10.0, args.batch)
            if valid != len(items):
                print(f"warning: {mode}: only {valid}/{len(items)} programs valid")
            rates[mode].append(rate)
        print(f"round {round_ + 1}: " + "  ".join(f"{k}={v[-1]:.0f}/s" for k, v in rates.items()))
    median = {k: statistics.median(v) for k, v in rates.items()}
    baseline = median.get("reference")
    if baseline:
        print(f"reference_pool_validations_per_s={baseline:.0f}  (pebble pool, no sandbox, no isolation)")
    for mode in modes:
        ratio = f"  {median[mode] / baseline:.2f}x reference" if baseline else ""
        print(f"{mode}_validations_per_s={median[mode]:.0f}{ratio}")
    print(f"validations_per_s={median[modes[-1]]:.0f}")  # gVisor last when both run
    return 0
