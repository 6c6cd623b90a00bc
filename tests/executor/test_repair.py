"""Bug repair through the real executor (gVisor): the executor paths the domain uses, and its
hostile cases. Every rule of the sandbox applies to both programs."""

from __future__ import annotations

import pytest

from azr.domains import Proposed, Rejected
from azr.domains.repair import BugRepair
from azr.programs import ErrorKind
from azr.prompts import worked_induction_task
from azr.tasks import RepairTask, TaskType

EVENS = worked_induction_task()
DOMAIN = BugRepair()


def _propose(executor, variant: str):
    """What self-play does with one proposal: parse, validate in the sandbox, make the task."""
    proposed = DOMAIN.parse(TaskType.REPAIR, f"<answer>```python\n{variant}\n```</answer>", [EVENS])
    (validation,) = executor.validate([proposed.job])
    if not validation.valid:
        return validation
    return DOMAIN.task(TaskType.REPAIR, Proposed(proposed.job, proposed.proposal), validation)


def test_a_real_bug_becomes_a_task_with_the_tests_it_fails(executor):
    task = _propose(executor, "def f(xs):\n    return [x for x in xs if x % 2 == 0 and x > 0]")
    assert isinstance(task, RepairTask)
    failing_inputs = [EVENS.inputs[k] for k in task.failing]
    assert failing_inputs == ["[0, 5, 6]", "[-2, -1]"]  # where 0 or a negative even number is kept
    assert [task.actual[k] for k in task.failing] == ["[6]", "[]"]


@pytest.mark.parametrize("variant, kind", [
    ("def f(xs):\n    while True:\n        pass\n    return [x for x in xs if x % 2 == 0]", ErrorKind.TIMEOUT),
    ("def f(xs):\n    raise SystemExit(0)\n    return [x for x in xs if x % 2 == 0]", ErrorKind.RUNTIME),
    ("def f(xs, acc=[]):\n    acc.append(1)\n    return [x for x in xs if x % 2 == 0][:len(acc)]", ErrorKind.NONDETERMINISTIC),
    ("def f(xs):\n    return [x for x in xs if x % 2 == 0] or {1, 2}.__class__", ErrorKind.FORBIDDEN),
    ("def f(xs):\n    return [x for x in xs if x % 2 == 0] or object()", ErrorKind.BAD_OUTPUT_TYPE),
])
def test_a_bug_that_breaks_the_harness_is_no_task(executor, variant, kind):
    """Loops, exits, state across calls, escapes, non-literal results: the variant must still run
    cleanly on every test input, so each of these is an invalid proposal, not a bug."""
    result = _propose(executor, variant)
    assert not isinstance(result, RepairTask)
    assert result.error_kind is kind, result


def test_a_repair_is_graded_on_every_test_and_special_casing_the_shown_ones_fails(executor):
    bug = "def f(xs):\n    return [x for x in xs if x % 2 == 0 and x > 0]"
    task = _propose(executor, bug)
    assert isinstance(task, RepairTask) and len(task.failing) == 2 and task.visible_failing == task.failing[:1]
    shown = EVENS.inputs[task.visible_failing[0]]
    cheat = (f"def f(xs):\n    if xs == {shown}:\n        return {EVENS.outputs[task.visible_failing[0]]}\n"
             f"    return [x for x in xs if x % 2 == 0 and x > 0]")
    partial = "def f(xs):\n    return [x for x in xs if x % 2 == 0 and x >= 0]"  # fixes the shown test only
    answers = [EVENS.program, cheat, bug, partial,
               "def f(xs):\n    import os\n    return [x for x in xs if x % 2 == 0]"]
    jobs = [DOMAIN.check_job(TaskType.REPAIR, task, f"```python\n{a}\n```") for a in answers]
    verdicts = executor.check(jobs)
    assert [v.correct for v in verdicts] == [True, False, False, False, False]
    assert verdicts[1].error_kind is verdicts[3].error_kind is ErrorKind.WRONG_ANSWER  # the held-back failing test
    assert verdicts[4].error_kind is ErrorKind.FORBIDDEN


def test_a_variant_that_fails_every_test_is_rejected_after_running(executor):
    with pytest.raises(Rejected, match="fails every test"):
        _propose(executor, "def f(xs):\n    return [x for x in xs if x % 2 == 0] + [0]")


def test_the_worked_example_bug_returns_what_its_prompt_says(executor):
    """The worked example's outputs are written out in the prompt module; the sandbox agrees."""
    from azr.domains.repair import _WORKED_BUG, _WORKED_BUG_OUTPUTS
    from azr.jobs import ValidationJob
    from azr.prompts import worked_sum_task

    (validation,) = executor.validate([ValidationJob(_WORKED_BUG, worked_sum_task().inputs)])
    assert validation.valid and validation.outputs == _WORKED_BUG_OUTPUTS
