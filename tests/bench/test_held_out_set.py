"""The held-out code-reasoning set that ships in bench/data: well-formed for `azr eval`, and
every expected output is what its program returns on its input (run in the sandbox)."""

from pathlib import Path

from azr.jobs import CheckJob
from azr.tasks import TaskType
from azr_executor.engine import Executor, Limits
from azr_launcher.evaluate import _read_code_reasoning

HELD_OUT = Path(__file__).resolve().parents[2] / "bench" / "data" / "code-reasoning.jsonl"


def test_every_record_reads_and_its_output_is_what_the_program_returns(process_pool):
    records = _read_code_reasoning(str(HELD_OUT))
    assert len(records) == 151 and len({r["id"] for r in records}) == 151
    assert all("def f(" in r["code"] for r in records)
    # An abduction answer is run: f(answer) must give the expected output.
    checks = [CheckJob(TaskType.ABDUCTION, r["input"], r["code"], r["output"]) for r in records]
    results = Executor(process_pool, Limits(timeout_seconds=10.0)).check(checks)
    wrong = [(record["id"], r.error_kind, r.error_message) for record, r in zip(records, results) if not r.correct]
    assert not wrong, wrong[:5]
    # ...and a wrong output is caught.
    first = records[0]
    [result] = Executor(process_pool, Limits(timeout_seconds=10.0)).check(
        [CheckJob(TaskType.ABDUCTION, first["input"], first["code"], repr("not " + first["output"]))])
    assert not result.correct
