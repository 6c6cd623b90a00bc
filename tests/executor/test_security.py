"""The hostile corpus (issue 3, part 5).

Part A sends each program through the normal path: the static filter or the sandbox stops
it, with the right error kind. Part B bypasses the static filter and submits the raw program
to the sandbox, in gVisor and in process mode, to show that the sandbox alone contains it:
the filter is a task-quality filter, not the security boundary. After every hostile job the
same workers must still return correct results.
"""

import socket
import threading
from pathlib import Path

import pytest

from azr.jobs import CheckJob, ValidationJob
from azr.literals import parse_arguments
from azr.programs import ErrorKind
from azr.tasks import TaskType
from azr_executor.engine import Executor, Limits
from azr_executor.pool import SandboxPool, make_job
from tests.conftest import FAST_TIMEOUT_SECONDS

FAST_LIMITS = Limits(timeout_seconds=FAST_TIMEOUT_SECONDS)

MARKER = Path("/tmp/azr-security-marker")
SECRET = "azr-test-secret-7f3a"

# name: (program body inside `def f(x):`, error kind through the normal path)
CORPUS = {
    "write_outside_scratch": (f"open({str(MARKER)!r}, 'w').write('x')\n    return 1", ErrorKind.FORBIDDEN),
    "read_outside_scratch": ("return open('/etc/passwd').read()[:50]", ErrorKind.FORBIDDEN),
    "read_env_secret": ("import os\n    return os.environ.get('AZR_SECRET', '')", ErrorKind.FORBIDDEN),
    "socket": ("import socket\n    return socket.create_connection(('127.0.0.1', x), 1) and 1", ErrorKind.FORBIDDEN),
    "fork": ("import os\n    return os.fork()", ErrorKind.FORBIDDEN),
    "fork_bomb": ("import os\n    while True:\n        os.fork()", ErrorKind.FORBIDDEN),
    "memory_bomb": ("return len('x' * (2 ** 34))", ErrorKind.MEMORY),
    "memory_creep": ("out = []\n    while True:\n        out.append(' ' * 10 ** 6)", ErrorKind.MEMORY),
    "thread_bomb": ("import threading\n    for _ in range(100):\n"
                    "        threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n    return 1", ErrorKind.FORBIDDEN),
    "infinite_loop": ("while True:\n        pass", ErrorKind.TIMEOUT),
    "swallow_timeout": ("while True:\n        try:\n            while True:\n                pass\n"
                        "        except BaseException:\n            pass", ErrorKind.TIMEOUT),
    "huge_output": ("return list(range(10 ** 6))", ErrorKind.OUTPUT_TOO_LONG),
    "os_exit": ("import os\n    os._exit(0)", ErrorKind.FORBIDDEN),
    "system_exit": ("raise SystemExit(0)", ErrorKind.RUNTIME),
    "exit_builtin": ("exit(0)", ErrorKind.FORBIDDEN),
    "signal_tampering": ("import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass",
                         ErrorKind.FORBIDDEN),
    "patch_builtins": ("import builtins\n    builtins.len = lambda v: 42\n    return 1", ErrorKind.FORBIDDEN),
    "patch_module": ("import math\n    math.pi = 3\n    return 1", ErrorKind.FORBIDDEN),
    "patch_class": ("import collections\n    collections.Counter.most_common = lambda *a: []\n    return 1", ErrorKind.FORBIDDEN),
    "patch_private_state": ("import copy\n    copy._deepcopy_dispatch[list] = lambda v, memo: 42\n    return 1", ErrorKind.FORBIDDEN),
    "custom_eq": ("return type('T', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()", ErrorKind.BAD_OUTPUT_TYPE),
    "subclass_eq": ("return (lambda: 0).__class__", ErrorKind.FORBIDDEN),
    "deep_recursion": ("return f(x + 1)", ErrorKind.RUNTIME),
    "dunder_import": ("return __import__('os').getcwd()", ErrorKind.FORBIDDEN),
    "importlib": ("import importlib\n    return importlib.import_module('os').getcwd()", ErrorKind.FORBIDDEN),
    "builtins_module": ("import builtins\n    return builtins.open('/etc/passwd').read()", ErrorKind.FORBIDDEN),
    "subclasses_walk": ("return [c.__name__ for c in ().__class__.__base__.__subclasses__()][:3]", ErrorKind.FORBIDDEN),
    "kill_parent": ("import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n    return 1", ErrorKind.FORBIDDEN),
    # a forbidden module reached through an allowed one
    "module_as_attribute": ("import typing\n    return typing.sys.modules['os'].getcwd()", ErrorKind.FORBIDDEN),
    "module_imported_from_module": ("from typing import sys\n    sys.exit(0)", ErrorKind.FORBIDDEN),
}

# What the sandbox alone must report when the static filter is bypassed (None: any failure).
RAW_KIND = {
    "write_outside_scratch": "runtime", "read_outside_scratch": "runtime", "socket": "runtime", "fork": "runtime",
    "fork_bomb": "runtime", "memory_bomb": "memory", "memory_creep": "memory", "thread_bomb": "runtime",
    "infinite_loop": "timeout", "swallow_timeout": "timeout", "huge_output": "output_too_long", "os_exit": "crashed",
    "system_exit": "runtime", "signal_tampering": "timeout", "patch_builtins": "runtime", "patch_module": "runtime",
    "patch_class": "runtime", "patch_private_state": "runtime", "custom_eq": "bad_output_type", "deep_recursion": "runtime",
    "kill_parent": "runtime",
    "builtins_module": "runtime", "exit_builtin": "runtime", "module_imported_from_module": "runtime",
}
SANITY = "def f(x):\n    import copy\n    return [len('abc'), sorted({3, 1, 2}), __import__('math').floor(2.5), copy.deepcopy([1])]"


