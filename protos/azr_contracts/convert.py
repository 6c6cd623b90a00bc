"""Every conversion between the core library's types and the contract's messages.

Clients build requests and servers read them through these functions, so a field of the
contract is mapped in one place. Protobuf only: no gRPC, no engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from azr.jobs import CheckJob, Validation, ValidationJob, Verdict
from azr.programs import ErrorKind
from azr.prompts import Message, Prompt
from azr.selfplay import Sampling
from azr.tasks import TaskType
from azr_contracts.v1 import common_pb2, executor_pb2, generator_pb2

_TASK_TYPES = {TaskType.ABDUCTION: common_pb2.TASK_TYPE_ABDUCTION, TaskType.DEDUCTION: common_pb2.TASK_TYPE_DEDUCTION,
               TaskType.INDUCTION: common_pb2.TASK_TYPE_INDUCTION}
_TASK_TYPES_BACK = {v: k for k, v in _TASK_TYPES.items()}


def task_type_to_proto(task_type: TaskType) -> int:
    """The executor grades code I/O's three kinds of answer; other domains ask as one of them."""
    try:
        return _TASK_TYPES[task_type]
    except KeyError:
        raise ValueError(f"the executor grades no {task_type.value} answers; check them as one of "
                         f"{[t.value for t in _TASK_TYPES]}") from None


def task_type_from_proto(value: int) -> TaskType | None:
    """None for TASK_TYPE_UNSPECIFIED or a value this version does not know."""
    return _TASK_TYPES_BACK.get(value)


def error_kind_to_proto(kind: ErrorKind) -> int:
    """ErrorKind.NONE is the contract's ERROR_KIND_UNSPECIFIED; the others share their names."""
    if kind is ErrorKind.NONE:
        return common_pb2.ERROR_KIND_UNSPECIFIED
    return common_pb2.ErrorKind.Value(f"ERROR_KIND_{kind.name}")


def error_kind_from_proto(value: int) -> ErrorKind:
    if value == common_pb2.ERROR_KIND_UNSPECIFIED:
        return ErrorKind.NONE
    return ErrorKind[common_pb2.ErrorKind.Name(value).removeprefix("ERROR_KIND_")]


def prompt_to_proto(prompt: Prompt) -> generator_pb2.Prompt:
    return generator_pb2.Prompt(messages=[generator_pb2.ChatMessage(role=m.role, content=m.content) for m in prompt.messages],
                                assistant_prefix=prompt.assistant_prefix)


def prompt_from_proto(prompt: generator_pb2.Prompt) -> Prompt:
    """A conversation prompt (a raw `text` prompt has no core form: the server encodes it as is)."""
    return Prompt(tuple(Message(m.role, m.content) for m in prompt.messages), assistant_prefix=prompt.assistant_prefix)


def sampling_to_proto(sampling: Sampling) -> generator_pb2.SamplingParams:
    return generator_pb2.SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                                        seed=sampling.seed or 0, has_seed=sampling.seed is not None,
                                        skip_logprobs=not sampling.logprobs)


# -- the executor: jobs travel as items with ids (the client numbers them), verdicts in order --

def validate_request(jobs: Sequence[ValidationJob], first_id: int = 0) -> executor_pb2.ValidateRequest:
    return executor_pb2.ValidateRequest(items=[executor_pb2.ValidateItem(id=str(first_id + k), program=j.program,
                                                                         inputs=list(j.inputs)) for k, j in enumerate(jobs)])


def validation_job_from_proto(item: executor_pb2.ValidateItem) -> ValidationJob:
    return ValidationJob(item.program, tuple(item.inputs))


def validate_response(ids: Sequence[str], validations: Sequence[Validation]) -> executor_pb2.ValidateResponse:
    return executor_pb2.ValidateResponse(results=[
        executor_pb2.ValidateResult(id=i, valid=v.valid, outputs=list(v.outputs), error_kind=error_kind_to_proto(v.error_kind),
                                    error_message=v.error_message) for i, v in zip(ids, validations, strict=True)])


def validations_from_proto(response: executor_pb2.ValidateResponse) -> list[Validation]:
    return [Validation(r.valid, tuple(r.outputs), error_kind_from_proto(r.error_kind), r.error_message) for r in response.results]


def check_request(jobs: Sequence[CheckJob], first_id: int = 0) -> executor_pb2.CheckRequest:
    return executor_pb2.CheckRequest(items=[
        executor_pb2.CheckItem(id=str(first_id + k), task_type=task_type_to_proto(j.task_type), program=j.program,
                               gold_output=j.gold_output, answer=j.answer, hidden_inputs=list(j.hidden_inputs),
                               hidden_outputs=list(j.hidden_outputs)) for k, j in enumerate(jobs)])


def check_job_from_proto(item: executor_pb2.CheckItem, task_type: TaskType) -> CheckJob:
    """`task_type`: the item's, already read (and refused when unknown) by the caller."""
    return CheckJob(task_type, item.answer, item.program, item.gold_output, tuple(item.hidden_inputs), tuple(item.hidden_outputs))


def check_response(ids: Sequence[str], verdicts: Sequence[Verdict]) -> executor_pb2.CheckResponse:
    return executor_pb2.CheckResponse(results=[
        executor_pb2.CheckResult(id=i, correct=v.correct, error_kind=error_kind_to_proto(v.error_kind), error_message=v.error_message)
        for i, v in zip(ids, verdicts, strict=True)])


def verdicts_from_proto(response: executor_pb2.CheckResponse) -> list[Verdict]:
    return [Verdict(r.correct, error_kind_from_proto(r.error_kind), r.error_message) for r in response.results]
