"""`azr bench executor`: validations per second, ours against the reference's design.

Ours: the full validation path (static checks, literal parsing, two runs in workers of
different hash seeds inside the sandbox, each calling f twice, strict comparison), in gVisor
and process mode.

Baseline, measured in the same run: the AZR reference executor's design, a `pebble`
ProcessPool whose workers `exec` each program and call it twice in the same process,
comparing reprs; no sandbox and no isolation between jobs. A program that overruns the
timeout or kills its worker counts as invalid on both sides, and both sides report how many
programs were valid, timed out and crashed. The reference executor itself (not installed
here) was recorded on this machine at 800-1,100 validations/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass
class Side:
    """One side's figures for one pass over the programs."""

    rate: float        # validations per second
    valid: int
    timeouts: int = 0
    crashes: int = 0   # the worker process died (the reference's pool reports ProcessExpired)


def reference_throughput(items: list[tuple[str, str]], workers: int, timeout: float) -> Side:
    """The reference's pool; a program that overruns `timeout` or kills its worker counts as
    invalid, as the reference executor counts it, and the pass goes on."""
    from pebble import ProcessPool

    with ProcessPool(max_workers=workers) as pool:
        _drain(pool.map(_reference_snippet, items[: workers * 4], timeout=timeout).result())  # warm the pool
        start = time.perf_counter()
        outcomes = _drain(pool.map(_reference_snippet, items, timeout=timeout).result())
        elapsed = time.perf_counter() - start
    assert len(outcomes) == len(items)
    return Side(len(items) / elapsed, sum(o == "valid" for o in outcomes), outcomes.count("timeout"), outcomes.count("crashed"))


def _drain(results) -> list[str]:
    """'valid', 'invalid', 'timeout' or 'crashed' per item, in order."""
    from pebble import ProcessExpired

    outcomes = []
    while True:
        try:
            deterministic, _ = next(results)
            outcomes.append("valid" if deterministic else "invalid")
        except StopIteration:
            return outcomes
        except TimeoutError:  # concurrent.futures' TimeoutError is the builtin one since 3.11
            outcomes.append("timeout")
        except ProcessExpired:
            outcomes.append("crashed")


def ours_throughput(items: list[tuple[str, str]], mode: str, workers: int, timeout: float, batch: int,
                    calls: int = 2, in_flight: int = 1) -> Side:
    """Requests of `batch` validations, `in_flight` at once, as the learner's client sends them
    (one request waits for its slowest run; others keep the sandbox busy meanwhile)."""
    from azr.jobs import ValidationJob
    from azr.programs import ErrorKind
    from azr_executor.engine import Executor, Limits
    from azr_executor.pool import SandboxPool

    validate_items = [ValidationJob(p, (i,)) for p, i in items]
    requests = [validate_items[offset:offset + batch] for offset in range(0, len(validate_items), batch)]
    with SandboxPool(mode, workers=workers) as pool, ThreadPoolExecutor(max(1, in_flight)) as client:
        executor = Executor(pool, Limits(timeout_seconds=timeout, calls=calls))
        executor.validate(validate_items[: workers * 4])  # warm the workers
        start = time.perf_counter()
        results = [r for part in client.map(executor.validate, requests) for r in part]
        elapsed = time.perf_counter() - start
    kinds = [r.error_kind for r in results]
    return Side(len(items) / elapsed, sum(r.valid for r in results), kinds.count(ErrorKind.TIMEOUT), kinds.count(ErrorKind.CRASHED))


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
    from azr_learner.clients import EXECUTOR_BATCH, EXECUTOR_PARALLEL  # what the learner sends

    parser.add_argument("--programs", type=Path, default=DEFAULT_PROGRAMS, help="JSON lines {program, input}")
    parser.add_argument("--repeat", type=int, default=40,
                        help="passes over the file (default 40: 6,040 validations of the default file, a few seconds a "
                             "round, so that starting and draining the sandbox's queue weigh little)")
    parser.add_argument("--workers", type=int, default=4, help="sandbox workers (the reference pool gets one per CPU)")
    parser.add_argument("--sandbox", choices=["gvisor", "process", "both"], default="both")
    parser.add_argument("--batch", type=int, default=EXECUTOR_BATCH,
                        help=f"validations per Validate call (default {EXECUTOR_BATCH}, as the learner's client)")
    parser.add_argument("--in-flight", type=int, default=EXECUTOR_PARALLEL,
                        help=f"Validate calls at once (default {EXECUTOR_PARALLEL}, as the learner's client; 1: one after another)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per program run, both sides (default 10)")
    parser.add_argument("--calls", type=int, default=2, help="calls of f per run on our side (default 2; 1 shows what the second costs)")
    parser.add_argument("--no-baseline", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Rounds interleave the baseline and our modes, so that a noisy neighbour hurts all of them
    alike; the figures are medians over the rounds."""
    items = load_programs(args.programs, args.repeat)
    modes = ["process", "gvisor"] if args.sandbox == "both" else [args.sandbox]
    print(f"programs: {args.programs} ({len(items)} validations), sandbox workers: {args.workers}, "
          f"cpus: {os.cpu_count()}, rounds: {args.rounds}, timeout: {args.timeout:g} s, calls per run: {args.calls}, "
          f"requests: {args.batch} validations, {args.in_flight} in flight")
    sides: dict[str, list[Side]] = {name: [] for name in (["reference"] if not args.no_baseline else []) + modes}
    for round_ in range(args.rounds):
        if not args.no_baseline:
            sides["reference"].append(reference_throughput(items, os.cpu_count() or 2, args.timeout))
        for mode in modes:
            sides[mode].append(ours_throughput(items, mode, max(2, args.workers), args.timeout, args.batch, args.calls,
                                               args.in_flight))
        print(f"round {round_ + 1}: " + "  ".join(f"{k}={v[-1].rate:.0f}/s" for k, v in sides.items()))
    for name, runs in sides.items():
        last = runs[-1]
        print(f"{name}: {last.valid} of {len(items)} valid, {last.timeouts} timed out, {last.crashes} crashed")
    median = {k: statistics.median(side.rate for side in v) for k, v in sides.items()}
    baseline = median.get("reference")
    if baseline:
        print(f"reference_pool_validations_per_s={baseline:.0f}  (pebble pool, no sandbox, no isolation)")
    for mode in modes:
        ratio = f"  {median[mode] / baseline:.2f}x reference" if baseline else ""
        print(f"{mode}_validations_per_s={median[mode]:.0f}{ratio}")
    print(f"validations_per_s={median[modes[-1]]:.0f}")  # gVisor last when both run
    return 0
