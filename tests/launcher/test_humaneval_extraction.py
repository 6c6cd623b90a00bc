"""How `azr eval` reads the function out of a HumanEval reply (pure: no engine, no sandbox)."""

from azr_launcher.evaluate import humaneval_program

PROBLEM = {"prompt": "import math\n\n\ndef area(r):\n    \"\"\"The area of a circle of radius r.\"\"\"\n", "entry_point": "area"}
FUNCTION = "def area(r):\n    return math.pi * r * r"


def test_the_last_python_block_is_the_function():
    reply = f"First try:\n```python\ndef area(r):\n    return 0\n```\nBetter:\n```python\n{FUNCTION}\n```"
    assert humaneval_program(PROBLEM, reply) == FUNCTION + "\n"


def test_a_reply_in_self_plays_format_is_read_from_its_answer_tags():
    reply = f"The area is pi r squared.</think>\n<answer>\n{FUNCTION}\n</answer>"
    assert humaneval_program(PROBLEM, reply) == FUNCTION


def test_a_body_alone_gets_the_prompt_and_its_imports_in_front():
    body = "    return math.pi * r * r\n"
    assert humaneval_program(PROBLEM, body) == PROBLEM["prompt"] + body
    # A tagged answer that is only the body is completed the same way.
    assert humaneval_program(PROBLEM, f"pi r^2</think><answer>{body}</answer>") == PROBLEM["prompt"] + body.strip()