def _program(body):
    return f"def f(x):\n    {body}"


def _raw(source, args="0", lane=0, timeout=2.0):
    """A job that skips every static check: the sandbox alone must contain it."""
    return make_job(compile(source, "<program>", "exec"), parse_arguments(args), lane, timeout, 400)


@pytest.fixture(scope="module")
def listener():
    """A real TCP server on the host's loopback that no job may reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    server.settimeout(0.2)

    def accept():
        while True:
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def _assert_still_correct(executor):
    results = executor.validate([ValidationJob("def f(x):\n    return [len(x), sorted(set(x))]", ("[3, 1, 3]",))
                                 for n in range(4)])
    assert all(r.valid and r.outputs == ("[3, [1, 3]]",) for r in results), results


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_normal_path_contains_and_reports(executor, name, listener):
    body, kind = CORPUS[name]
    port = listener[0]
    result = executor.validate([ValidationJob(_program(body), (str(port),))])[0]
    assert not result.valid and result.error_kind is kind, result
    answer = executor.check([CheckJob(TaskType.INDUCTION, _program(body), hidden_inputs=(str(port),), hidden_outputs=("1",))])[0]
    assert not answer.correct
    _assert_still_correct(executor)


# What each program's first call returns on 1: right, as an answer, if f were called only once.
FIRST_CALL = {"mutable_default": "1", "global_counter": "1", "functools_cached_result": "[1]", "itertools_count": "0"}


@pytest.mark.parametrize("name", sorted(FIRST_CALL))
def test_state_carried_across_calls_is_rejected_as_a_task_and_as_an_answer(executor, name):
    """Right on the first call, different on the second (issue 19): no valid task, no correct answer."""
    from tests.executor.test_validate import CARRIED_STATE

    program = CARRIED_STATE[name]
    result = executor.validate([ValidationJob(program, ("1",))])[0]
    assert not result.valid and result.error_kind is ErrorKind.NONDETERMINISTIC, result
    answer = executor.check([CheckJob(TaskType.INDUCTION, program, hidden_inputs=("1",), hidden_outputs=(FIRST_CALL[name],))])[0]
    assert not answer.correct and answer.error_kind is ErrorKind.NONDETERMINISTIC, answer
    _assert_still_correct(executor)


@pytest.mark.parametrize("mode", ["gvisor", "process"])
@pytest.mark.parametrize("name", sorted(RAW_KIND))
def test_sandbox_alone_contains_the_program(request, mode, name, listener):
    pool = request.getfixturevalue(f"{mode}_pool")
    port, accepted = listener
    before = len(accepted)
    result = pool.run([_raw(_program(CORPUS[name][0]), str(port))])[0]
    assert "output" not in result and result.get("error") == RAW_KIND[name], result
    assert not MARKER.exists()
    assert len(accepted) == before, "a job reached a socket on the host"
    _assert_still_correct(Executor(pool, FAST_LIMITS))
    sanity = pool.run([_raw(SANITY, lane=lane) for lane in (0, 1)])
    assert [s.get("output") for s in sanity] == ["[3, [1, 2, 3], 2, [1]]"] * 2


@pytest.mark.parametrize("mode", ["gvisor", "process"])
def test_no_secret_of_the_server_reaches_a_job(mode, monkeypatch):
    monkeypatch.setenv("AZR_SECRET", SECRET)
    secret_file = Path("/tmp/azr-secret-file")
    secret_file.write_text(SECRET)
    try:
        with SandboxPool(mode, workers=2, memory_mib=256) as pool:
            program = ("def f(x):\n    import os\n    found = [k for k, v in os.environ.items() if 'azr-test' in v]\n"
                       "    try:\n        found.append(open('/tmp/azr-secret-file').read())\n    except OSError:\n        pass\n"
                       "    return found")
            result = pool.run([_raw(program)])[0]
            assert result.get("output") == "[]", result
    finally:
        secret_file.unlink()


def test_jobs_run_as_an_unprivileged_user_with_no_network(gvisor_pool):
    program = "def f(x):\n    import os, socket\n    return [os.getuid(), socket.gethostbyname_ex('localhost')[0] if False else 0]"
    result = gvisor_pool.run([_raw(program, lane=1)])[0]
    assert result.get("output") == "[65534, 0]", result
    outside = "def f(x):\n    import socket\n    return socket.create_connection(('8.8.8.8', 53), 1) and 1"
    assert gvisor_pool.run([_raw(outside, timeout=3.0)])[0]["error"] == "runtime"


@pytest.mark.parametrize("mode", ["gvisor", "process"])
def test_a_chunk_reports_each_job_as_it_was(request, mode):
    """Workers report results a chunk at a time and their progress in shared memory: a crash
    and an overrun in the middle of one lane's chunk are pinned on the right jobs, and the
    jobs around them keep their own results (re-run if they were finished but unreported)."""
    pool = request.getfixturevalue(f"{mode}_pool")
    quick = "def f(x):\n    return x + 1"
    sources = [quick, quick, "def f(x):\n    import os\n    os._exit(3)", quick,
               "def f(x):\n    while True:\n        pass", quick]
    results = pool.run([_raw(source, str(k), lane=0, timeout=1.0) for k, source in enumerate(sources)])
    assert [r.get("output", r.get("error")) for r in results] == ["1", "2", "crashed", "4", "timeout", "6"], results
