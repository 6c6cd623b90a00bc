from azr import prompts
from azr.literals import parse_arguments, parse_literal, strict_equal
from azr.parsing import parse_proposal, parse_response, solver_answer
from azr.tasks import STEP_ORDER, InductionTask, TaskType, Triplet

T1 = Triplet("def f(a):\n    return a * 3", "[1]", "[1, 1, 1]")
T2 = Triplet("def f(s):\n    return s.upper()", "'ab'", "'AB'")
IND = InductionTask("def f(x):\n    return x + 1", "Adds one.", tuple(str(i) for i in range(10)),
                    tuple(str(i + 1) for i in range(10)))


def _run(program: str, args: str):
    # Test-only: runs the project's own trivial example programs, never model output.
    scope: dict = {}
    exec(program, scope)  # noqa: S102
    return scope["f"](*parse_arguments(args))


def test_deduction_solve_prompt_shows_program_and_input_not_output():
    text = prompts.solve_prompt(T1, TaskType.DEDUCTION).messages[-1].content
    assert T1.program in text and T1.input in text and T1.output not in text


def test_abduction_solve_prompt_shows_program_and_output_not_input():
    text = prompts.solve_prompt(T2, TaskType.ABDUCTION).messages[-1].content
    assert T2.program in text and T2.output in text and T2.input not in text


def test_induction_solve_prompt_shows_message_and_visible_pairs_only():
    text = prompts.solve_prompt(IND, TaskType.INDUCTION).messages[-1].content
    assert IND.message in text and IND.program not in text
    for i, o in IND.visible_pairs:
        assert f"f({i}) == {o}" in text
    for i, o in IND.hidden_pairs:
        assert f"f({i}) == {o}" not in text


def test_propose_prompts_carry_their_references():
    text = prompts.propose_prompt(TaskType.DEDUCTION, [T1, T2]).messages[-1].content
    assert all(part in text for part in (T1.program, T1.input, T1.output, T2.program))
    assert "Reference 2" in text and "Reference 3" not in text
    ind = prompts.propose_prompt(TaskType.INDUCTION, [T1]).messages[-1].content
    assert T1.program in ind and "```message" in ind and "10" in ind


def test_numbered_induction_prompts_label_every_input_block():
    plain = prompts.propose_prompt(TaskType.INDUCTION, [T1], 1)
    numbered = prompts.propose_prompt(TaskType.INDUCTION, [T1], 1, numbered_inputs=True)
    assert "Input 10:" in numbered.messages[-1].content and "Input 10:" not in plain.messages[-1].content
    example = numbered.messages[1].content
    assert [f"Input {k}:" in example for k in range(1, 12)] == [True] * 10 + [False]
    # The labels sit outside the blocks: the same ten inputs parse from both worked examples.
    parsed = [parse_proposal(parse_response(p.messages[1].content).answer, TaskType.INDUCTION) for p in (plain, numbered)]
    assert parsed[0] == parsed[1] and len(parsed[0].inputs) == 10


def test_prompt_ends_with_think_for_plain_text_models():
    prompt = prompts.solve_prompt(T1, TaskType.DEDUCTION)
    assert prompt.assistant_prefix == "<think>"
    assert prompt.as_text().endswith("Assistant: <think>")


def test_format_examples_are_correct_worked_examples():
    def build(task_type, role, n):
        if role == "propose":
            return prompts.propose_prompt(task_type, [T1], n)
        return prompts.solve_prompt(IND if task_type is TaskType.INDUCTION else T1, task_type, n)

    for task_type in STEP_ORDER:  # code I/O's prompts; bug repair has no worked examples
        for role in ("solve", "propose"):
            assert len(build(task_type, role, 0).messages) == 1
            prompt = build(task_type, role, prompts.MAX_FORMAT_EXAMPLES)
            assert len(prompt.messages) == 1 + 2 * prompts.MAX_FORMAT_EXAMPLES
            for user, assistant in zip(prompt.messages[:-1:2], prompt.messages[1:-1:2]):
                assert user.role == "user" and assistant.role == "assistant"
                parsed = parse_response(assistant.content)
                assert parsed.well_formatted, assistant.content
                if role == "propose":
                    proposal = parse_proposal(parsed.answer, task_type)
                    assert proposal.inputs
                    continue
                answer = solver_answer(parsed.answer, task_type)
                if task_type is TaskType.DEDUCTION:
                    program = user.content.split("```python\n")[1].split("\n```")[0]
                    args = user.content.split("```input\n")[1].split("\n```")[0]
                    assert strict_equal(parse_literal(answer), _run(program, args))
                elif task_type is TaskType.ABDUCTION:
                    program = user.content.split("```python\n")[1].split("\n```")[0]
                    gold = user.content.split("```output\n")[1].split("\n```")[0]
                    assert strict_equal(_run(program, answer), parse_literal(gold))


def test_worked_induction_examples_are_true():
    for t in prompts._WORKED:
        task = prompts._example_induction(t)
        for i, o in zip(task.inputs, task.outputs):
            assert strict_equal(_run(t.program, i), parse_literal(o)), (t.program, i)
