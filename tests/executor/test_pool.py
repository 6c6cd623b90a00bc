"""The trusted side's handles on sandbox runs: JobFuture and the code shipped with a job."""

import threading

import pytest

from azr_executor.pool import JobFuture, ShippedCode, make_job


def test_a_job_future_hands_its_result_to_callbacks_and_waiters():
    future = JobFuture(7)
    seen = []
    future.add_done_callback(lambda f: seen.append(("early", f.result())))
    waiter = threading.Thread(target=lambda: seen.append(("waited", future.result(timeout=10))))
    waiter.start()
    assert not future.done()
    future.set_result({"id": 7, "output": "1"})
    waiter.join(10)
    future.add_done_callback(lambda f: seen.append(("late", f.result())))  # runs at once
    assert future.done()
    assert sorted(seen) == [("early", {"id": 7, "output": "1"}), ("late", {"id": 7, "output": "1"}),
                            ("waited", {"id": 7, "output": "1"})]


def test_a_job_future_times_out_and_refuses_a_second_result():
    future = JobFuture(3)
    with pytest.raises(TimeoutError, match="job 3"):
        future.result(timeout=0.01)
    future.set_result({"id": 3, "error": "timeout", "message": "x"})
    with pytest.raises(RuntimeError, match="already has a result"):
        future.set_result({"id": 3, "output": "2"})
    assert future.result(timeout=0) == {"id": 3, "error": "timeout", "message": "x"}


@pytest.mark.parametrize("source, thorough", [
    ("def f(x):\n    return sorted(x)", False),
    ("import math\ndef f(x):\n    return math.floor(x)", False),
    ("def f(x):\n    math.pi = x\n    return x", True),                # an attribute store
    ("def f(x):\n    return setattr(x, 'a', 1)", True),               # reflective access
    ("def f(x):\n    return (lambda: x.__class__)()", True),          # a dunder, in a nested code object
    ("from collections import namedtuple\ndef f(x):\n    return x._replace()", True),
])
def test_shipped_code_says_when_the_worker_must_check_module_classes(source, thorough):
    """Programs that could change a namespace get the thorough state check after each run."""
    shipped = ShippedCode.of(compile(source, "<program>", "exec"))
    assert shipped.thorough is thorough
    job = make_job(shipped, (1,), 0, 1.0, 100)
    assert job["code"] == shipped.data and job["thorough"] is thorough
