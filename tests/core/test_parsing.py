import pytest

from azr.parsing import ProposalError, parse_proposal, parse_response, solver_answer
from azr.tasks import TaskType


def test_well_formatted_response_after_think_prefix():
    parsed = parse_response("reasoning</think>\n<answer>42</answer>")
    assert parsed.well_formatted and parsed.answer == "42"


def test_response_repeating_the_think_tag_is_fine():
    assert parse_response("<think>r</think><answer>1</answer>").well_formatted


@pytest.mark.parametrize("completion", [
    "no tags at all",
    "r</think> 42",
    "r</think><answer>42",
    "<answer>42</answer>",              # answer inside the think block: no closing think
    "r</think><answer>1</answer> and then more text",
    "r</think></think><answer>1</answer>",
])
def test_format_errors(completion):
    assert not parse_response(completion).well_formatted


def test_answer_is_the_last_answer_span():
    parsed = parse_response("r</think><answer>1</answer><answer>2</answer>")
    assert parsed.answer == "2"


def test_fallback_to_last_fenced_block_keeps_the_format_error():
    parsed = parse_response("I think\n```python\nprint(1)\n```\n```output\n7\n```")
    assert parsed.answer == "7" and not parsed.well_formatted
    assert parse_response("```output\n7\n```", fallback=False).answer is None


def test_deduction_proposal():
    answer = "```python\ndef f(x):\n    return x + 1\n```\n```input\n3\n```"
    proposal = parse_proposal(answer, TaskType.DEDUCTION)
    assert proposal.program == "def f(x):\n    return x + 1" and proposal.inputs == ("3",)


@pytest.mark.parametrize("answer", ["```input\n3\n```", "```python\ndef f(x):\n    return x\n```", "nothing"])
def test_incomplete_proposals(answer):
    with pytest.raises(ProposalError):
        parse_proposal(answer, TaskType.ABDUCTION)


def _induction(n_inputs, message="Adds one."):
    inputs = "\n".join(f"```input\n{i}\n```" for i in range(n_inputs))
    return inputs + (f"\n```message\n{message}\n```" if message is not None else "")


def test_induction_needs_ten_inputs_and_keeps_the_last_ten():
    with pytest.raises(ProposalError):
        parse_proposal(_induction(9), TaskType.INDUCTION)
    proposal = parse_proposal(_induction(12), TaskType.INDUCTION)
    assert proposal.inputs == tuple(str(i) for i in range(2, 12)) and proposal.message == "Adds one."


@pytest.mark.parametrize("message", [None, "", "def f(x): return x", "   return x", "import math"])
def test_induction_message_required_and_code_free(message):
    with pytest.raises(ProposalError):
        parse_proposal(_induction(10, message), TaskType.INDUCTION)


def test_solver_answers():
    assert solver_answer("```output\n[1, 2]\n```", TaskType.DEDUCTION) == "[1, 2]"
    assert solver_answer("`3`", TaskType.DEDUCTION) == "3"
    assert solver_answer(" 'a', 1 ", TaskType.ABDUCTION) == "'a', 1"
    assert solver_answer("```python\ndef f(x):\n    return x\n```", TaskType.INDUCTION) == "def f(x):\n    return x"
    assert solver_answer("def f(x):\n    return x", TaskType.INDUCTION) == "def f(x):\n    return x"


def test_proposal_text_falls_back_to_the_whole_completion():
    from azr.parsing import proposal_text
    from azr.tasks import TaskType

    completion = "idea</think>\n```python\ndef f(x):\n    return x + 1\n```\n```input\n3\n```"
    parsed = parse_response(completion)
    assert not parsed.tagged and not parsed.well_formatted
    proposal = parse_proposal(proposal_text(completion, parsed), TaskType.DEDUCTION)
    assert proposal.program.startswith("def f(x)") and proposal.inputs == ("3",)
    assert proposal_text(completion, parsed, fallback=False) is None
    tagged = parse_response("r</think><answer>```python\ndef f(x):\n    return x\n```\n```input\n1\n```</answer>")
    assert tagged.tagged and proposal_text("ignored", tagged) == tagged.answer
