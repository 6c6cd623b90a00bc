"""Write bench/data/programs.jsonl: small human-written programs with one literal input each,
from HumanEval's canonical solutions and the first literal case of their tests. Docstrings are
dropped: self-play proposals are short functions without them, and both sides of the
benchmark would otherwise spend their time parsing prose.

Also bench/data/code-reasoning.jsonl, the held-out set of `azr eval --code-reasoning`: the
same programs with that case's expected output. Self-play never trains on human-written code,
so these are held out by construction.

    python bench/azr_bench/make_programs.py
"""

import ast
import json
from pathlib import Path

from azr_launcher.humaneval import load_cases


def without_docstrings(program: str) -> str:
    tree = ast.parse(program)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def main() -> None:
    usable, _ = load_cases()
    out = Path(__file__).resolve().parents[1] / "data" / "programs.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "w", encoding="utf-8") as stream:
        for case in usable:
            stream.write(json.dumps({"id": case.task_id, "program": without_docstrings(case.program),
                                     "input": case.inputs[0]}) + "\n")
    print(f"{len(usable)} programs -> {out}")
    held_out = out.with_name("code-reasoning.jsonl")
    with open(held_out, "w", encoding="utf-8") as stream:
        for case in usable:
            stream.write(json.dumps({"id": case.task_id, "code": without_docstrings(case.program),
                                     "input": case.inputs[0], "output": case.expected[0]}) + "\n")
    print(f"{len(usable)} code-reasoning records -> {held_out}")


if __name__ == "__main__":
    main()
