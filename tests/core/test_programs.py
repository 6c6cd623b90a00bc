import pytest

from azr.programs import REFERENCE_FORBIDDEN_MODULES, EntryFunctionRule, ErrorKind, check_program


def test_single_function_is_accepted_and_keeps_its_text():
    source = "def f(x):\n    # doubles\n    return x * 2\n"
    result = check_program(source)
    assert result.ok and result.program == source


def test_first_def_is_renamed_f_everywhere_keeping_formatting():
    result = check_program("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # rec\n")
    assert result.ok
    assert result.program == "def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)  # rec\n"


@pytest.mark.parametrize("source, kind", [
    ("def f(:\n", ErrorKind.SYNTAX),
    ("", ErrorKind.SYNTAX),
    ("x = 1", ErrorKind.NOT_SINGLE_FUNCTION),
    ("def f(x):\n    return x\ndef g(x):\n    return x", ErrorKind.NOT_SINGLE_FUNCTION),
    ("class A:\n    pass\ndef f(x):\n    return x", ErrorKind.NOT_SINGLE_FUNCTION),
    ("def f(x):\n    class A:\n        pass\n    return x", ErrorKind.NOT_SINGLE_FUNCTION),
    ("async def f(x):\n    return x", ErrorKind.NOT_SINGLE_FUNCTION),
])
def test_structure_errors(source, kind):
    result = check_program(source)
    assert not result.ok and result.error_kind is kind


def test_nested_helpers_allowed_by_default_but_not_in_strict_mode():
    source = "def f(xs):\n    def sq(v):\n        return v * v\n    return sorted(xs, key=lambda v: -sq(v))"
    assert check_program(source).ok
    strict = check_program(source, EntryFunctionRule.STRICT)
    assert strict.error_kind is ErrorKind.NOT_SINGLE_FUNCTION


@pytest.mark.parametrize("module", sorted(REFERENCE_FORBIDDEN_MODULES | {"os", "sys", "socket", "ctypes", "importlib", "builtins"}))
def test_reference_and_project_forbidden_modules(module):
    for source in (f"import {module}\ndef f(x):\n    return x",
                   f"def f(x):\n    import {module} as m\n    return x",
                   f"from {module} import *\ndef f(x):\n    return x"):
        assert check_program(source).error_kind is ErrorKind.FORBIDDEN, source


@pytest.mark.parametrize("body", [
    "return __import__('os').environ",
    "return eval('1')",
    "exec('x = 1')",
    "return compile('1', 'a', 'eval')",
    "return open('/etc/passwd').read()",
    "return getattr(x, '__class__')",
    "return globals()",
    "return vars()",
    "return ().__class__.__base__.__subclasses__()",
    "return x.__dict__",
    "return f.__globals__",
    "return __builtins__",
    "import os.path\n    return 1",
    "from os import path\n    return 1",
    "from collections import __builtins__\n    return 1",
    "breakpoint()",
])
def test_ways_out_of_a_name_filter_are_forbidden(body):
    result = check_program(f"def f(x):\n    {body}")
    assert result.error_kind is ErrorKind.FORBIDDEN, body


def test_ordinary_programs_pass():
    for source in (
        "import math\nfrom collections import Counter\ndef f(x):\n    return math.floor(x) + len(Counter('ab'))",
        "def f(s):\n    return s.__name__ if False else s.upper()",
        "def f(x):\n    return type(x) is list",
    ):
        assert check_program(source).ok, source


@pytest.mark.parametrize("source, ok", [
    ("def f(input):\n    return input + 1", True),            # a local is not the builtin
    ("def f(time):\n    return time * 2", True),
    ("def f(x):\n    return input()", False),
    ("def f(x):\n    import operator\n    return operator.attrgetter('__class__')(x)", False),
    ("def f(x):\n    import string\n    return string.Formatter().get_field('0.__class__', [x], {})", False),
    ("def f(x):\n    import typing\n    return typing.get_type_hints(f)", False),
    ("def f(x):\n    match x:\n        case object(__class__=c):\n            return 1\n    return 0", False),
    ("def f(x):\n    match x:\n        case [a, b]:\n            return a\n    return 0", True),
    ("from __future__ import annotations\ndef f(x: int) -> int:\n    return x", True),
    ("X: int = 3\ndef f(x):\n    '''doc'''\n    return x + X", True),
    ("def f(x):\n    return [i for i in range(x)]", True),
    ("g = lambda x: x\ndef f(x):\n    return g(x)", True),
    ("def f(x):\n    return x.open", False),
    # a star import binds public names only; any use of one is checked like any other name
    ("from typing import *\nfrom collections import *\ndef f(xs: List[int]) -> int:\n    return len(Counter(xs))", True),
    ("from typing import *\ndef f(x):\n    return get_type_hints(f)", False),
    ("from operator import *\ndef f(x):\n    return attrgetter('__class__')(x)", False),
    # an allowed module's attribute that is a forbidden module, reached by import, attribute or name
    ("from typing import sys\ndef f(x):\n    return sys.platform", False),
    ("import typing\ndef f(x):\n    return typing.sys.platform", False),
    ("import re\ndef f(x):\n    return re.enum.sys.platform", False),
    ("from bisect import *\ndef f(x):\n    return os.getpid()", False),
    ("def f(x):\n    global __builtins__\n    __builtins__ = {}\n    return 1", False),
])
def test_bytecode_analysis_edge_cases(source, ok):
    assert check_program(source).ok is ok


def test_checked_program_compiles_once_and_runs():
    checked = check_program("def g(n):\n    return n * 2")
    scope: dict = {}
    exec(checked.compile(), scope)  # noqa: S102 - the project's own test program
    assert scope["f"](21) == 42
    unchanged = check_program("def f(n):\n    return n")
    assert unchanged.compile() is unchanged.compile()


@pytest.mark.parametrize("source", [
    "import copy\ndef f(x):\n    copy._deepcopy_dispatch[list] = lambda v, m: 42\n    return 1",
    "import re\ndef f(x):\n    return len(re._cache)",
    "import decimal\ndef f(x):\n    decimal.getcontext().prec = 3\n    return 1",
    "import math\ndef f(x):\n    math.pi = 3\n    return 1",
    "def f(x):\n    f.memo = {}\n    return 1",
    "import collections\ndef f(x):\n    del collections.Counter.most_common\n    return 1",
])
def test_shared_state_cannot_be_changed(source):
    assert check_program(source).error_kind is ErrorKind.FORBIDDEN


def test_namedtuple_public_api_is_allowed():
    source = ("from collections import namedtuple\ndef f(x):\n    P = namedtuple('P', 'a b')\n"
              "    return tuple(P(x, 2)._replace(b=3)._asdict().values())")
    assert check_program(source).ok
