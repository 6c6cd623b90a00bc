"""Validation and answer checking (docs/method.md, part 4), on top of a SandboxPool.

Everything that decides a verdict happens here, in the trusted process: static checks,
literal parsing of inputs, answers and outputs, the determinism comparison and the strict
typed equality. The sandbox only ever runs f(*args) and reports a repr, which is parsed
again here and never believed blindly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azr.jobs import CheckJob, Validation, ValidationJob, Verdict
from azr.literals import LiteralError, parse_arguments, parse_literal, same_value, strict_equal
from azr.programs import EntryFunctionRule, ErrorKind, check_program
from azr.tasks import TaskType
from azr_executor.pool import JobFuture, SandboxPool, ShippedCode, make_job

LANES = (0, 1)
STREAM_JOBS = 128  # jobs are handed to the sandbox in chunks this size while later items are still being checked


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 10.0
    output_max_chars: int = 400
    entry_rule: EntryFunctionRule = EntryFunctionRule.TOP_LEVEL
    # f is called this many times in each run, in one process: state that carries across
    # calls (a mutable default, a global counter, a cache of mutable values) changes a later result.
    calls: int = 2


def _error_kind(result: dict[str, Any]) -> ErrorKind:
    try:
        return ErrorKind(result.get("error", "sandbox"))
    except ValueError:
        return ErrorKind.SANDBOX


DEADLINE_MESSAGE = "unfinished at the request's deadline"
MOOT_MESSAGE = "not run: another run of the item failed"


class _Runs:
    """The sandbox runs behind one request, and their results.

    Identical runs (the same program text and arguments, in the same lane) are made once
    and share their result: n solver samples often give the same answer. Once an item has
    failed, the runs that only it still needs are cancelled, so a looping induction answer
    costs one timeout rather than one per hidden input. Runs go to the sandbox in chunks
    while later items are still being planned (on 2 cores the two would otherwise take
    turns). At the deadline, what is unfinished counts as timed out: the caller gets every
    verdict in time, and nothing it waits on is lost."""

    def __init__(self, pool: SandboxPool, limits: Limits):
        self.pool, self.limits = pool, limits
        self._lock = threading.Lock()
        self._index: dict[tuple, int] = {}       # run key -> run
        self._users: list[set[int]] = []         # per run: the items that still need its result
        self._futures: dict[int, JobFuture] = {}  # per run handed to the sandbox
        self._unfinished = 0                      # of those, the runs with no result yet
        self._finished = threading.Event()        # set while _unfinished is 0: one wait a request
        self._cancelled: set[int] = set()
        self._queued: list[tuple[int, dict[str, Any]]] = []
        self.of_item: dict[int, list[int]] = {}  # per item: its runs, in order

    def add(self, item: int, program: str, code: ShippedCode, args: tuple, lane: int | None = None) -> None:
        """Item `item` needs f(*args) of `program`; `lane` None: either lane will do."""
        key = (program, repr(args), lane)
        with self._lock:
            run = self._index.get(key)
            if run is None or run in self._cancelled:
                run = self._index[key] = len(self._users)
                self._users.append(set())
                job = make_job(code, args, run % 2 if lane is None else lane, self.limits.timeout_seconds,
                               self.limits.output_max_chars, self.limits.calls)
                self._queued.append((run, job))
            self._users[run].add(item)
            self.of_item.setdefault(item, []).append(run)
        if len(self._queued) >= STREAM_JOBS:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            queued = [(run, job) for run, job in self._queued if run not in self._cancelled]
            self._queued = []
        if not queued:
            return
        futures = self.pool.submit([job for _, job in queued])
        with self._lock:
            self._futures.update((run, future) for (run, _), future in zip(queued, futures))
            self._unfinished += len(futures)
            self._finished.clear()
        for (run, _), future in zip(queued, futures):
            future.add_done_callback(lambda f, run=run: self._done(run, f))

    def _done(self, run: int, future: JobFuture) -> None:
        result = future.result()
        with self._lock:
            self._unfinished -= 1
            if not self._unfinished:
                self._finished.set()
        if "error" not in result or result.get("cancelled"):
            return
        moot = []
        with self._lock:
            for item in list(self._users[run]):
                for other in self.of_item[item]:
                    self._users[other].discard(item)
                    if not self._users[other] and other not in self._cancelled:
                        self._cancelled.add(other)
                        if other in self._futures:
                            moot.append(self._futures[other])
        self.pool.cancel(moot, MOOT_MESSAGE)

    def results(self, deadline: float | None) -> dict[int, dict[str, Any]]:
        """Every run's result, by run; no later than `deadline` (time.monotonic())."""
        self.flush()
        with self._lock:
            futures = dict(self._futures)
            if not self._unfinished:
                self._finished.set()
        if not self._finished.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
            self.pool.cancel(list(futures.values()), DEADLINE_MESSAGE)
        out = {run: future.result() for run, future in futures.items()}
        moot = {"error": "timeout", "message": MOOT_MESSAGE, "cancelled": True}
        return {run: out.get(run, moot) for run in range(len(self._users))}


