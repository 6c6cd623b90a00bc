"""Bug repair (docs/domains.md): self-play bug injection and repair on the model's own programs.

Propose: shown a valid program from the induction buffer and its ten input/output pairs (the
tests), write a buggy variant, as a whole program or as a unified diff. It is valid when it
passes the static checks, runs on every test input without crashing or timing out (the
executor validates it like any proposal: sandbox, literal values, determinism), fails at least
one test, passes at least one, and changes at most `maxEditLines` lines of the original.

Solve: shown the buggy program and its failing tests (input, expected and actual output),
never the original, write the repaired program. It is correct when it returns the expected
output on every test, hidden ones included: the executor checks it as it checks an induction
answer. The last failing test is held back whenever two or more fail, so a repair that only
special-cases the inputs it was shown fails.
"""

from __future__ import annotations

import difflib
import functools
import random
import re
from dataclasses import dataclass
from typing import Any

from azr.buffers import TaskBuffers
from azr.domains import Proposed, Rejected
from azr.jobs import CheckJob, Validation, ValidationJob
from azr.literals import LiteralError, same_value
from azr.metrics import clip
from azr.parsing import THINK_PREFIX, ProposalError, fenced_blocks, solver_answer
from azr.prompts import FORMAT_RULE, SANDBOX_RULES, Message, Prompt, fence, worked_induction_task, worked_sum_task
from azr.spec import DomainName, MethodSpec
from azr.tasks import InductionTask, RepairTask, Task, TaskType

