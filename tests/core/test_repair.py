"""The bug-repair domain's rules (azr.domains.repair), and a self-play step with both domains."""

from __future__ import annotations

import random

import pytest

from azr.buffers import TaskBuffers
from azr.domains import Proposed, Rejected, build_domains
from azr.domains.repair import BugRepair, apply_unified_diff, changed_lines
from azr.jobs import Validation
from azr.parsing import ProposalError
from azr.prompts import worked_induction_task
from azr.spec import BugRepairSpec, DomainName, MethodSpec
from azr.tasks import InductionTask, RepairTask, Role, TaskType

EVENS = worked_induction_task()  # keeps the even numbers of a list; ten tests
ODDS = "def f(xs):\n    return [x for x in xs if x % 2 == 1]"  # passes [] and [1, 3]-like tests only


def _answer(body: str) -> str:
    return f"<answer>{body}</answer>"


def test_a_whole_program_variant_is_parsed_and_validated_on_every_test_input():
    domain = BugRepair()
    proposed = domain.parse(TaskType.REPAIR, _answer(f"```python\n{ODDS}\n```"), [EVENS])
    assert proposed.job.program == ODDS and proposed.job.inputs == EVENS.inputs


def test_a_function_written_into_the_answer_without_a_fence_is_taken_as_the_variant():
    proposed = BugRepair().parse(TaskType.REPAIR, f"\n{ODDS}\n", [EVENS])
    assert proposed.job.program == ODDS
    with pytest.raises(ProposalError, match="no ```python"):
        BugRepair().parse(TaskType.REPAIR, "The bug is in the modulo.", [EVENS])


def test_a_unified_diff_variant_is_applied_to_the_original():
    diff = ("--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n def f(xs):\n"
            "-    return [x for x in xs if x % 2 == 0]\n+    return [x for x in xs if x % 2 == 1]\n")
    proposed = BugRepair().parse(TaskType.REPAIR, _answer(f"```diff\n{diff}```"), [EVENS])
    assert proposed.job.program == ODDS


def test_a_diff_with_loose_line_numbers_still_applies_but_one_of_another_program_does_not():
    original = "def f(x):\n    y = x * 2\n    z = y + 1\n    return z"
    assert apply_unified_diff(original, "@@ -9,1 +9,1 @@\n-    z = y + 1\n+    z = y - 1\n") == \
        "def f(x):\n    y = x * 2\n    z = y - 1\n    return z"
    with pytest.raises(ProposalError, match="not in the program"):
        apply_unified_diff(original, "@@ -1,1 +1,1 @@\n-    w = 3\n+    w = 4\n")
    with pytest.raises(ProposalError, match="no @@ hunk"):
        apply_unified_diff(original, "just prose")


@pytest.mark.parametrize("variant, reason", [
    (EVENS.program, "is the original"),
    ("def f(xs):\n    out = []\n    for x in xs:\n        if x % 3 == 0:\n            out.append(x)\n    return sorted(out)",
     "changes 5 lines"),
])
def test_an_unchanged_or_heavily_rewritten_variant_is_rejected_before_it_runs(variant, reason):
    """A "bug" must be a small edit: a rewrite (a huge diff) is another program, not a bug."""
    with pytest.raises(Rejected, match=reason):
        BugRepair(max_edit_lines=3).parse(TaskType.REPAIR, _answer(f"```python\n{variant}\n```"), [EVENS])


def test_a_huge_diff_is_rejected():
    diff = "@@ -1,2 +1,400 @@\n def f(xs):\n-    return [x for x in xs if x % 2 == 0]\n" + "".join(f"+    a{n} = {n}\n" for n in range(399))
    with pytest.raises(Rejected, match="changes 399 lines"):
        BugRepair().parse(TaskType.REPAIR, _answer(f"```diff\n{diff}```"), [EVENS])
    with pytest.raises(ProposalError, match="longer than"):
        apply_unified_diff(EVENS.program, "@@ -1 +1 @@\n" + "+x\n" * 10_000)


def test_changed_lines_counts_each_region_by_its_larger_side():
    assert changed_lines("a\nb\nc", "a\nB\nc") == 1
    assert changed_lines("a\nb\nc", "a\nc") == 1
    assert changed_lines("a\nb\nc", "x\ny\nz\nw") == 4


def _validated(outputs):
    proposed = Proposed(BugRepair().parse(TaskType.REPAIR, _answer(f"```python\n{ODDS}\n```"), [EVENS]).job, EVENS)
    return BugRepair().task(TaskType.REPAIR, proposed, Validation(True, tuple(outputs)))


