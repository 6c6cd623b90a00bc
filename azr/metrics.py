"""The metrics schema: what one self-play step reports, as one flat JSON object.

Keys are dotted paths, so a line of metrics.jsonl, the learner's GetStatus map and the
report's charts all use the same names:

    reward.<type>.<role>        mean reward of the trained responses of that group
    format_error.<type>.<role>  share of those responses without the <think>/<answer> format
    valid_rate.<type>           share of proposals that parsed and passed validation
    s_bar.<type>                mean Monte-Carlo solve rate of the valid proposals
    accuracy.<type>             share of solver answers that were correct
    buffer.<type>               tasks in that buffer after the step
    seconds.<phase>             wall seconds spent in each phase
    tokens_generated            every generated token, Monte-Carlo samples included
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from azr.tasks import STEP_ORDER, Role, TaskType


class Phase(str, enum.Enum):
    """What the learner is doing, as its GetStatus answers and the operator reads it. A step's
    phases are also timed, as `seconds.<phase>`."""

    STARTING = "starting"
    SEEDING = "seeding"
    PROPOSE = "propose"
    VALIDATE = "validate"
    MONTE_CARLO = "monte_carlo"
    SOLVE = "solve"
    CHECK = "check"
    UPDATE = "update"
    SYNC = "sync"
    CHECKPOINT = "checkpoint"
    DONE = "done"        # the last step is trained: the run is complete
    STOPPED = "stopped"  # told to stop (Stop, SIGTERM) before the last step


# The phases a step is timed in, in the order they run.
STEP_PHASES = (Phase.PROPOSE, Phase.VALIDATE, Phase.MONTE_CARLO, Phase.SOLVE, Phase.CHECK, Phase.UPDATE, Phase.SYNC,
               Phase.CHECKPOINT)
# The order the live view and the report show the task types in; a type whose metrics a run
# has none of (its domain is off) is left out.
TASK_TYPES = tuple(t.value for t in (TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION, TaskType.REPAIR))
ROLES = tuple(r.value for r in Role)


def task_types_in(lines: list[dict]) -> list[str]:
    """The task types (in TASK_TYPES order) that any of these metrics lines reports on."""
    return [t for t in TASK_TYPES if any(f"valid_rate.{t}" in line for line in lines)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


EXAMPLES_PER_KIND = 2
TEXT_LIMIT = 600  # characters of a program or a response kept in an example


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


@dataclass
class StepOutcomes:
    """Everything a step observed, accumulated while it runs."""

    rewards: dict[tuple[TaskType, Role], list[float]] = field(default_factory=lambda: defaultdict(list))
    formatted: dict[tuple[TaskType, Role], list[bool]] = field(default_factory=lambda: defaultdict(list))
    proposals: dict[TaskType, int] = field(default_factory=lambda: defaultdict(int))
    valid: dict[TaskType, int] = field(default_factory=lambda: defaultdict(int))
    s_bars: dict[TaskType, list[float]] = field(default_factory=lambda: defaultdict(list))
    correct: dict[TaskType, list[bool]] = field(default_factory=lambda: defaultdict(list))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens_generated: int = 0
    examples: list[dict] = field(default_factory=list)  # what the model wrote: a few of each kind

    def example(self, kind: str, task_type: TaskType, **fields: object) -> None:
        """Keep up to EXAMPLES_PER_KIND examples of each kind (valid, rejected, correct, wrong)
        per task type: enough to read what the model is doing, small enough for every step."""
        if sum(1 for e in self.examples if e["kind"] == kind and e["type"] == task_type.value) < EXAMPLES_PER_KIND:
            self.examples.append({"type": task_type.value, "kind": kind, **fields})

    def record(self, task_type: TaskType, role: Role, reward: float, well_formatted: bool) -> None:
        self.rewards[(task_type, role)].append(reward)
        self.formatted[(task_type, role)].append(well_formatted)

    def to_metrics(self, buffer_sizes: dict[str, int], task_types: Iterable[TaskType] = STEP_ORDER) -> dict[str, float]:
        """The step's metrics for `task_types` (those of the enabled domains)."""
        metrics: dict[str, float] = {}
        for task_type in task_types:
            t = task_type.value
            for role in Role:
                metrics[f"reward.{t}.{role.value}"] = _mean(self.rewards[(task_type, role)])
                formatted = self.formatted[(task_type, role)]
                metrics[f"format_error.{t}.{role.value}"] = _mean([0.0 if ok else 1.0 for ok in formatted])
            proposals = self.proposals[task_type]
            metrics[f"valid_rate.{t}"] = self.valid[task_type] / proposals if proposals else math.nan
            metrics[f"s_bar.{t}"] = _mean(self.s_bars[task_type])
            metrics[f"accuracy.{t}"] = _mean([1.0 if c else 0.0 for c in self.correct[task_type]])
            metrics[f"buffer.{t}"] = float(buffer_sizes.get(t, 0))
        for phase, seconds in self.seconds.items():
            metrics[f"seconds.{phase}"] = seconds
        metrics["tokens_generated"] = float(self.tokens_generated)
        return metrics


def json_safe(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN (a group with no responses this step) becomes null in JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
