"""Validation and answer checking (docs/method.md, part 4), on top of a SandboxPool.

Everything that decides a verdict happens here, in the trusted process: static checks,
literal parsing of inputs, answers and outputs, the determinism comparison and the strict
typed equality. The sandbox only ever runs f(*args) and reports a repr, which is parsed
again here and never believed blindly.
"""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from azr_executor.pool import SandboxPool, make_job

from azr.literals import LiteralError, parse_arguments, parse_literal, strict_equal
from azr.programs import EntryFunctionRule, ErrorKind, check_program
from azr.tasks import TaskType

LANES = (0, 1)
STREAM_JOBS = 32  # jobs are handed to the sandbox in chunks this size while later items are still being checked


@dataclass
class ValidateItem:
    id: str
    program: str
    inputs: list[str]


@dataclass
class ValidateResult:
    id: str
    valid: bool
    outputs: list[str] = field(default_factory=list)
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


@dataclass
class CheckItem:
    id: str
    task_type: TaskType
    answer: str
    program: str = ""
    gold_output: str = ""
    hidden_inputs: list[str] = field(default_factory=list)
    hidden_outputs: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    id: str
    correct: bool
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 10.0
    output_max_chars: int = 400
    entry_rule: EntryFunctionRule = EntryFunctionRule.TOP_LEVEL


def _error_kind(result: dict[str, Any]) -> ErrorKind:
    try:
        return ErrorKind(result.get("error", "sandbox"))
    except ValueError:
        return ErrorKind.SANDBOX


class DeadlineExceeded(TimeoutError):
    """The caller's deadline passed before every job had a result."""


def _results(futures: list, deadline: float | None) -> list[dict[str, Any]]:
    """Wait for the sandbox's results, no later than `deadline` (time.monotonic())."""
    out = []
    for future in futures:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            out.append(future.result(timeout=timeout))
        except FutureTimeout:
            raise DeadlineExceeded(f"{len(futures) - len(out)} of {len(futures)} runs unfinished at the deadline") from None
    return out


