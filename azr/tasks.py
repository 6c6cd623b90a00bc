"""Tasks: the (program, input, output) triplets of docs/method.md, part 1 and the induction variant."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class TaskType(str, enum.Enum):
    ABDUCTION = "abduction"  # shown p and o, produce some i with p(i) == o
    DEDUCTION = "deduction"  # shown p and i, produce o
    INDUCTION = "induction"  # shown a message and visible pairs, produce a program
    REPAIR = "repair"        # [bug repair domain] shown a buggy program and failing tests, produce the fix


class Role(str, enum.Enum):
    PROPOSE = "propose"
    SOLVE = "solve"


# One training step visits the code I/O types in this order (docs/method.md, part 2).
STEP_ORDER: tuple[TaskType, ...] = (TaskType.ABDUCTION, TaskType.DEDUCTION, TaskType.INDUCTION)

# The six TRR++ groups of code I/O: every (task type, role) pair. Every enabled domain adds
# its own (docs/domains.md); TRR++ normalises each group on its own.
Group = tuple[TaskType, Role]
GROUPS: tuple[Group, ...] = tuple((t, r) for t in STEP_ORDER for r in Role)

INDUCTION_INPUTS = 10  # the proposer writes exactly this many inputs
INDUCTION_VISIBLE = 5  # shown to the solver; the rest are hidden and graded


@dataclass(frozen=True)
class Triplet:
    """A deduction or abduction task: `output == repr(f(*input_args))`.

    `input` is the argument list as written between a call's parentheses ("[1, 2], 'a'");
    `output` is the repr of the result. Both are Python literals, compared strictly.
    """

    program: str
    input: str
    output: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Triplet:
        return cls(program=data["program"], input=data["input"], output=data["output"])


@dataclass(frozen=True)
class InductionTask:
    """An induction task: a program, a message describing it, and its input/output pairs.

    The first INDUCTION_VISIBLE pairs are shown to the solver; the rest are hidden and graded.
    """

    program: str
    message: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.outputs):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.outputs)} outputs")
        if len(self.inputs) <= INDUCTION_VISIBLE:
            raise ValueError(f"an induction task needs more than {INDUCTION_VISIBLE} pairs, got {len(self.inputs)}")

    @property
    def visible_pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.inputs[:INDUCTION_VISIBLE], self.outputs[:INDUCTION_VISIBLE]))

    @property
    def hidden_pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.inputs[INDUCTION_VISIBLE:], self.outputs[INDUCTION_VISIBLE:]))

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "message": self.message,
                "inputs": list(self.inputs), "outputs": list(self.outputs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InductionTask:
        return cls(program=data["program"], message=data["message"],
                   inputs=tuple(data["inputs"]), outputs=tuple(data["outputs"]))


@dataclass(frozen=True)
class RepairTask:
    """A bug-repair task (docs/domains.md): a buggy variant of a valid program, and that
    program's input/output pairs as its tests.

    The solver sees `program` and the visible failing tests, never `original`. A repair is
    correct when it returns `outputs` on every one of `inputs`, hidden ones included.
    """

    program: str                 # the buggy variant
    original: str                # the program it was made from
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]     # the original's outputs: what a repair must return
    actual: tuple[str, ...]      # the variant's outputs
    failing: tuple[int, ...]     # the tests the variant fails, by index

    def __post_init__(self) -> None:
        if not len(self.inputs) == len(self.outputs) == len(self.actual):
            raise ValueError("a repair task needs one output and one actual output per input")
        if not self.failing or len(self.failing) >= len(self.inputs):
            raise ValueError("a repair task's variant fails at least one test and passes at least one")
        if any(not 0 <= k < len(self.inputs) for k in self.failing):
            raise ValueError("failing test index out of range")

    @property
    def visible_failing(self) -> tuple[int, ...]:
        """The failing tests the solver is shown: all but the last one when there are two or
        more, so that a repair which special-cases the shown inputs still fails a hidden one."""
        return self.failing[:-1] if len(self.failing) > 1 else self.failing

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "original": self.original, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "actual": list(self.actual), "failing": list(self.failing)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepairTask:
        return cls(program=data["program"], original=data["original"], inputs=tuple(data["inputs"]),
                   outputs=tuple(data["outputs"]), actual=tuple(data["actual"]), failing=tuple(data["failing"]))


Task = Triplet | InductionTask | RepairTask

# What each task type's buffer holds.
TASK_CLASSES: dict[TaskType, type] = {TaskType.DEDUCTION: Triplet, TaskType.ABDUCTION: Triplet,
                                      TaskType.INDUCTION: InductionTask, TaskType.REPAIR: RepairTask}

# The fallback reference while a buffer is empty (docs/method.md, part 6).
IDENTITY_TRIPLET = Triplet(program="def f(x):\n    return x", input="'Hello World'", output="'Hello World'")
