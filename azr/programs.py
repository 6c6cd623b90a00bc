"""Static checks of model-written programs, before anything runs (docs/method.md, part 4).

These checks are a task-quality filter, never the security boundary (the sandbox is).
They go beyond the reference's import-only check: `from ... import`, `__import__`,
importlib, builtins, eval/exec/compile, open, reflection builtins and dunder attributes
(the usual ways out of any name filter: `().__class__.__base__.__subclasses__()`).
"""

from __future__ import annotations

import dis
import enum
import inspect as inspect_flags
import io
import sys
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
    # string-driven attribute access or evaluation inside otherwise harmless modules
    "attrgetter", "methodcaller", "Formatter", "get_field", "get_type_hints", "ForwardRef", "_evaluate",
    "_create_fn", "_make_nmtuple",
})
# namedtuple's public API starts with an underscore.
PUBLIC_UNDERSCORE_ATTRIBUTES = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})
# Names a program may use although they start with "__": what a module's own code refers to.
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__annotations__", "__future__"})


_SUSPICIOUS = FORBIDDEN_NAMES | FORBIDDEN_MODULES  # any name that may need a closer look

# Opcodes, by name so that the analysis follows the interpreter's version.
_OP = dis.opmap
_IMPORT_NAME, _IMPORT_FROM = _OP["IMPORT_NAME"], _OP["IMPORT_FROM"]
_LOAD_BUILD_CLASS, _MATCH_CLASS, _EXTENDED_ARG = _OP["LOAD_BUILD_CLASS"], _OP.get("MATCH_CLASS"), _OP["EXTENDED_ARG"]
_ATTRIBUTE_OPS = {_OP[n] for n in ("LOAD_ATTR", "STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR") if n in _OP}
_ATTRIBUTE_STORES = frozenset({_OP["STORE_ATTR"], _OP["DELETE_ATTR"]})
# opcode -> how far its argument is shifted before it indexes co_names
_NAME_OPS = {_OP[n]: 0 for n in ("IMPORT_NAME", "IMPORT_FROM", "LOAD_NAME", "STORE_NAME", "DELETE_NAME",
                                  "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR",
                                  "LOAD_FROM_DICT_OR_GLOBALS") if n in _OP}
_NAME_OPS[_OP["LOAD_GLOBAL"]] = 1 if sys.version_info >= (3, 11) else 0
_NAME_OPS[_OP["LOAD_ATTR"]] = 1 if sys.version_info >= (3, 12) else 0
if "LOAD_SUPER_ATTR" in _OP:
    _NAME_OPS[_OP["LOAD_SUPER_ATTR"]] = 2


class ErrorKind(str, enum.Enum):
    """Why a program, input or answer was rejected; mirrors the contract's azr.v1.ErrorKind."""

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
    code: CodeType | None = field(default=None, repr=False, compare=False)

    def compile(self) -> CodeType:
        """Bytecode of the checked program (compiled once, during the check, when not renamed)."""
        if not self.ok:
            raise ValueError("cannot compile a rejected program")
        if self.code is not None:
            return self.code
        return compile(self.program, "<program>", "exec", dont_inherit=True)

    @classmethod
    def reject(cls, kind: ErrorKind, message: str) -> ProgramCheck:
        return cls(ok=False, error_kind=kind, message=message)