class Executor:
    def __init__(self, pool: SandboxPool, limits: Limits = Limits()):
        self.pool = pool
        self.limits = limits

    def _job(self, code: Any, args: tuple, lane: int) -> dict[str, Any]:
        return make_job(code, args, lane, self.limits.timeout_seconds, self.limits.output_max_chars)

    def _stream(self, pending: list[dict[str, Any]], futures: list, force: bool = False) -> None:
        """Hand queued jobs to the sandbox, so that it runs them while this thread checks the
        next items (on a 2-core machine the two would otherwise take turns)."""
        if pending and (force or len(pending) >= STREAM_JOBS):
            futures += self.pool.submit(pending)
            pending.clear()

    # -- validation of proposals -----------------------------------------------------------------

    def validate(self, items: list[ValidateItem], deadline: float | None = None) -> list[ValidateResult]:
        """Every input runs twice, in workers of different lanes (different hash seeds).
        Raises DeadlineExceeded if `deadline` (time.monotonic()) passes first."""
        results: list[ValidateResult | None] = [None] * len(items)
        jobs: list[dict[str, Any]] = []
        futures: list = []
        owners: list[tuple[int, int]] = []  # (item index, input index) per pair of jobs
        for n, item in enumerate(items):
            checked = check_program(item.program, self.limits.entry_rule)
            if not checked.ok:
                results[n] = ValidateResult(item.id, False, error_kind=checked.error_kind, error_message=checked.message)
                continue
            if not item.inputs:
                results[n] = ValidateResult(item.id, False, error_kind=ErrorKind.BAD_INPUT, error_message="no input")
                continue
            try:
                arguments = [parse_arguments(text) for text in item.inputs]
                code = checked.compile()
            except LiteralError as exc:
                results[n] = ValidateResult(item.id, False, error_kind=ErrorKind.BAD_INPUT, error_message=str(exc))
                continue
            except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # e.g. too many nested blocks
                results[n] = ValidateResult(item.id, False, error_kind=ErrorKind.SYNTAX, error_message=str(exc))
                continue
            for k, args in enumerate(arguments):
                jobs += [self._job(code, args, lane) for lane in LANES]
                owners.append((n, k))
            self._stream(jobs, futures)
        self._stream(jobs, futures, force=True)
        outcomes = _results(futures, deadline)
        per_item: dict[int, list[tuple[int, dict[str, Any], dict[str, Any]]]] = {}
        for (n, k), first, second in zip(owners, outcomes[0::2], outcomes[1::2]):
            per_item.setdefault(n, []).append((k, first, second))
        for n, runs in per_item.items():
            results[n] = self._verdict(items[n].id, sorted(runs, key=lambda r: r[0]))
        return [r for r in results if r is not None]

    def _verdict(self, item_id: str, runs: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> ValidateResult:
        outputs = []
        for k, first, second in runs:
            for run in (first, second):
                if "error" in run or "output" not in run:
                    return ValidateResult(item_id, False, error_kind=_error_kind(run),
                                          error_message=f"input {k}: {run.get('message', '')}")
            if len(first["output"]) > self.limits.output_max_chars:
                return ValidateResult(item_id, False, error_kind=ErrorKind.OUTPUT_TOO_LONG,
                                      error_message=f"input {k}: output repr longer than {self.limits.output_max_chars}")
            try:
                a = parse_literal(first["output"])
                # The same text is the same value; different text (set or dict order) is compared as values.
                b = a if second["output"] == first["output"] else parse_literal(second["output"])
            except LiteralError as exc:
                return ValidateResult(item_id, False, error_kind=ErrorKind.BAD_OUTPUT_TYPE, error_message=str(exc))
            if not strict_equal(a, b):
                return ValidateResult(item_id, False, error_kind=ErrorKind.NONDETERMINISTIC,
                                      error_message=f"input {k}: two runs returned {first['output'][:80]} and {second['output'][:80]}")
            outputs.append(first["output"])
        return ValidateResult(item_id, True, outputs=outputs)

    # -- checking of answers ---------------------------------------------------------------------

    def check(self, items: list[CheckItem], deadline: float | None = None) -> list[CheckResult]:
        results: list[CheckResult | None] = [None] * len(items)
        jobs: list[dict[str, Any]] = []
        futures: list = []
        expected: list[tuple[int, Any]] = []   # (item index, gold value) per job
        for n, item in enumerate(items):
            try:
                planned = self._plan_check(item)
            except _Verdict as verdict:
                results[n] = CheckResult(item.id, verdict.correct, verdict.kind, verdict.message)
                continue
            for code, args, gold in planned:
                jobs.append(self._job(code, args, len(expected) % 2))
                expected.append((n, gold))
            self._stream(jobs, futures)
        self._stream(jobs, futures, force=True)
        outcomes = _results(futures, deadline)
        failures: dict[int, CheckResult] = {}
        for (n, gold), run in zip(expected, outcomes):
            if n in failures:
                continue
            item_id = items[n].id
            if "error" in run or "output" not in run:
                failures[n] = CheckResult(item_id, False, _error_kind(run), run.get("message", ""))
                continue
            try:
                value = parse_literal(run["output"])
            except LiteralError as exc:
                failures[n] = CheckResult(item_id, False, ErrorKind.BAD_OUTPUT_TYPE, str(exc))
                continue
            if not strict_equal(value, gold):
                failures[n] = CheckResult(item_id, False, ErrorKind.WRONG_ANSWER, f"got {run['output'][:80]}")
        for n, _ in expected:
            if results[n] is None:
                results[n] = failures.get(n) or CheckResult(items[n].id, True)
        return [r for r in results if r is not None]

    def _plan_check(self, item: CheckItem) -> list[tuple[Any, tuple, Any]]:
        """The sandbox runs an item needs as (code, args, gold value); raises _Verdict when
        the verdict is known without running anything."""
        if item.task_type is TaskType.DEDUCTION:
            gold, predicted = _gold(item.gold_output), _answer(parse_literal, item.answer)
            if strict_equal(predicted, gold):
                raise _Verdict(True, ErrorKind.NONE, "")
            raise _Verdict(False, ErrorKind.WRONG_ANSWER, "predicted output differs from the gold output")
        if item.task_type is TaskType.ABDUCTION:
            gold, args = _gold(item.gold_output), _answer(parse_arguments, item.answer)
            return [(_compiled(item.program, self.limits, "the task's program: "), args, gold)]
        code = _compiled(item.answer, self.limits)
        if not item.hidden_inputs or len(item.hidden_inputs) != len(item.hidden_outputs):
            raise _Verdict(False, ErrorKind.BAD_INPUT, "induction needs as many hidden outputs as hidden inputs")
        planned = []
        for text, gold in zip(item.hidden_inputs, item.hidden_outputs):
            try:
                planned.append((code, parse_arguments(text), _gold(gold)))
            except LiteralError as exc:
                raise _Verdict(False, ErrorKind.BAD_INPUT, f"hidden input: {exc}") from None
        return planned


class _Verdict(Exception):
    def __init__(self, correct: bool, kind: ErrorKind, message: str):
        super().__init__(message)
        self.correct, self.kind, self.message = correct, kind, message


def _compiled(program: str, limits: Limits, context: str = "") -> Any:
    checked = check_program(program, limits.entry_rule)
    if not checked.ok:
        raise _Verdict(False, checked.error_kind, context + checked.message)
    try:
        return checked.compile()
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Verdict(False, ErrorKind.SYNTAX, f"{context}{exc}") from None


def _answer(parse, text: str) -> Any:
    try:
        return parse(text)
    except LiteralError as exc:
        raise _Verdict(False, ErrorKind.BAD_ANSWER, str(exc)) from None


def _gold(text: str) -> Any:
    try:
        return parse_literal(text)
    except LiteralError as exc:
        raise _Verdict(False, ErrorKind.BAD_INPUT, f"gold output: {exc}") from None
