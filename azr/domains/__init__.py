"""Task domains: what self-play proposes, validates, solves and checks (docs/domains.md).

A domain owns its task types, its proposer and solver prompts, the parsing of what the model
wrote, and the executor jobs that validate a proposal and check an answer. The core owns the
rest, the same for every domain: learnability rewards (1 - s-bar over n solver samples),
TRR++ with one baseline per (task type, role) group across all enabled domains, the buffers
and the metrics, which are named after the task types.

The executor answers two questions only, whatever the domain: run a program on inputs
(`ValidationJob` -> outputs) and grade an answer (`CheckJob` -> verdict). So a new domain
touches no service code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from azr.buffers import TaskBuffers
from azr.jobs import CheckJob, Validation, ValidationJob
from azr.prompts import Prompt
from azr.spec import DomainName, MethodSpec
from azr.tasks import Task, TaskType


@dataclass(frozen=True)
class Proposed:
    """A parsed proposal: what the executor must validate, and what the domain keeps to make
    its task from the validation."""

    job: ValidationJob
    proposal: Any


class Rejected(ValueError):
    """A proposal that defines no task; the message says why (it goes into the run's examples)."""


class TaskDomain(Protocol):
    name: DomainName
    task_types: tuple[TaskType, ...]  # in the order a step visits them
    share: float                      # proposals per task type: share x proposalsPerType

    def references(self, task_type: TaskType, buffers: TaskBuffers, rng: random.Random) -> list[Task]:
        """What one proposer prompt shows."""
        ...

    def propose_prompt(self, task_type: TaskType, references: list[Task]) -> Prompt:
        ...

    def parse(self, task_type: TaskType, text: str, references: list[Task]) -> Proposed:
        """Raises ProposalError (azr.parsing) or Rejected when `text` defines no task."""
        ...

    def task(self, task_type: TaskType, proposed: Proposed, validation: Validation) -> Task:
        """The task a valid validation defines; raises Rejected."""
        ...

    def solve_prompt(self, task_type: TaskType, task: Task) -> Prompt:
        ...

    def check_job(self, task_type: TaskType, task: Task, answer: str) -> CheckJob | None:
        """What grades `answer` (a solver's <answer> text); None when it holds no answer."""
        ...

    def example_fields(self, task: Task) -> dict[str, Any]:
        """A task as the run's examples show it."""
        ...


def proposals_for(domain: TaskDomain, proposals_per_type: int) -> int:
    return max(1, round(domain.share * proposals_per_type))


def build_domains(method: MethodSpec) -> list[TaskDomain]:
    """The enabled domains, in the spec's order."""
    from azr.domains.codeio import CodeIO
    from azr.domains.repair import BugRepair

    makers = {DomainName.CODE_IO: CodeIO.from_method, DomainName.BUG_REPAIR: BugRepair.from_method}
    return [makers[name](method) for name in method.domains]
