"""Prompt builders for the three task types and both roles (docs/method.md, part 2).

A prompt is a conversation: optional worked examples of the answer format (`formatExamples`,
docs/method.md, part 3), then the instruction. The assistant turn starts with "<think>"; for a
model without a chat template, `Prompt.as_text()` gives plain text ending with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from azr.parsing import THINK_PREFIX
from azr.tasks import INDUCTION_INPUTS, InductionTask, Role, Task, TaskType, Triplet

FORMAT_RULE = ("First think step by step inside <think> </think>, then give your final answer "
               "inside <answer> </answer>.")
SANDBOX_RULES = ("The function must be deterministic and self-contained: plain Python and standard "
                 "modules only, no randomness, no time, no files, no network, no printing, no classes. "
                 "Its inputs and output must be Python literals (numbers, strings, lists, tuples, dicts, sets).")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Prompt:
    messages: tuple[Message, ...]
    assistant_prefix: str = THINK_PREFIX

    def as_text(self) -> str:
        """Plain-text rendering for models without a chat template."""
        parts = []
        for m in self.messages:
            parts.append(m.content if m.role != "assistant" else f"Assistant: {m.content}")
        return "\n\n".join(parts) + f"\n\nAssistant: {self.assistant_prefix}"


def _fence(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```"


def _triplet_block(t: Triplet) -> str:
    return "\n".join((_fence("python", t.program), _fence("input", t.input), _fence("output", t.output)))


# --- solver prompts -------------------------------------------------------------------------

def _solve_instruction(task: Task, task_type: TaskType) -> str:
    if task_type is TaskType.DEDUCTION:
        assert isinstance(task, Triplet)
        return (f"Predict the output of the function for the given input.\n\n"
                f"{_fence('python', task.program)}\n{_fence('input', task.input)}\n\n"
                f"{FORMAT_RULE} The answer is the output as a Python literal, e.g. <answer>[1, 2]</answer>.")
    if task_type is TaskType.ABDUCTION:
        assert isinstance(task, Triplet)
        return (f"Find an input for which the function returns the given output.\n\n"
                f"{_fence('python', task.program)}\n{_fence('output', task.output)}\n\n"
                f"{FORMAT_RULE} The answer is the arguments of the call f(...) as Python literals, "
                f"e.g. <answer>[1, 2], 'a'</answer> for f([1, 2], 'a').")
    assert isinstance(task, InductionTask)
    pairs = "\n".join(f"f({i}) == {o}" for i, o in task.visible_pairs)
    return (f"Write a Python function f that matches the description and the examples.\n\n"
            f"Description: {task.message}\n\nExamples:\n{pairs}\n\n"
            f"{FORMAT_RULE} The answer is the function in a ```python block. {SANDBOX_RULES}")


def solve_prompt(task: Task, task_type: TaskType, format_examples: int = 0) -> Prompt:
    return Prompt(_examples(task_type, Role.SOLVE, format_examples) + (Message("user", _solve_instruction(task, task_type)),))


# --- proposer prompts -----------------------------------------------------------------------

_PROPOSE_GOAL = {
    TaskType.DEDUCTION: ("a new function f and an input, such that predicting the output from the code and the input "
                         "is a challenging but solvable reasoning task"),
    TaskType.ABDUCTION: ("a new function f and an input, such that finding an input that produces the output, given "
                         "the code, is a challenging but solvable reasoning task"),
}


def propose_prompt(task_type: TaskType, references: list[Task], format_examples: int = 0,
                   numbered_inputs: bool = False) -> Prompt:
    """Deduction/abduction: K reference triplets; induction: one reference program.

    `numbered_inputs` ([project], docs/method.md, part 3) labels induction's input blocks
    "Input 1:" to "Input 10:": instruct models asked for ten unlabelled blocks stop at six to
    nine, and labels let them count. The labels are outside the blocks, so the parser and its
    rule (at least ten blocks, the last ten count) are the same either way.
    """
    if task_type is TaskType.INDUCTION:
        (ref,) = references
        assert isinstance(ref, Triplet)
        blocks = (f"numbered \"Input 1:\" to \"Input {INDUCTION_INPUTS}:\", each label followed by its own "
                  f"```input block" if numbered_inputs else "each in its own ```input block")
        text = (f"Here is a function:\n\n{_fence('python', ref.program)}\n\n"
                f"Write exactly {INDUCTION_INPUTS} diverse inputs for it, {blocks} "
                f"(the arguments of a call f(...) as Python literals), and a short message in a ```message "
                f"block that describes what the function does, so that someone who sees only the message and "
                f"some input/output pairs could write it. The message must not contain code.\n\n{FORMAT_RULE}")
    else:
        refs = "\n\n".join(f"Reference {n}:\n{_triplet_block(t)}" for n, t in enumerate(references, 1) if isinstance(t, Triplet))
        text = (f"Design {_PROPOSE_GOAL[task_type]}. It must be different from these references:\n\n{refs}\n\n"
                f"{SANDBOX_RULES}\n\n{FORMAT_RULE} The answer holds the function in a ```python block, "
                f"then its input in an ```input block (the arguments of the call f(...)).")
    examples = _examples(task_type, Role.PROPOSE, format_examples, numbered_inputs)
    return Prompt(examples + (Message("user", text),))


# --- worked examples of the answer format -----------------------------------------------------
# Trivial programs written by the project to show the format, not training data.

_ADD = Triplet("def f(a, b):\n    return a + b", "2, 3", "5")
_REV = Triplet("def f(s):\n    return s[::-1]", "'abc'", "'cba'")
_EVENS = Triplet("def f(xs):\n    return [x for x in xs if x % 2 == 0]", "[1, 2, 3, 4]", "[2, 4]")
_WORKED = (_ADD, _REV, _EVENS)
_THOUGHT = {_ADD: "f adds its two arguments: 2 + 3 = 5.", _REV: "f reverses the string: 'abc' becomes 'cba'.",
            _EVENS: "f keeps the even numbers of the list: 2 and 4."}


def _example_induction(t: Triplet) -> InductionTask:
    inputs = {_ADD: ("1, 2", "0, 0", "5, 7", "-1, 1", "10, 20", "3, 4", "100, 1", "2, 2", "-5, -5", "8, 9"),
              _REV: ("'abc'", "''", "'a'", "'ab'", "'racecar'", "'hello'", "'xyz'", "'12'", "'aab'", "'zz top'"),
              _EVENS: ("[1, 2, 3, 4]", "[]", "[2]", "[1, 3]", "[0, 5, 6]", "[8, 8]", "[7]", "[10, 11, 12]", "[4, 3]", "[-2, -1]")}[t]
    # Outputs of these three trivial programs, written out (nothing is evaluated here).
    outputs = {_ADD: ("3", "0", "12", "0", "30", "7", "101", "4", "-10", "17"),
               _REV: ("'cba'", "''", "'a'", "'ba'", "'racecar'", "'olleh'", "'zyx'", "'21'", "'baa'", "'pot zz'"),
               _EVENS: ("[2, 4]", "[]", "[2]", "[]", "[0, 6]", "[8, 8]", "[]", "[10, 12]", "[4]", "[-2]")}[t]
    return InductionTask(t.program, {_ADD: "Returns the sum of its two arguments.",
                                     _REV: "Returns the string reversed.",
                                     _EVENS: "Returns the even numbers of the list, in order."}[t], inputs, outputs)


def _example_turns(t: Triplet, task_type: TaskType, role: Role, numbered_inputs: bool) -> tuple[Message, Message]:
    thought = _THOUGHT[t]
    if role is Role.SOLVE:
        if task_type is TaskType.INDUCTION:
            task: Task = _example_induction(t)
            answer = _fence("python", t.program)
        else:
            task = t
            answer = t.output if task_type is TaskType.DEDUCTION else t.input
        user = _solve_instruction(task, task_type)
    else:
        others = [w for w in _WORKED if w is not t][:1]
        if task_type is TaskType.INDUCTION:
            ind = _example_induction(t)
            user = propose_prompt(task_type, [t], numbered_inputs=numbered_inputs).messages[-1].content
            answer = "\n".join((f"Input {k}:\n" if numbered_inputs else "") + _fence("input", i)
                               for k, i in enumerate(ind.inputs, 1)) + "\n" + _fence("message", ind.message)
        else:
            user = propose_prompt(task_type, others).messages[-1].content
            answer = _fence("python", t.program) + "\n" + _fence("input", t.input)
    return Message("user", user), Message("assistant", f"{THINK_PREFIX}{thought}</think>\n<answer>{answer}</answer>")


def _examples(task_type: TaskType, role: Role, count: int, numbered_inputs: bool = False) -> tuple[Message, ...]:
    if count < 0:
        raise ValueError("formatExamples must be >= 0")
    turns: list[Message] = []
    for t in _WORKED[:count]:
        turns.extend(_example_turns(t, task_type, role, numbered_inputs))
    return tuple(turns)


MAX_FORMAT_EXAMPLES = len(_WORKED)


def fence(lang: str, body: str) -> str:
    """A fenced block, as every prompt writes one."""
    return _fence(lang, body)


def worked_induction_task() -> InductionTask:
    """A project-written program with ten input/output pairs: what bug repair starts from while
    the induction buffer is empty (as the identity triplet does for code I/O)."""
    return _example_induction(_EVENS)


def worked_sum_task() -> InductionTask:
    """The worked example's program (a + b) with its ten pairs: bug repair's format example."""
    return _example_induction(_ADD)
