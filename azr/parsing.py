"""Parsing model output: the <think>/<answer> format, fenced blocks, proposals and answers.

All of it is string work on hostile text; nothing here evaluates anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from azr.tasks import INDUCTION_INPUTS, TaskType

THINK_PREFIX = "<think>"
_FORMAT = re.compile(r"\A\s*<think>.*?</think>\s*<answer>.*</answer>\s*\Z", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
MAX_MESSAGE_CHARS = 2_000


@dataclass(frozen=True)
class ParsedResponse:
    well_formatted: bool   # <think>...</think> then <answer>...</answer>, nothing else
    answer: str | None     # content of the last <answer> span, or the fallback
    tagged: bool = False   # the answer came from <answer> tags, not from the fallback


def parse_response(completion: str, prefix: str = THINK_PREFIX, fallback: bool = True) -> ParsedResponse:
    """Split a completion into its format verdict and its answer.

    The prompt ends with `prefix` ("<think>"), so the completion usually does not repeat it.
    With `fallback`, a completion without answer tags still yields its last fenced block as
    the answer (as the reference does); the format verdict stays False either way.
    """
    text = completion if completion.lstrip().startswith(prefix) else prefix + completion
    well_formatted = bool(_FORMAT.match(text)) and text.count("</think>") == 1
    spans = _ANSWER.findall(text)
    if spans:
        return ParsedResponse(well_formatted, spans[-1].strip(), tagged=True)
    if fallback:
        blocks = fenced_blocks(text)
        if blocks:
            return ParsedResponse(False, blocks[-1][1].strip())
    return ParsedResponse(False, None)


def proposal_text(completion: str, parsed: ParsedResponse, fallback: bool = True) -> str | None:
    """What a proposal is parsed from: the tagged answer, or (fallback) the whole completion,
    since a proposal's blocks only make sense together (the last block alone would lose them)."""
    if parsed.tagged:
        return parsed.answer
    return completion if fallback else None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every ```lang ... ``` block as (lang, body), in order."""
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text)]


def _blocks(text: str, *langs: str) -> list[str]:
    return [body.strip("\n") for lang, body in fenced_blocks(text) if lang in langs]


@dataclass(frozen=True)
class Proposal:
    """What a proposer wrote, before the executor has seen it."""

    program: str
    inputs: tuple[str, ...]
    message: str = ""


class ProposalError(ValueError):
    pass


def parse_proposal(answer: str, task_type: TaskType) -> Proposal:
    """Deduction/abduction: a python block and an input block. Induction: inputs and a message.

    Induction needs at least INDUCTION_INPUTS input blocks (the last ones count when there
    are more) and a non-empty message with no code in it.
    """
    if task_type is TaskType.INDUCTION:
        inputs = [i.strip() for i in _blocks(answer, "input")]
        if len(inputs) < INDUCTION_INPUTS:
            raise ProposalError(f"induction needs {INDUCTION_INPUTS} input blocks, found {len(inputs)}")
        messages = _blocks(answer, "message")
        message = messages[-1].strip() if messages else ""
        if not message:
            raise ProposalError("induction needs a non-empty message block")
        if len(message) > MAX_MESSAGE_CHARS:
            raise ProposalError(f"message longer than {MAX_MESSAGE_CHARS} characters")
        if looks_like_code(message):
            raise ProposalError("the message must describe the function, not contain code")
        return Proposal(program="", inputs=tuple(inputs[-INDUCTION_INPUTS:]), message=message)
    programs = _blocks(answer, "python", "py")
    inputs = _blocks(answer, "input")
    if not programs:
        raise ProposalError("no ```python block")
    if not inputs or not inputs[0].strip():
        raise ProposalError("no ```input block")
    return Proposal(program=programs[0], inputs=(inputs[0].strip(),))


def looks_like_code(message: str) -> bool:
    return "```" in message or bool(re.search(r"^\s*(def|return|import|for|while)\b", message, re.MULTILINE))


def solver_answer(answer: str, task_type: TaskType) -> str:
    """The part of a solver's answer that the executor checks.

    Deduction: an output literal; abduction: literal arguments; induction: a program.
    Tolerates the answer wrapped in a fenced block or in single backticks.
    """
    blocks = fenced_blocks(answer)
    if task_type is TaskType.INDUCTION:
        code = [body for lang, body in blocks if lang in ("python", "py", "")]
        return (code[-1] if code else answer).strip("\n")
    if blocks:
        answer = blocks[-1][1]
    answer = answer.strip()
    if len(answer) >= 2 and answer[0] == answer[-1] == "`":
        answer = answer.strip("`").strip()
    return answer