def check_program(source: str, rule: EntryFunctionRule = EntryFunctionRule.TOP_LEVEL) -> ProgramCheck:
    """Compile, find the single entry function, reject forbidden constructs, rename the entry to `f`.

    The analysis reads the compiled bytecode rather than the syntax tree: every name a
    program can reach (globals, builtins, attributes, imports) is in some code object's
    `co_names`, while its own locals are not, so `def f(input)` is fine and `input()` is not.
    The bytecode is needed anyway to run the program, and this is several times faster.
    """
    if not source.strip():
        return ProgramCheck.reject(ErrorKind.SYNTAX, "empty program")
    if len(source) > MAX_PROGRAM_CHARS:
        return ProgramCheck.reject(ErrorKind.SYNTAX, f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        module = compile(source, "<program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as exc:
        return ProgramCheck.reject(ErrorKind.SYNTAX, f"does not parse: {type(exc).__name__}: {exc}")

    entries = [c for c in module.co_consts if isinstance(c, CodeType) and not c.co_name.startswith("<")]
    if len(entries) != 1:
        return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, f"expected one top-level function, found {len(entries)}")
    entry = entries[0]
    if entry.co_flags & (inspect_flags.CO_COROUTINE | inspect_flags.CO_ASYNC_GENERATOR):
        return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, "the entry function must not be async")
    for code in _code_objects(module):
        problem = _forbidden_code(code)
        if problem:
            return problem
        if rule is EntryFunctionRule.STRICT and code is not entry and code is not module and (
                code.co_name == "<lambda>" or not code.co_name.startswith("<")):
            return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, "nested functions are not allowed")

    if entry.co_name == "f":
        return ProgramCheck(ok=True, program=source, code=module)
    return ProgramCheck(ok=True, program=_rename(source, entry.co_name, "f"))


def _code_objects(code: CodeType):
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.co_consts if isinstance(c, CodeType))


def _forbidden_code(code: CodeType) -> ProgramCheck | None:
    opcodes = code.co_code[::2]  # wordcode: every even byte is an opcode
    if _LOAD_BUILD_CLASS in opcodes:
        return ProgramCheck.reject(ErrorKind.NOT_SINGLE_FUNCTION, "class definitions are not allowed")
    if _MATCH_CLASS is not None and _MATCH_CLASS in opcodes:
        return ProgramCheck.reject(ErrorKind.FORBIDDEN, "class patterns in match statements are not allowed")
    names = code.co_names
    if not _SUSPICIOUS.intersection(names) and not any(n.startswith("_") or "." in n for n in names) \
            and not _ATTRIBUTE_STORES.intersection(opcodes):
        return None  # the fast path: no name here could be a problem (dotted ones are imports)
    module = ""
    for op, name in _named_instructions(code):
        if op == _IMPORT_NAME:
            module = name
            if _forbidden_module(name):
                return ProgramCheck.reject(ErrorKind.FORBIDDEN, f"forbidden import: {name}")
        elif op == _IMPORT_FROM:
            # `from typing import sys`: an allowed module's attribute may be a forbidden module
            if _forbidden_module(f"{module}.{name}") or name in FORBIDDEN_MODULES or name in FORBIDDEN_NAMES \
                    or _dunder(name):
                return ProgramCheck.reject(ErrorKind.FORBIDDEN, f"forbidden import: from {module} import {name}")
        elif op in _ATTRIBUTE_STORES:
            # With no classes of its own, a program could only change a module's, a library
            # class's or a shared object's attributes: state the next job would inherit.
            return ProgramCheck.reject(ErrorKind.FORBIDDEN, f"assigning or deleting attributes is not allowed ({name})")
        elif op in _ATTRIBUTE_OPS:
            if _dunder(name) or name in FORBIDDEN_NAMES or name in FORBIDDEN_MODULES or _private(name):
                return ProgramCheck.reject(ErrorKind.FORBIDDEN, f"forbidden attribute: {name}")
        elif name in FORBIDDEN_NAMES or name in FORBIDDEN_MODULES or _dunder(name):
            # a global named after a forbidden module may hold it: `from m import *` binds every
            # public name of an allowed m, and for an m without __all__ that includes its imports
            return ProgramCheck.reject(ErrorKind.FORBIDDEN, f"forbidden name: {name}")
    return None


def _private(name: str) -> bool:
    """Private library internals (`copy._deepcopy_dispatch`, `re._cache`) hold shared mutable state."""
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE_ATTRIBUTES


def _dunder(name: str) -> bool:
    return name.startswith("__") and name not in ALLOWED_DUNDER_NAMES


def _named_instructions(code: CodeType):
    """(opcode, name) for every instruction whose argument indexes co_names."""
    raw, names, extended = code.co_code, code.co_names, 0
    for offset in range(0, len(raw), 2):
        op, arg = raw[offset], raw[offset + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        shift = _NAME_OPS.get(op)
        if shift is not None:
            yield op, names[arg >> shift]


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
