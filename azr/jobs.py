"""What self-play asks of the executor, in the core's vocabulary (docs/architecture.md): a
program to run on inputs (`ValidationJob` -> `Validation`) and an answer to grade
(`CheckJob` -> `Verdict`). Every domain asks only these two questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from azr.programs import ErrorKind
from azr.tasks import TaskType


@dataclass(frozen=True)
class ValidationJob:
    """A proposed program and the inputs to run it on (docs/method.md, part 4)."""

    program: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Validation:
    """Whether a proposal is a valid task; its outputs, one per input, when it is."""

    valid: bool
    outputs: tuple[str, ...] = ()
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


@dataclass(frozen=True)
class CheckJob:
    """A solver's answer to one task: the program and gold output for deduction and
    abduction, the hidden pairs for induction."""

    task_type: TaskType
    answer: str
    program: str = ""
    gold_output: str = ""
    hidden_inputs: tuple[str, ...] = ()
    hidden_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Whether an answer is correct, and why not."""

    correct: bool
    error_kind: ErrorKind = ErrorKind.NONE
    error_message: str = ""


class Executor(Protocol):
    """The sandbox's two questions, answered in order: the executor service's engine, or its
    gRPC client."""

    def validate(self, jobs: Sequence[ValidationJob]) -> list[Validation]:
        ...

    def check(self, jobs: Sequence[CheckJob]) -> list[Verdict]:
        ...
