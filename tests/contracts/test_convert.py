"""azr_contracts.convert: every core <-> protobuf mapping, in both directions where both exist."""

import pytest

from azr.jobs import CheckJob, Validation, ValidationJob, Verdict
from azr.programs import ErrorKind
from azr.prompts import solve_prompt
from azr.selfplay import Sampling
from azr.tasks import STEP_ORDER, TaskType, Triplet
from azr_contracts import convert
from azr_contracts.v1 import common_pb2


@pytest.mark.parametrize("task_type", STEP_ORDER)
def test_task_types_round_trip(task_type):
    assert convert.task_type_from_proto(convert.task_type_to_proto(task_type)) is task_type


def test_a_task_type_the_executor_does_not_grade_has_no_wire_form():
    """Bug repair's answers are checked as induction answers: REPAIR never crosses the wire."""
    with pytest.raises(ValueError, match="repair"):
        convert.task_type_to_proto(TaskType.REPAIR)


def test_an_unspecified_or_unknown_task_type_has_no_core_form():
    assert convert.task_type_from_proto(common_pb2.TASK_TYPE_UNSPECIFIED) is None
    assert convert.task_type_from_proto(99) is None


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_error_kinds_round_trip(kind):
    assert convert.error_kind_from_proto(convert.error_kind_to_proto(kind)) is kind
    assert (convert.error_kind_to_proto(kind) == common_pb2.ERROR_KIND_UNSPECIFIED) == (kind is ErrorKind.NONE)


def test_prompts_round_trip_and_keep_the_assistant_prefix():
    prompt = solve_prompt(Triplet("def f(x):\n    return x", "1", "1"), TaskType.DEDUCTION, format_examples=1)
    message = convert.prompt_to_proto(prompt)
    assert [m.role for m in message.messages] == [m.role for m in prompt.messages] and not message.text
    assert convert.prompt_from_proto(message) == prompt


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_sampling_says_whether_it_is_seeded(seed):
    params = convert.sampling_to_proto(Sampling(temperature=0.5, top_p=0.9, max_tokens=64, seed=seed, logprobs=False))
    assert (params.has_seed, params.seed) == (seed is not None, seed or 0)
    assert params.skip_logprobs and params.max_tokens == 64 and params.top_p == pytest.approx(0.9)


def test_requests_number_their_items_from_the_first_id():
    validate = convert.validate_request([ValidationJob("def f(x):\n    return x", ("1", "2"))], first_id=5)
    assert [(i.id, list(i.inputs)) for i in validate.items] == [("5", ["1", "2"])]
    job = CheckJob(TaskType.INDUCTION, "def f(x):\n    return x", hidden_inputs=("1",), hidden_outputs=("1",))
    check = convert.check_request([CheckJob(TaskType.DEDUCTION, "2", "def f(x):\n    return x + 1", "2"), job], first_id=3)
    assert [i.id for i in check.items] == ["3", "4"]
    assert check.items[0].task_type == common_pb2.TASK_TYPE_DEDUCTION and check.items[0].gold_output == "2"
    assert list(check.items[1].hidden_inputs) == ["1"] and check.items[1].task_type == common_pb2.TASK_TYPE_INDUCTION


def test_jobs_and_their_results_round_trip_with_the_ids_beside_them():
    jobs = [ValidationJob("def f(x):\n    return x", ("1", "[2]"))]
    assert [convert.validation_job_from_proto(i) for i in convert.validate_request(jobs).items] == jobs
    checks = [CheckJob(TaskType.ABDUCTION, "3", "def f(x):\n    return x", "3"),
              CheckJob(TaskType.INDUCTION, "def f(x):\n    return x", hidden_inputs=("1",), hidden_outputs=("1",))]
    items = convert.check_request(checks).items
    assert [convert.check_job_from_proto(i, convert.task_type_from_proto(i.task_type)) for i in items] == checks
    validations = [Validation(True, ("1", "[2]")), Validation(False, error_kind=ErrorKind.TIMEOUT, error_message="input 0: slow")]
    response = convert.validate_response(["a", "b"], validations)
    assert [r.id for r in response.results] == ["a", "b"] and convert.validations_from_proto(response) == validations
    verdicts = [Verdict(True), Verdict(False, ErrorKind.WRONG_ANSWER, "got 2")]
    response = convert.check_response(["c", "d"], verdicts)
    assert [r.id for r in response.results] == ["c", "d"] and convert.verdicts_from_proto(response) == verdicts
    with pytest.raises(ValueError):
        convert.check_response(["c"], verdicts)  # an id for every verdict


def test_a_model_without_a_chat_template_gets_the_core_prompts_plain_text():
    from azr_generation.server import render_prompt

    class PlainTokenizer:
        chat_template = None

        def encode(self, text, add_special_tokens=True):
            self.text = text
            return [len(text)]

    tokenizer = PlainTokenizer()
    prompt = solve_prompt(Triplet("def f(x):\n    return x", "1", "1"), TaskType.ABDUCTION, format_examples=1)
    assert render_prompt(tokenizer, convert.prompt_to_proto(prompt)) == [len(prompt.as_text())]
    assert tokenizer.text == prompt.as_text() and tokenizer.text.endswith("Assistant: " + prompt.assistant_prefix)
