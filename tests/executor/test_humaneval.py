"""Human-written programs through the executor: HumanEval's canonical solutions on the literal
cases of their own tests must give the expected results (issue 3, part 6)."""

import pytest

from azr.jobs import CheckJob, ValidationJob
from azr.literals import parse_literal
from azr.programs import ErrorKind
from azr.tasks import TaskType
from azr_launcher.humaneval import load_cases


@pytest.fixture(scope="module")
def cases():
    usable, skipped = load_cases()
    assert len(usable) >= 150 and len(skipped) <= 14, skipped
    return usable


def test_canonical_solutions_give_the_expected_results(executor, cases):
    results = executor.validate([ValidationJob(c.program, c.inputs) for c in cases])
    wrong = []
    for case, result in zip(cases, results):
        if not result.valid:
            wrong.append((case.task_id, result.error_kind.value, result.error_message))
            continue
        for got, expected in zip(result.outputs, case.expected):
            # The tests' own `==` semantics: HumanEval compares 1 == 1.0 as equal.
            if parse_literal(got) != parse_literal(expected):
                wrong.append((case.task_id, got, expected))
    assert not wrong, wrong


def test_canonical_solutions_pass_as_induction_answers(executor, cases):
    items = [CheckJob(TaskType.INDUCTION, c.program, hidden_inputs=c.inputs, hidden_outputs=c.expected) for c in cases]
    results = executor.check(items)
    # Strict typing may reject a few cases where the test relied on 1 == 1.0 or 1 == True.
    failed = [(c.task_id, r.error_kind.value, r.error_message) for c, r in zip(cases, results) if not r.correct]
    assert all(kind == ErrorKind.WRONG_ANSWER.value for _, kind, _ in failed), failed
    assert len(failed) <= 5, failed


def test_a_wrong_solution_fails(executor, cases):
    case = next(c for c in cases if c.task_id == "HumanEval/0")
    broken = case.program.replace("return True", "return False")
    result = executor.check([CheckJob(TaskType.INDUCTION, broken, hidden_inputs=case.inputs, hidden_outputs=case.expected)])[0]
    assert not result.correct and result.error_kind is ErrorKind.WRONG_ANSWER