def _failed(run: dict[str, Any]) -> bool:
    return "error" in run or "output" not in run


def _carried_state(run: dict[str, Any]) -> str:
    """Why the later calls of one run disagree with its first, or ''."""
    for call, text in enumerate(run.get("again", ()), 2):
        if not same_value(run["output"], text):
            return f"call {call} in one process returned {text[:80]} after {run['output'][:80]}: f keeps state across calls"
    return ""


class Executor:
    def __init__(self, pool: SandboxPool, limits: Limits = Limits()):
        self.pool = pool
        self.limits = limits

    # -- validation of proposals -----------------------------------------------------------------

    def validate(self, jobs: Sequence[ValidationJob], deadline: float | None = None) -> list[Validation]:
        """Every input runs twice, in workers of different lanes (different hash seeds). What
        has not finished at `deadline` (time.monotonic()) counts as timed out."""
        results: list[Validation | None] = [None] * len(jobs)
        runs = _Runs(self.pool, self.limits)
        for n, job in enumerate(jobs):
            checked = check_program(job.program, self.limits.entry_rule)
            if not checked.ok:
                results[n] = Validation(False, error_kind=checked.error_kind, error_message=checked.message)
                continue
            if not job.inputs:
                results[n] = Validation(False, error_kind=ErrorKind.BAD_INPUT, error_message="no input")
                continue
            try:
                arguments = [parse_arguments(text) for text in job.inputs]
                code = ShippedCode.of(checked.compile())
            except LiteralError as exc:
                results[n] = Validation(False, error_kind=ErrorKind.BAD_INPUT, error_message=str(exc))
                continue
            except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # e.g. too many nested blocks
                results[n] = Validation(False, error_kind=ErrorKind.SYNTAX, error_message=str(exc))
                continue
            for args in arguments:
                for lane in LANES:
                    runs.add(n, job.program, code, args, lane)
        outcomes = runs.results(deadline)
        for n, run_ids in runs.of_item.items():
            done = [outcomes[r] for r in run_ids]
            results[n] = self._validation(list(zip(done[0::2], done[1::2])))
        return [r for r in results if r is not None]

    def _validation(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> Validation:
        outputs = []
        moot = None  # a cancelled run says only that another run failed: report that one
        for k, (first, second) in enumerate(pairs):
            failed = sorted((run for run in (first, second) if _failed(run)), key=lambda run: bool(run.get("cancelled")))
            if failed:
                if not failed[0].get("cancelled"):
                    return Validation(False, error_kind=_error_kind(failed[0]),
                                      error_message=f"input {k}: {failed[0].get('message', '')}")
                moot = moot or (k, failed[0])
                continue
            if len(first["output"]) > self.limits.output_max_chars:
                return Validation(False, error_kind=ErrorKind.OUTPUT_TOO_LONG,
                                  error_message=f"input {k}: output repr longer than {self.limits.output_max_chars}")
            try:
                value = parse_literal(first["output"])  # nan, inf and non-literals fail here
                problem = _carried_state(first) or _carried_state(second)
                if problem:
                    return Validation(False, error_kind=ErrorKind.NONDETERMINISTIC, error_message=f"input {k}: {problem}")
                if second["output"] != first["output"] and not strict_equal(value, parse_literal(second["output"])):
                    return Validation(False, error_kind=ErrorKind.NONDETERMINISTIC, error_message=(
                        f"input {k}: two runs returned {first['output'][:80]} and {second['output'][:80]}"))
            except LiteralError as exc:
                return Validation(False, error_kind=ErrorKind.BAD_OUTPUT_TYPE, error_message=str(exc))
            outputs.append(first["output"])
        if moot is not None:
            k, run = moot
            return Validation(False, error_kind=_error_kind(run), error_message=f"input {k}: {run.get('message', '')}")
        return Validation(True, outputs=tuple(outputs))

    # -- checking of answers ---------------------------------------------------------------------

    def check(self, jobs: Sequence[CheckJob], deadline: float | None = None) -> list[Verdict]:
        """What has not finished at `deadline` (time.monotonic()) counts as timed out."""
        results: list[Verdict | None] = [None] * len(jobs)
        runs = _Runs(self.pool, self.limits)
        golds: dict[int, list[Any]] = {}  # per item: the gold value of each of its runs
        compiled: dict[tuple[str, str], Any] = {}  # the n answers to one task share its program
        for n, job in enumerate(jobs):
            try:
                planned = self._plan_check(job, compiled)
            except _Decided as decided:
                results[n] = decided.verdict
                continue
            for program, code, args, gold in planned:
                runs.add(n, program, code, args)
                golds.setdefault(n, []).append(gold)
        outcomes = runs.results(deadline)
        for n, run_ids in runs.of_item.items():
            results[n] = self._check_verdict([outcomes[r] for r in run_ids], golds[n])
        return [r for r in results if r is not None]

    @staticmethod
    def _check_verdict(done: list[dict[str, Any]], golds: list[Any]) -> Verdict:
        moot = None
        for run, gold in zip(done, golds):
            if _failed(run):
                if not run.get("cancelled"):
                    return Verdict(False, _error_kind(run), run.get("message", ""))
                moot = moot or Verdict(False, _error_kind(run), run.get("message", ""))
                continue
            try:
                value = parse_literal(run["output"])
                problem = _carried_state(run)
            except LiteralError as exc:
                return Verdict(False, ErrorKind.BAD_OUTPUT_TYPE, str(exc))
            if problem:
                return Verdict(False, ErrorKind.NONDETERMINISTIC, problem)
            if not strict_equal(value, gold):
                return Verdict(False, ErrorKind.WRONG_ANSWER, f"got {run['output'][:80]}")
        return moot or Verdict(True)

    def _plan_check(self, job: CheckJob, compiled: dict[tuple[str, str], Any]) -> list[tuple[str, ShippedCode, tuple, Any]]:
        """The sandbox runs an item needs as (program, code, args, gold value); raises _Decided
        when the verdict is known without running anything."""
        if job.task_type is TaskType.DEDUCTION:
            gold, predicted = _gold(job.gold_output), _answer(parse_literal, job.answer)
            if strict_equal(predicted, gold):
                raise _Decided(True, ErrorKind.NONE, "")
            raise _Decided(False, ErrorKind.WRONG_ANSWER, "predicted output differs from the gold output")
        if job.task_type is TaskType.ABDUCTION:
            gold, args = _gold(job.gold_output), _answer(parse_arguments, job.answer)
            code = _compiled_once(compiled, job.program, self.limits, "the task's program: ")
            return [(job.program, code, args, gold)]
        code = _compiled_once(compiled, job.answer, self.limits)
        if not job.hidden_inputs or len(job.hidden_inputs) != len(job.hidden_outputs):
            raise _Decided(False, ErrorKind.BAD_INPUT, "induction needs as many hidden outputs as hidden inputs")
        planned = []
        for text, gold in zip(job.hidden_inputs, job.hidden_outputs):
            try:
                planned.append((job.answer, code, parse_arguments(text), _gold(gold)))
            except LiteralError as exc:
                raise _Decided(False, ErrorKind.BAD_INPUT, f"hidden input: {exc}") from None
        return planned


class _Decided(Exception):
    """The verdict is known without running anything."""

    def __init__(self, correct: bool, kind: ErrorKind, message: str):
        super().__init__(message)
        self.verdict = Verdict(correct, kind, message)


def _compiled_once(cache: dict[tuple[str, str], Any], program: str, limits: Limits, context: str = "") -> ShippedCode:
    key = (context, program)
    if key not in cache:
        try:
            cache[key] = _compiled(program, limits, context)
        except _Decided as decided:
            cache[key] = decided
    if isinstance(cache[key], _Decided):
        raise cache[key]
    return cache[key]


def _compiled(program: str, limits: Limits, context: str = "") -> ShippedCode:
    checked = check_program(program, limits.entry_rule)
    if not checked.ok:
        raise _Decided(False, checked.error_kind, context + checked.message)
    try:
        return ShippedCode.of(checked.compile())
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Decided(False, ErrorKind.SYNTAX, f"{context}{exc}") from None


def _answer(parse, text: str) -> Any:
    try:
        return parse(text)
    except LiteralError as exc:
        raise _Decided(False, ErrorKind.BAD_ANSWER, str(exc)) from None


def _gold(text: str) -> Any:
    try:
        return parse_literal(text)
    except LiteralError as exc:
        raise _Decided(False, ErrorKind.BAD_INPUT, f"gold output: {exc}") from None
