"""Python literals as the only currency between the model, the sandbox and the trusted side.

Model text is hostile: it is only ever parsed here with `ast`, never evaluated. Inputs are
literal positional arguments (no names, calls or operators), which closes the reference's
input-injection hole (`1) or True or (1`). Results compare with *strict* equality: types must
match exactly at every level (tuple != list, 1 != True, 1 != 1.0).
"""

from __future__ import annotations

import ast
import re
from typing import Any

MAX_LITERAL_CHARS = 10_000

# The builtin types a result may be built from (docs/method.md, part 4), compared by exact type.
LITERAL_TYPES: frozenset[type] = frozenset(
    {type(None), bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset}
)


class LiteralError(ValueError):
    """Text that is not the literal it should be."""


_CONSTANTS = {"True": True, "False": False, "None": None}
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,40})")  # no leading zeros: `007` does not parse
_NOT_SIMPLE = object()


def _simple_literal(text: str) -> Any:
    """The value of a literal that needs no parser (a constant, a short integer, a printable
    ASCII string with no quote or backslash inside), or _NOT_SIMPLE. Most results and inputs
    are such, and the parser costs several times more; anything else goes to the parser."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INTEGER.fullmatch(text):
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and text.isascii() and text.isprintable():
        inner = text[1:-1]
        if text[0] not in inner and "\\" not in inner:
            return inner
    return _NOT_SIMPLE


def parse_literal(text: str) -> Any:
    """The value of one Python literal, e.g. "[1, (2, 'a')]" or "frozenset({1})"."""
    if len(text) > MAX_LITERAL_CHARS:
        raise LiteralError(f"literal longer than {MAX_LITERAL_CHARS} characters")
    value = _simple_literal(text.strip())
    if value is not _NOT_SIMPLE:
        return value
    try:
        return literal_value(ast.parse(text.strip(), mode="eval").body)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise LiteralError(f"not a Python literal: {_short(text)!r} ({type(exc).__name__})") from None


def literal_value(node: ast.AST, depth: int = 0) -> Any:
    """`ast.literal_eval` for one node, plus `set()` and `frozenset(...)` so that the repr of
    every allowed result type parses back. Raises ValueError for anything else."""
    if depth > 100:
        raise ValueError("literal nested too deeply")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id == "set" and not node.args:
            return set()
        if node.func.id == "frozenset" and len(node.args) <= 1:
            if not node.args:
                return frozenset()
            inner = node.args[0]
            if isinstance(inner, (ast.Set, ast.List, ast.Tuple)):
                return frozenset(literal_value(e, depth + 1) for e in inner.elts)
        raise ValueError(f"call to {node.func.id} is not a literal")
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [literal_value(e, depth + 1) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("dict unpacking is not a literal")
        return {literal_value(k, depth + 1): literal_value(v, depth + 1) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        raise ValueError("Ellipsis is not a literal here")
    return ast.literal_eval(node)  # constants, signed numbers and complex numbers


def parse_arguments(text: str) -> tuple[Any, ...]:
    """The positional arguments written between the parentheses of a call `f(<text>)`.

    `"1, 2"` is two arguments; `"(1, 2)"` is one tuple argument. Keyword and starred
    arguments, names, calls and operators are rejected.
    """
    if len(text) > MAX_LITERAL_CHARS:
        raise LiteralError(f"input longer than {MAX_LITERAL_CHARS} characters")
    value = _simple_literal(text.strip())
    if value is not _NOT_SIMPLE:
        return (value,)
    try:
        # The newline lets a trailing comment in the input not swallow the closing parenthesis.
        tree = ast.parse(f"f({text}\n)", mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise LiteralError(f"input does not parse as call arguments: {_short(text)!r} ({type(exc).__name__})") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
        raise LiteralError(f"input is not plain call arguments: {_short(text)!r}")
    if call.keywords:
        raise LiteralError("keyword arguments are not allowed in inputs")
    values = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            raise LiteralError("starred arguments are not allowed in inputs")
        try:
            values.append(literal_value(arg))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise LiteralError(f"input argument is not a literal: {_short(ast.unparse(arg))!r}") from None
    return tuple(values)


def same_value(first: str, second: str) -> bool:
    """Whether two literal texts hold the same value under strict equality: the same text is,
    different text (set or dict order) is compared as values. Raises LiteralError."""
    return first == second or strict_equal(parse_literal(first), parse_literal(second))


def is_literal_value(value: Any, _depth: int = 0) -> bool:
    """True when `value` is built only from LITERAL_TYPES (exact types, no subclasses)."""
    if _depth > 100:
        return False
    kind = type(value)
    if kind not in LITERAL_TYPES:
        return False
    if kind in (tuple, list, set, frozenset):
        return all(is_literal_value(v, _depth + 1) for v in value)
    if kind is dict:
        return all(is_literal_value(k, _depth + 1) and is_literal_value(v, _depth + 1) for k, v in value.items())
    return True


def strict_equal(a: Any, b: Any) -> bool:
    """Equality with exact types at every level: (1,) != [1], 1 != True, 1 != 1.0.

    Floats compare exactly, as in the reference. Dict keys and set members are matched
    strictly too, so {1: 'a'} != {True: 'a'}.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for key, value in a.items():
            match = _find_strict(key, b.keys())
            if match is _MISSING or not strict_equal(value, b[match]):
                return False
        return True
    if isinstance(a, (set, frozenset)):
        return len(a) == len(b) and all(_find_strict(x, b) is not _MISSING for x in a)
    return bool(a == b)


_MISSING = object()


def _find_strict(needle: Any, haystack: Any) -> Any:
    # Fast path: hashing finds the candidate; strictness rules out 1 vs True vs 1.0.
    if needle in haystack:
        for item in haystack:
            if strict_equal(needle, item):
                return item
    return _MISSING


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