def test_the_variant_must_fail_one_test_and_pass_one():
    odd_outputs = ["[1, 3]", "[]", "[]", "[1, 3]", "[5]", "[]", "[7]", "[11]", "[3]", "[-1]"]
    task = _validated(odd_outputs)
    assert isinstance(task, RepairTask)
    assert task.failing == tuple(k for k, (e, a) in enumerate(zip(EVENS.outputs, odd_outputs)) if e != a)
    assert task.original == EVENS.program and task.outputs == EVENS.outputs
    with pytest.raises(Rejected, match="passes every test"):
        _validated(EVENS.outputs)
    with pytest.raises(Rejected, match="fails every test"):
        _validated(["None"] * 10)


def test_outputs_compare_as_values_not_text():
    """A set printed in another order is the same output: no bug shows there."""
    source = InductionTask("def f(x):\n    return {x, x + 1}", "pairs", tuple(str(k) for k in range(6)),
                           tuple(repr({k, k + 1}) for k in range(6)))
    proposed = Proposed(BugRepair().parse(TaskType.REPAIR, _answer("```python\ndef f(x):\n    return {x + 1, x}\n```"),
                                          [source]).job, source)
    reordered = ["{1, 0}", *source.outputs[1:5], "None"]
    assert BugRepair().task(TaskType.REPAIR, proposed, Validation(True, tuple(reordered))).failing == (5,)


def test_the_solver_sees_the_variant_and_failing_tests_but_not_the_original_and_one_failing_test_is_held_back():
    task = RepairTask(ODDS, EVENS.program, EVENS.inputs, EVENS.outputs,
                      ("[1, 3]", "[]", "[]", "[1, 3]", "[5]", "[]", "[7]", "[11]", "[3]", "[-1]"), (0, 2, 4))
    text = BugRepair().solve_prompt(TaskType.REPAIR, task).messages[-1].content
    assert ODDS in text and EVENS.program not in text
    assert f"f({EVENS.inputs[0]}) should return {EVENS.outputs[0]}, but returns [1, 3]" in text
    assert f"f({EVENS.inputs[2]})" in text and f"f({EVENS.inputs[4]})" not in text  # held back
    assert task.visible_failing == (0, 2)
    job = BugRepair().check_job(TaskType.REPAIR, task, f"```python\n{EVENS.program}\n```")
    assert job is not None and job.task_type is TaskType.INDUCTION  # graded as a program on every test
    assert job.hidden_inputs == EVENS.inputs and job.hidden_outputs == EVENS.outputs
    assert BugRepair().check_job(TaskType.REPAIR, task, "") is None


def test_repair_tasks_round_trip_through_a_checkpoint_and_sources_come_from_induction():
    buffers = TaskBuffers()
    rng = random.Random(0)
    assert BugRepair().references(TaskType.REPAIR, buffers, rng) == [EVENS]  # empty induction buffer: the worked task
    buffers[TaskType.INDUCTION].insert([EVENS])
    task = RepairTask(ODDS, EVENS.program, EVENS.inputs, EVENS.outputs, EVENS.outputs[:9] + ("[]",), (9,))
    buffers[TaskType.REPAIR].insert([task])
    restored = TaskBuffers.from_dict(buffers.to_dict())
    assert list(restored[TaskType.REPAIR]) == [task]
    with pytest.raises(TypeError):
        buffers[TaskType.REPAIR].insert([EVENS])
    # a checkpoint from before bug repair existed restores with an empty repair buffer
    old = {k: v for k, v in buffers.to_dict().items() if k != "repair"}
    assert len(TaskBuffers.from_dict(old)[TaskType.REPAIR]) == 0


def test_the_spec_enables_domains_with_their_share_of_the_batch():
    method = MethodSpec(proposals_per_type=8, domains=[DomainName.CODE_IO, DomainName.BUG_REPAIR],
                        bug_repair=BugRepairSpec(share=0.25, max_edit_lines=2))
    code_io, repair = build_domains(method)
    assert code_io.task_types == (TaskType.ABDUCTION, TaskType.DEDUCTION, TaskType.INDUCTION)
    assert repair.task_types == (TaskType.REPAIR,) and repair.max_edit_lines == 2
    from azr.domains import proposals_for

    assert proposals_for(code_io, 8) == 8 and proposals_for(repair, 8) == 2
    assert [d.name for d in build_domains(MethodSpec())] == [DomainName.CODE_IO]


