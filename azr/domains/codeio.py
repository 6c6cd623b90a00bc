"""Code I/O: AZR's three task types, three views of one program (docs/method.md, parts 1-4).

Deduction: shown p and i, predict o. Abduction: shown p and o, find an i with p(i) == o.
Induction: shown a message and visible pairs, write p; graded on the hidden pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from azr.buffers import TaskBuffers
from azr.domains import Proposed
from azr.jobs import CheckJob, Validation, ValidationJob
from azr.metrics import clip
from azr.parsing import parse_proposal, solver_answer
from azr.prompts import Prompt, propose_prompt, solve_prompt
from azr.spec import DomainName, MethodSpec
from azr.tasks import STEP_ORDER, InductionTask, Task, TaskType, Triplet


def task_fields(task: Task) -> dict[str, Any]:
    """A task as an example shows it: the program, and its input/output or its pairs and message."""
    if isinstance(task, InductionTask):
        return {"program": clip(task.program), "message": clip(task.message, 200),
                "pairs": [[i, o] for i, o in zip(task.inputs[:3], task.outputs[:3])]}
    assert isinstance(task, Triplet)
    return {"program": clip(task.program), "input": clip(task.input, 200), "output": clip(task.output, 200)}


@dataclass(frozen=True)
class CodeIO:
    references_per_prompt: int = 6   # K
    format_examples: int = 0
    numbered_inputs: bool = True
    share: float = 1.0
    name: DomainName = DomainName.CODE_IO
    task_types: tuple[TaskType, ...] = STEP_ORDER

    @classmethod
    def from_method(cls, method: MethodSpec) -> CodeIO:
        return cls(method.references, method.format_examples, method.numbered_inputs, method.code_io.share)

    def references(self, task_type: TaskType, buffers: TaskBuffers, rng: random.Random) -> list[Task]:
        return buffers.references(task_type, self.references_per_prompt, rng)

    def propose_prompt(self, task_type: TaskType, references: list[Task]) -> Prompt:
        return propose_prompt(task_type, references, self.format_examples, self.numbered_inputs)

    def parse(self, task_type: TaskType, text: str, references: list[Task]) -> Proposed:
        proposal = parse_proposal(text, task_type)
        # Induction writes inputs for the reference program; the others write a program of their own.
        program = references[0].program if task_type is TaskType.INDUCTION else proposal.program
        return Proposed(ValidationJob(program, tuple(proposal.inputs)), proposal)

    def task(self, task_type: TaskType, proposed: Proposed, validation: Validation) -> Task:
        job = proposed.job
        if task_type is TaskType.INDUCTION:
            return InductionTask(job.program, proposed.proposal.message, job.inputs, tuple(validation.outputs))
        return Triplet(job.program, job.inputs[0], validation.outputs[0])

    def solve_prompt(self, task_type: TaskType, task: Task) -> Prompt:
        return solve_prompt(task, task_type, self.format_examples)

    def check_job(self, task_type: TaskType, task: Task, answer: str) -> CheckJob | None:
        extracted = solver_answer(answer, task_type)
        if not extracted:
            return None
        if task_type is TaskType.INDUCTION:
            assert isinstance(task, InductionTask)
            hidden = task.hidden_pairs
            return CheckJob(task_type, extracted, hidden_inputs=tuple(i for i, _ in hidden),
                            hidden_outputs=tuple(o for _, o in hidden))
        assert isinstance(task, Triplet)
        return CheckJob(task_type, extracted, program=task.program, gold_output=task.output)

    def example_fields(self, task: Task) -> dict[str, Any]:
        return task_fields(task)
