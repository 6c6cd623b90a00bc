"""Answer checking: strict typed equality in the trusted process; abduction and induction by execution."""

import pytest

from azr.jobs import CheckJob
from azr.programs import ErrorKind
from azr.tasks import TaskType

PROGRAM = "def f(a, b):\n    return (a + b, a * b)"


def _check(executor, **kw):
    return executor.check([CheckJob(**kw)])[0]


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


def test_answer_checks_call_f_twice_too(executor):
    """An induction answer whose first call on every hidden input is right, and an abduction
    task program that keeps state, are caught by the second call (issue 19)."""
    counting = "def f(x, seen=[]):\n    seen.append(x)\n    return x * 2 if len(seen) == 1 else 0"
    r = _check(executor, task_type=TaskType.INDUCTION, answer=counting, hidden_inputs=("1", "2"), hidden_outputs=("2", "4"))
    assert not r.correct and r.error_kind is ErrorKind.NONDETERMINISTIC and "keeps state across calls" in r.error_message
    r = _check(executor, task_type=TaskType.ABDUCTION, program=counting, gold_output="2", answer="1")
    assert not r.correct and r.error_kind is ErrorKind.NONDETERMINISTIC


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
    items = [CheckJob(TaskType.ABDUCTION, f"[{n}]", "def f(xs):\n    return xs[0] * 2", str(2 * n)) for n in range(30)]
    items[5] = CheckJob(TaskType.DEDUCTION, "1", gold_output="2")
    results = executor.check(items)
    assert len(results) == 30
    assert [r.correct for r in results] == [n != 5 for n in range(30)]


class _Recording:
    """A SandboxPool seen through: the jobs handed to it and the futures cancelled."""

    def __init__(self, pool):
        self.pool, self.submitted, self.cancelled = pool, 0, []

    def submit(self, jobs):
        self.submitted += len(jobs)
        return self.pool.submit(jobs)

    def cancel(self, futures, message):
        self.cancelled.append((len(futures), message))
        self.pool.cancel(futures, message)


LOOPS = "def f(x):\n    while x != 1:\n        x = x + 2\n    return x"


def test_identical_runs_are_made_once(process_pool):
    """The n solver samples of one task often agree: a shared answer runs once, verdicts per item."""
    from azr_executor.engine import Executor, Limits

    recording = _Recording(process_pool)
    executor = Executor(recording, Limits(timeout_seconds=0.5))
    answers = ["3"] * 6 + ["1"] * 2 + ["[1]"]  # 3 loops; 1 is the gold; [1] fails in f
    items = [CheckJob(TaskType.ABDUCTION, a, program=LOOPS, gold_output="1") for a in answers]
    results = executor.check(items)
    assert recording.submitted == 3
    assert [r.error_kind for r in results] == [ErrorKind.TIMEOUT] * 6 + [ErrorKind.NONE] * 2 + [ErrorKind.RUNTIME]
    assert all("wall-clock" in r.error_message for r in results[:6])


def test_a_failed_answer_cancels_its_other_runs(process_pool):
    """A looping induction answer costs one timeout, not one per hidden input; the verdict names the real failure."""
    from azr_executor.engine import MOOT_MESSAGE, Executor, Limits

    recording = _Recording(process_pool)
    executor = Executor(recording, Limits(timeout_seconds=0.5))
    inputs = [str(k) for k in (2, 4, 6, 8, 10, 12, 14, 16)]
    looping = CheckJob(TaskType.INDUCTION, LOOPS, hidden_inputs=tuple(inputs), hidden_outputs=tuple(inputs))
    correct = CheckJob(TaskType.INDUCTION, "def f(x):\n    return x", hidden_inputs=tuple(inputs), hidden_outputs=tuple(inputs))
    bad, good = executor.check([looping, correct])
    assert not bad.correct and bad.error_kind is ErrorKind.TIMEOUT and "wall-clock" in bad.error_message
    assert good.correct
    assert sum(n for n, message in recording.cancelled if message == MOOT_MESSAGE) >= 1


def test_the_sandbox_drops_cancelled_jobs(process_pool):
    """Cancelled jobs still queued in the sandbox never run: no result ever comes back for them."""
    from azr_executor.pool import make_job

    seen = []
    original = process_pool._resolve
    process_pool._resolve = lambda result: (seen.append(result.get("id")), original(result))
    try:
        code = compile("def f(x):\n    while True:\n        pass", "<program>", "exec")
        looping = process_pool.submit([make_job(code, (1,), 0, 0.5, 100) for _ in range(4)])
        process_pool.cancel(looping[1:], "not needed")
        quick = process_pool.submit([make_job(compile("def f(x):\n    return x", "<program>", "exec"), (7,), 0, 5, 100)])
        assert quick[0].result(timeout=30) == {"id": quick[0].job_id, "output": "7"}
        assert looping[0].result()["error"] == "timeout"
        assert [f.result()["message"] for f in looping[1:]] == ["not needed"] * 3
    finally:
        process_pool._resolve = original
    assert not {f.job_id for f in looping[1:]} & set(seen)