# -- a step with both domains, with the scripted services of test_selfplay -------------------------

BUGGY_INC = "def f(x):\n    return x + 1 if x < 5 else x"  # fails the tests 5..9 of the scripted induction task


def test_one_step_with_both_domains_trains_eight_groups():
    from tests.core import test_selfplay as scripted

    class WithRepair(scripted.ScriptedModel):
        def _answer(self, text):
            if "Introduce a subtle bug" in text:
                return f"plan</think><answer>```python\n{BUGGY_INC}\n```</answer>"
            if "This function has a bug" in text:
                return f"fix</think><answer>```python\n{scripted.INC}\n```</answer>"
            return super()._answer(text)

    scripted.PROGRAMS[BUGGY_INC] = lambda x: x + 1 if x < 5 else x
    try:
        method = scripted.METHOD.model_copy(update={"domains": [DomainName.CODE_IO, DomainName.BUG_REPAIR]})
        play, model = scripted.make(WithRepair(), method=method)
        play.seed_buffers()
        rollout = play.collect(1)
    finally:
        del scripted.PROGRAMS[BUGGY_INC]
    groups = {(s.task_type, s.role) for s in rollout.samples}
    assert groups == {(t, r) for t in TaskType for r in Role}
    repair = [s for s in rollout.samples if s.task_type is TaskType.REPAIR]
    assert len([s for s in repair if s.role is Role.PROPOSE]) == 2  # share 0.5 of 3, rounded
    assert all(s.reward == 1.0 for s in repair if s.role is Role.SOLVE)
    m = rollout.metrics
    assert m["valid_rate.repair"] == 1.0 and m["accuracy.repair"] == 1.0 and m["buffer.repair"] == 2.0
    assert m["s_bar.repair"] == 1.0 and m["reward.repair.propose"] == 0.0  # solved by all: the extreme reward
    (repair_task,) = {t.program for t in play.buffers[TaskType.REPAIR]}
    assert repair_task == BUGGY_INC
    kinds = {(e["type"], e["kind"]) for e in rollout.examples}
    assert ("repair", "valid") in kinds and ("repair", "correct") in kinds


def test_a_run_of_bug_repair_alone_still_seeds_from_code_io_and_trains_two_groups():
    from tests.core import test_selfplay as scripted

    method = scripted.METHOD.model_copy(update={"domains": [DomainName.BUG_REPAIR]})
    play, _ = scripted.make(method=method)
    play.seed_buffers()
    assert len(play.buffers[TaskType.INDUCTION]) >= 1
    rollout = play.collect(1)
    assert {s.task_type for s in rollout.samples} == {TaskType.REPAIR}
    assert "valid_rate.deduction" not in rollout.metrics and "valid_rate.repair" in rollout.metrics
    assert rollout.metrics["valid_rate.repair"] == 0.0  # the scripted model writes no bug: every proposal rejected
    assert all(s.reward == -1.0 for s in rollout.samples if s.role is Role.PROPOSE)


def test_the_worked_format_examples_follow_the_domains_own_rules():
    """With formatExamples, each role's prompt starts with one worked turn: a bug that is a valid
    proposal by the rules above, and its repair, the original program."""
    from azr.domains.repair import _WORKED_BUG, _WORKED_BUG_OUTPUTS
    from azr.parsing import parse_response, proposal_text
    from azr.prompts import worked_sum_task

    source = worked_sum_task()
    plain, worked = BugRepair(), BugRepair(format_examples=1)
    assert len(plain.propose_prompt(TaskType.REPAIR, [EVENS]).messages) == 1
    user, assistant, _ = worked.propose_prompt(TaskType.REPAIR, [EVENS]).messages
    assert user.role == "user" and source.program in user.content and assistant.role == "assistant"
    reply = assistant.content.removeprefix("<think>")
    proposed = worked.parse(TaskType.REPAIR, proposal_text(reply, parse_response(reply)), [source])
    assert proposed.job.program == _WORKED_BUG
    task = worked.task(TaskType.REPAIR, proposed, Validation(True, _WORKED_BUG_OUTPUTS))
    assert task.failing == (8,)  # f(-5, -5)
    user, assistant, _ = worked.solve_prompt(TaskType.REPAIR, task).messages
    assert "f(-5, -5) should return -10, but returns 0" in user.content
    job = worked.check_job(TaskType.REPAIR, task, parse_response(assistant.content.removeprefix("<think>")).answer)
    assert job.answer == source.program
    assert BugRepair.from_method(MethodSpec(format_examples=2)).format_examples == 2