MAX_DIFF_CHARS = 20_000
_UNFENCED_PROGRAM = re.compile(r"\A\s*(def|import|from)\s")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def changed_lines(original: str, variant: str) -> int:
    """How many lines an edit touches: per changed region, the larger of its removed and added lines."""
    matcher = difflib.SequenceMatcher(None, original.splitlines(), variant.splitlines(), autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def apply_unified_diff(original: str, diff: str) -> str:
    """`original` with the hunks of a unified diff applied, in order.

    Each hunk's context and removed lines must appear in the original exactly: a diff of
    another program is an error, not a guess. A hunk goes where its header's line number says
    when its lines are there, else at their first place after the previous hunk (models number
    lines loosely). The `---`/`+++` headers are optional."""
    if len(diff) > MAX_DIFF_CHARS:
        raise ProposalError(f"diff longer than {MAX_DIFF_CHARS} characters")
    source = original.splitlines()
    out: list[str] = []
    at = 0  # the next line of `source` not yet copied
    hunks = _hunks(diff)
    if not hunks:
        raise ProposalError("the diff has no @@ hunk")
    for stated, lines in hunks:
        old = [text for kind, text in lines if kind != "+"]
        place = _find(source, old, at, stated)
        out += source[at:place]
        for kind, text in lines:
            if kind != "-":
                out.append(text)
        at = place + len(old)
    return "\n".join(out + source[at:])


def _hunks(diff: str) -> list[tuple[int, list[tuple[str, str]]]]:
    """(the old start line the header states, 0-based, and the hunk's (kind, text) lines)."""
    hunks: list[tuple[int, list[tuple[str, str]]]] = []
    for line in diff.splitlines():
        match = _HUNK.match(line)
        if match:
            hunks.append((max(int(match.group(1)) - 1, 0), []))
        elif not hunks or line.startswith(("--- ", "+++ ", "\\")):
            continue
        elif line[:1] in (" ", "-", "+"):
            hunks[-1][1].append((line[:1], line[1:]))
        elif not line:
            hunks[-1][1].append((" ", ""))  # an empty context line whose space was trimmed
        else:
            raise ProposalError(f"not a unified diff line: {clip(line, 80)!r}")
    return hunks


def _find(source: list[str], old: list[str], at: int, stated: int) -> int:
    def fits(k: int) -> bool:
        return source[k:k + len(old)] == old

    if stated >= at and fits(stated):
        return stated
    for k in range(at, len(source) - len(old) + 1):
        if fits(k):
            return k
    shown = old[0] if old else ""
    raise ProposalError(f"the diff's lines are not in the program (from {clip(shown, 80)!r})")


def _tests_block(task: InductionTask) -> str:
    return "\n".join(f"f({i}) == {o}" for i, o in zip(task.inputs, task.outputs))


@dataclass(frozen=True)
class BugRepair:
    max_edit_lines: int = 3
    share: float = 0.5
    format_examples: int = 0  # 1 or more: one worked example of each role's answer format
    name: DomainName = DomainName.BUG_REPAIR
    task_types: tuple[TaskType, ...] = (TaskType.REPAIR,)

    @classmethod
    def from_method(cls, method: MethodSpec) -> BugRepair:
        return cls(method.bug_repair.max_edit_lines, method.bug_repair.share, method.format_examples)

    def _worked(self, user: str, thought: str, answer: str) -> tuple[Message, ...]:
        if not self.format_examples:
            return ()
        return (Message("user", user), Message("assistant", f"{THINK_PREFIX}{thought}</think>\n<answer>{answer}</answer>"))

    # -- propose -------------------------------------------------------------------------------

    def references(self, task_type: TaskType, buffers: TaskBuffers, rng: random.Random) -> list[Task]:
        """One program with its tests: an induction task of the run's own."""
        pool = list(buffers[TaskType.INDUCTION])
        return [rng.choice(pool) if pool else worked_induction_task()]

    def propose_prompt(self, task_type: TaskType, references: list[Task]) -> Prompt:
        (source,) = references
        assert isinstance(source, InductionTask)
        return Prompt(self._worked_proposal() + (Message("user", self._propose_text(source)),))

    def _propose_text(self, source: InductionTask) -> str:
        return (f"Here is a correct function and its tests:\n\n{fence('python', source.program)}\n\n"
                f"{fence('tests', _tests_block(source))}\n\n"
                f"Introduce a subtle bug, the kind a programmer could make: write a variant of the function "
                f"that changes at most {self.max_edit_lines} lines, still runs without an error on every test "
                f"input, fails at least one test and passes at least one. Keep the function's name and "
                f"arguments. {SANDBOX_RULES}\n\n{FORMAT_RULE} The answer is the whole buggy function in a "
                f"```python block, or a unified diff against the function above in a ```diff block.")

    @functools.cache  # noqa: B019 - a frozen dataclass, a handful of instances: one set of turns each
    def _worked_proposal(self) -> tuple[Message, ...]:
        return self._worked(self._propose_text(worked_sum_task()),
                            "Taking the absolute value of b changes one line and matters only when b is negative: "
                            "f(-5, -5) returns 0 instead of -10, and the other tests still pass.",
                            fence("python", _WORKED_BUG))

    def parse(self, task_type: TaskType, text: str, references: list[Task]) -> Proposed:
        (source,) = references
        assert isinstance(source, InductionTask)
        blocks = fenced_blocks(text)
        programs = [body.strip("\n") for lang, body in blocks if lang in ("python", "py")]
        diffs = [body for lang, body in blocks if lang in ("diff", "patch", "udiff")]
        if programs:
            variant = programs[-1]
        elif diffs:
            variant = apply_unified_diff(source.program, diffs[-1])
        elif _UNFENCED_PROGRAM.match(text):
            # A function written straight into the answer, as induction's answers may be
            # (3 of the 24 missing-fence rejections the first GPU run logged).
            variant = text.strip("\n")
        else:
            raise ProposalError("no ```python or ```diff block")
        edited = changed_lines(source.program, variant)
        if edited == 0:
            raise Rejected("the variant is the original program")
        if edited > self.max_edit_lines:
            raise Rejected(f"the variant changes {edited} lines; at most {self.max_edit_lines} may change")
        return Proposed(ValidationJob(variant, source.inputs), source)

    def task(self, task_type: TaskType, proposed: Proposed, validation: Validation) -> Task:
        source: InductionTask = proposed.proposal
        failing = tuple(k for k, (expected, actual) in enumerate(zip(source.outputs, validation.outputs))
                        if not _same(expected, actual))
        if not failing:
            raise Rejected("the variant passes every test: no bug shows")
        if len(failing) == len(source.inputs):
            raise Rejected("the variant fails every test: it must pass at least one")
        return RepairTask(proposed.job.program, source.program, source.inputs, source.outputs,
                          tuple(validation.outputs), failing)

    # -- solve ---------------------------------------------------------------------------------

    def solve_prompt(self, task_type: TaskType, task: Task) -> Prompt:
        assert isinstance(task, RepairTask)
        return Prompt(self._worked_repair() + (Message("user", _solve_text(task)),))

    @functools.cache  # noqa: B019 - as above: built once, not once per solver prompt
    def _worked_repair(self) -> tuple[Message, ...]:
        source = worked_sum_task()
        task = RepairTask(_WORKED_BUG, source.program, source.inputs, source.outputs, _WORKED_BUG_OUTPUTS,
                          tuple(k for k, (e, a) in enumerate(zip(source.outputs, _WORKED_BUG_OUTPUTS)) if e != a))
        return self._worked(_solve_text(task), "f(-5, -5) should be -10, but abs(b) turns -5 into 5: adding b itself fixes it.",
                            fence("python", source.program))

    def check_job(self, task_type: TaskType, task: Task, answer: str) -> CheckJob | None:
        assert isinstance(task, RepairTask)
        repaired = solver_answer(answer, TaskType.INDUCTION)  # a program, as induction answers one
        if not repaired:
            return None
        # "Run this program on these inputs and expect these outputs" is induction's check.
        return CheckJob(TaskType.INDUCTION, repaired, hidden_inputs=task.inputs, hidden_outputs=task.outputs)

    def example_fields(self, task: Task) -> dict[str, Any]:
        assert isinstance(task, RepairTask)
        return {"program": clip(task.program), "original": clip(task.original),
                "failing": [[task.inputs[k], task.outputs[k], task.actual[k]] for k in task.failing[:3]]}


# The worked example's bug and what it returns on the sum's ten tests (written out: nothing
# is evaluated here); only f(-5, -5) differs.
_WORKED_BUG = "def f(a, b):\n    return a + abs(b)"
_WORKED_BUG_OUTPUTS = ("3", "0", "12", "0", "30", "7", "101", "4", "0", "17")


def _solve_text(task: RepairTask) -> str:
    shown = "\n".join(f"f({task.inputs[k]}) should return {task.outputs[k]}, but returns {task.actual[k]}"
                      for k in task.visible_failing)
    return (f"This function has a bug:\n\n{fence('python', task.program)}\n\nFailing tests:\n{shown}\n\n"
            f"Fix the bug. The repaired function must pass these tests and others like them, which you "
            f"are not shown. {FORMAT_RULE} The answer is the whole repaired function in a ```python block. "
            f"{SANDBOX_RULES}")


def _same(expected: str, actual: str) -> bool:
    try:
        return same_value(expected, actual)
    except LiteralError:
        return False
