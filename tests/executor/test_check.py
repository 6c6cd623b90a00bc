"""Answer checking: strict typed equality in the trusted process; abduction and induction by execution."""

import pytest
from azr_executor.engine import CheckItem

from azr.programs import ErrorKind
from azr.tasks import TaskType

PROGRAM = "def f(a, b):\n    return (a + b, a * b)"


def _check(executor, **kw):
    return executor.check([CheckItem("x", **kw)])[0]


@pytest.mark.parametrize("answer, correct, kind", [
    ("(5, 6)", True, ErrorKind.NONE),
    ("(5,6)", True, ErrorKind.NONE),
    ("[5, 6]", False, ErrorKind.WRONG_ANSWER),        # list is not tuple
    ("(5.0, 6)", False, ErrorKind.WRONG_ANSWER),      # float is not int
    ("(5, 7)", False, ErrorKind.WRONG_ANSWER),
    ("f(2, 3)", False, ErrorKind.BAD_ANSWER),         # never evaluated
    ("__import__('os').system('x')", False, ErrorKind.BAD_ANSWER),
])
def test_deduction_is_strict_value_equality(executor, answer, correct, kind):
    r = _check(executor, task_type=TaskType.DEDUCTION, answer=answer, gold_output="(5, 6)", program=PROGRAM)
    assert (r.correct, r.error_kind) == (correct, kind)


def test_deduction_true_is_not_one(executor):
    assert not _check(executor, task_type=TaskType.DEDUCTION, answer="1", gold_output="True").correct
    assert _check(executor, task_type=TaskType.DEDUCTION, answer="{2, 1}", gold_output="{1, 2}").correct


def test_abduction_accepts_any_input_that_reproduces_the_output(executor):
    program = "def f(xs):\n    return max(xs)"
    for answer in ("[1, 9]", "[9]", "[9, -3, 2]"):
        assert _check(executor, task_type=TaskType.ABDUCTION, program=program, gold_output="9", answer=answer).correct
    wrong = _check(executor, task_type=TaskType.ABDUCTION, program=program, gold_output="9", answer="[8]")
    assert not wrong.correct and wrong.error_kind is ErrorKind.WRONG_ANSWER


@pytest.mark.parametrize("answer, kind", [
    ("1) or True or (1", ErrorKind.BAD_ANSWER),
    ("[1, 9], key=len", ErrorKind.BAD_ANSWER),
    ("[]", ErrorKind.RUNTIME),                        # max([]) raises
])
def test_abduction_bad_answers(executor, answer, kind):
    r = _check(executor, task_type=TaskType.ABDUCTION, program="def f(xs):\n    return max(xs)", gold_output="9", answer=answer)
    assert not r.correct and r.error_kind is kind


HIDDEN_IN = ["1", "2", "3", "10", "-4"]
HIDDEN_OUT = ["2", "4", "6", "20", "-8"]


def test_induction_all_hidden_pairs_must_pass(executor):
    ok = _check(executor, task_type=TaskType.INDUCTION, answer="def g(x):\n    return x + x",
                hidden_inputs=HIDDEN_IN, hidden_outputs=HIDDEN_OUT)
    assert ok.correct
    almost = _check(executor, task_type=TaskType.INDUCTION, answer="def f(x):\n    return x * 2 if x > 0 else 0",
                    hidden_inputs=HIDDEN_IN, hidden_outputs=HIDDEN_OUT)
    assert not almost.correct and almost.error_kind is ErrorKind.WRONG_ANSWER


def test_induction_answers_are_validated_like_proposals(executor):
    for answer, kind in (("import os\ndef f(x):\n    return x * 2", ErrorKind.FORBIDDEN),
                         ("def f(x):\n    return x\ndef h(x):\n    return x", ErrorKind.NOT_SINGLE_FUNCTION),
                         ("def f(x):\n    return float(x * 2)", ErrorKind.WRONG_ANSWER)):
        r = _check(executor, task_type=TaskType.INDUCTION, answer=answer, hidden_inputs=HIDDEN_IN, hidden_outputs=HIDDEN_OUT)
        assert not r.correct and r.error_kind is kind, answer


def test_mixed_batch_keeps_order(executor):
    items = [CheckItem(str(n), TaskType.ABDUCTION, f"[{n}]", "def f(xs):\n    return xs[0] * 2", str(2 * n))
             for n in range(30)]
    items[5] = CheckItem("5", TaskType.DEDUCTION, "1", gold_output="2")
    results = executor.check(items)
    assert [r.id for r in results] == [str(n) for n in range(30)]
    assert [r.correct for r in results] == [n != 5 for n in range(30)]
