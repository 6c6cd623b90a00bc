"""`azr exec validate|check FILE.jsonl` and the arguments of `azr serve executor`.

Both go through the same sandbox path as the server. Input lines are JSON objects (extra
keys are ignored); a malformed line stops the command before anything runs, naming the line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from azr_rpc.serving import add_status_address_argument

CHUNK = 512  # items per sandbox batch


def _add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults come from the SelfPlayRun spec (given, else the spec's own defaults); a flag overrides.
    parser.add_argument("--sandbox", choices=["gvisor", "process"], default=None,
                        help="isolation (default: gvisor when runsc is on PATH, else process)")
    parser.add_argument("--workers", type=int, help="long-lived workers in the sandbox, >= 2 (spec: 4)")
    parser.add_argument("--timeout", type=float, help="wall-clock seconds per run (spec: 10)")
    parser.add_argument("--memory-mib", type=int, help="memory per worker on top of the interpreter (spec: 512)")
    parser.add_argument("--output-max-chars", type=int, help="longest accepted output repr (spec: 400)")


def add_exec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["validate", "check"])
    parser.add_argument("file", help="JSON lines; - for standard input")
    parser.add_argument("--spec", dest="run_file", metavar="RUN.yaml", help="a SelfPlayRun: executor settings come from it")
    _add_sandbox_arguments(parser)


def add_serve_executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", dest="run_file", metavar="RUN.yaml", help="a SelfPlayRun: settings come from its spec")
    parser.add_argument("--address", default="127.0.0.1:50051", help="host:port to bind (loopback by default)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: off)")
    add_status_address_argument(parser)
    parser.add_argument("--max-inflight-batches", type=int, help="batches running at once, more are refused (spec: 8)")
    _add_sandbox_arguments(parser)


class InputError(ValueError):
    pass


def read_lines(path: str) -> list[dict[str, Any]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    records, problems = [], []
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                records.append((number, record))
            except ValueError as exc:
                problems.append(f"line {number}: {exc}")
    if problems:
        raise InputError("\n".join(problems))
    return records


def _require(number: int, record: dict[str, Any], key: str, kind: type | tuple[type, ...] = str) -> Any:
    if key not in record:
        raise InputError(f"line {number}: missing key {key!r}")
    if not isinstance(record[key], kind):
        raise InputError(f"line {number}: {key!r} must be {getattr(kind, '__name__', kind)}")
    return record[key]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _validate_items(records: Iterable[tuple[int, dict[str, Any]]]):
    """(id, job) per line."""
    from azr.jobs import ValidationJob

    return [(str(r.get("id", n)), ValidationJob(_require(n, r, "program"), (_require(n, r, "input"),))) for n, r in records]


def _check_items(records: Iterable[tuple[int, dict[str, Any]]]):
    """(id, job) per line."""
    from azr.jobs import CheckJob
    from azr.tasks import TaskType

    items = []
    for n, r in records:
        try:
            task_type = TaskType(_require(n, r, "task_type"))
        except ValueError:
            raise InputError(f"line {n}: task_type must be abduction, deduction or induction") from None
        answer = _require(n, r, "answer")
        if task_type is TaskType.INDUCTION:
            hidden_in = _require(n, r, "hidden_inputs", list)
            hidden_out = _require(n, r, "hidden_outputs", list)
            if len(hidden_in) != len(hidden_out) or not all(isinstance(x, str) for x in hidden_in + hidden_out):
                raise InputError(f"line {n}: hidden_inputs and hidden_outputs must be lists of strings of equal length")
            job = CheckJob(task_type, answer, hidden_inputs=tuple(hidden_in), hidden_outputs=tuple(hidden_out))
        else:
            program = _require(n, r, "program") if task_type is TaskType.ABDUCTION else str(r.get("program", ""))
            job = CheckJob(task_type, answer, program, _require(n, r, "gold_output"))
        items.append((str(r.get("id", n)), job))
    return items


def run_exec(args: argparse.Namespace) -> int:
    from azr.spec import SpecError
    from azr_executor.engine import Executor
    from azr_executor.pool import SandboxError
    from azr_executor.settings import ExecutorSettings

    try:
        records = read_lines(args.file)
        items = _validate_items(records) if args.action == "validate" else _check_items(records)
    except (InputError, OSError) as exc:
        print(f"azr exec {args.action}: {exc}", file=sys.stderr)
        return 2
    try:
        pool, limits = ExecutorSettings.from_cli_args(args).make_pool_and_limits()
    except SpecError as exc:
        print(f"azr exec: {exc}", file=sys.stderr)
        return 2
    except SandboxError as exc:
        print(f"azr exec: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout
    with pool:
        executor = Executor(pool, limits)
        for chunk in _chunks(items, CHUNK):
            ids, jobs = [i for i, _ in chunk], [j for _, j in chunk]
            if args.action == "validate":
                for i, r in zip(ids, executor.validate(jobs)):
                    out.write(json.dumps({"id": i, "valid": r.valid, "output": r.outputs[0] if r.outputs else None,
                                          "error_kind": None if r.valid else r.error_kind.value}) + "\n")
            else:
                for i, r in zip(ids, executor.check(jobs)):
                    out.write(json.dumps({"id": i, "correct": r.correct,
                                          "error_kind": None if r.correct else r.error_kind.value}) + "\n")
            out.flush()
    return 0
