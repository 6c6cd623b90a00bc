"""Static checks of model-written programs, before anything runs (AZR-SPEC section 4).

These checks are a task-quality filter, never the security boundary (the sandbox is).
They go beyond the reference's import-only check: `from ... import`, `__import__`,
importlib, builtins, eval/exec/compile, open, reflection builtins and dunder attributes
(the usual ways out of any name filter: `().__class__.__base__.__subclasses__()`).
"""

from __future__ import annotations

import ast
import enum
import io
import tokenize
from dataclasses import dataclass, field
from types import CodeType

MAX_PROGRAM_CHARS = 20_000

# The reference list (its dotted entries such as os.sys never matched anything), then the
# project's additions: ways to reach the process, the network, the file system or the
# interpreter's internals, and sources of non-determinism.
REFERENCE_FORBIDDEN_MODULES = frozenset({
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime",
    "time", "hashlib", "hmac", "bcrypt", "calendar",
})
FORBIDDEN_MODULES = REFERENCE_FORBIDDEN_MODULES | frozenset({
    "os", "sys", "socket", "ctypes", "importlib", "builtins",
    "_thread", "asyncio", "concurrent", "signal", "resource", "faulthandler", "atexit", "gc",
    "inspect", "io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "mmap", "select",
    "selectors", "fcntl", "pty", "tty", "termios", "posix", "pwd", "grp", "pickle", "marshal",
    "shelve", "dbm", "sqlite3", "code", "codeop", "runpy", "site", "sysconfig", "platform",
    "uuid", "secrets", "urllib", "http", "ftplib", "smtplib", "ssl", "webbrowser", "zipimport",
    "pkgutil", "traceback", "tracemalloc", "weakref", "types", "copyreg", "_io", "_posixsubprocess",
})
FORBIDDEN_NAMES = frozenset({
    "__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "input", "help", "exit", "quit", "memoryview",
    "__builtins__", "__loader__", "__spec__",
})
ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__name__", "__doc__"})


class ErrorKind(str, enum.Enum):
    """Why a program, input or answer was rejected; mirrors azr.v1.ErrorKind."""

    NONE = "none"
    SYNTAX = "syntax"
    NOT_SINGLE_FUNCTION = "not_single_function"
    FORBIDDEN = "forbidden"
    BAD_INPUT = "bad_input"
    RUNTIME = "runtime"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    NONDETERMINISTIC = "nondeterministic"
    BAD_OUTPUT_TYPE = "bad_output_type"
    OUTPUT_TOO_LONG = "output_too_long"
    WRONG_ANSWER = "wrong_answer"
    BAD_ANSWER = "bad_answer"
    CRASHED = "crashed"
    SANDBOX = "sandbox"


class EntryFunctionRule(str, enum.Enum):
    TOP_LEVEL = "topLevel"  # [project] one top-level def; nested helpers and lambdas allowed
    STRICT = "strict"       # reference: no nested defs or lambdas at all


@dataclass(frozen=True)
class ProgramCheck:
    ok: bool
    program: str = ""                # the program with its entry function renamed `f`
    error_kind: ErrorKind = ErrorKind.NONE
    message: str = ""
    tree: ast.Module | None = field(default=None, repr=False, compare=False)

    def compile(self) -> CodeType:
        """Bytecode of the checked program (from the tree already parsed, when not renamed)."""
        if not self.ok:
            raise ValueError("cannot compile a rejected program")
        if self.tree is not None:
            return compile(self.tree, "<program>", "exec")
        return compile(self.program, "<program>", "exec")

    @classmethod
    def reject(cls, kind: ErrorKind, message: str) -> "ProgramCheck":
        return cls(ok=False, error_kind=kind, message=message)


def check_program(source: str, rule: EntryFunctionRule = EntryFunctionRule.TOP_LEVEL) -> ProgramCheck:
    """Parse, find the single entry function, reject forbidden constructs, rename the entry to `f`."""
    if not source.strip():
        return ProgramCheck.reject(ErrorKind.SYNTAX, "empty program")
    if len(source) > MAX_PROGRAM_CHARS:
        return ProgramCheck.reject(ErrorKind.SYNTAX, f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return ProgramCheck.reject(ErrorKind.SYNTAX, f"does not parse: {type(exc).__name__}: {exc}")

    entries = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(entries) != 1:
        return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, f"expected one top-level function, found {len(entries)}")
    entry = entries[0]
    if isinstance(entry, ast.AsyncFunctionDef):
        return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, "the entry function must not be async")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, f"class definitions are not allowed ({node.name})")
        if rule is EntryFunctionRule.STRICT and node is not entry and isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, "nested functions are not allowed")
        problem = _forbidden(node)
        if problem:
            return ProgramCheck.reject(ErrorKind.FORBIDDEN, problem)

    if entry.name == "f":
        return ProgramCheck(ok=True, program=source, tree=tree)
    return ProgramCheck(ok=True, program=_rename(source, entry.name, "f"))


def _forbidden(node: ast.AST) -> str:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _forbidden_module(alias.name):
                return f"forbidden import: {alias.name}"
    elif isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level:
            return "relative imports are not allowed"
        if _forbidden_module(module):
            return f"forbidden import: {module}"
        for alias in node.names:
            if alias.name == "*" or _forbidden_module(f"{module}.{alias.name}") or alias.name in FORBIDDEN_NAMES:
                return f"forbidden import: from {module} import {alias.name}"
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
        return f"forbidden name: {node.id}"
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("__") and node.attr not in ALLOWED_DUNDER_ATTRIBUTES:
            return f"forbidden attribute: {node.attr}"
        if node.attr in FORBIDDEN_NAMES:
            return f"forbidden attribute: {node.attr}"
    elif isinstance(node, (ast.Global, ast.Nonlocal)) and any(n.startswith("__") for n in node.names):
        return "forbidden global"
    return ""


def _forbidden_module(dotted: str) -> bool:
    parts = dotted.split(".")
    return any(".".join(parts[: i + 1]) in FORBIDDEN_MODULES for i in range(len(parts)))


def _rename(source: str, old: str, new: str) -> str:
    """Rename every NAME token `old` to `new`, keeping the program's own formatting."""
    lines = source.splitlines(keepends=True)
    hits = [tok for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.NAME and tok.string == old]
    for tok in reversed(hits):  # right to left, so earlier positions stay valid
        (row, col), (_, end) = tok.start, tok.end
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[end:]
    return "".join(lines)
