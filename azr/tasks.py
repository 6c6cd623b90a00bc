"""Tasks: the (program, input, output) triplets of docs/method.md, part 1 and the induction variant."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class TaskType(str, enum.Enum):
    ABDUCTION = "abduction"  # shown p and o, produce some i with p(i) == o
    DEDUCTION = "deduction"  # shown p and i, produce o
    INDUCTION = "induction"  # shown a message and visible pairs, produce a program


class Role(str, enum.Enum):
    PROPOSE = "propose"
    SOLVE = "solve"


# One training step visits the types in this order (docs/method.md, part 2).
STEP_ORDER: tuple[TaskType, ...] = (TaskType.ABDUCTION, TaskType.DEDUCTION, TaskType.INDUCTION)

# The six TRR++ groups: every (task type, role) pair.
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


Task = Triplet | InductionTask

# The fallback reference while a buffer is empty (docs/method.md, part 6).
IDENTITY_TRIPLET = Triplet(program="def f(x):\n    return x", input="'Hello World'", output="'Hello World'")
