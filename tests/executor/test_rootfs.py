"""The interpreter the sandbox runs: any one that loads the trusted side's bytecode, the fastest
by default, or the one AZR_SANDBOX_PYTHON names; and the sandbox root built around it."""

import json
import os
import sys
from pathlib import Path

import pytest

from azr_executor import rootfs
from azr_executor.rootfs import SandboxPython, describe, ensure_rootfs, sandbox_python


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    monkeypatch.delenv(rootfs.SANDBOX_PYTHON_ENV, raising=False)
    sandbox_python.cache_clear()
    yield
    sandbox_python.cache_clear()


def _fake_interpreter(tmp_path: Path, name: str, magic: str) -> Path:
    """An executable that answers the probe as an interpreter of another bytecode version would."""
    path = tmp_path / name
    facts = {"version": "3.99.0 (fake)", "magic": magic, "stdlib": str(tmp_path), "seconds": 0.001}
    path.write_text(f"#!/bin/sh\necho '{json.dumps(facts)}'\n")
    path.chmod(0o755)
    return path


def test_this_process_interpreter_describes_itself():
    own = describe(sys.executable)
    assert own is not None
    assert own.executable == Path(os.path.realpath(sys.executable))
    assert own.version == sys.version
    assert (own.stdlib / "os.py").is_file()
    assert own.seconds > 0


def test_an_interpreter_of_other_bytecode_or_none_at_all_is_refused(tmp_path):
    assert describe(_fake_interpreter(tmp_path, "python-other", "0d0d0a0d")) is None
    assert describe(tmp_path / "missing") is None
    plain = tmp_path / "not-python"
    plain.write_text("#!/bin/sh\necho hello\n")
    plain.chmod(0o755)
    assert describe(plain) is None


def test_the_named_interpreter_is_used_and_a_wrong_one_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(rootfs.SANDBOX_PYTHON_ENV, sys.executable)
    assert sandbox_python().executable == Path(os.path.realpath(sys.executable))
    sandbox_python.cache_clear()
    monkeypatch.setenv(rootfs.SANDBOX_PYTHON_ENV, str(_fake_interpreter(tmp_path, "python-other", "0d0d0a0d")))
    with pytest.raises(RuntimeError, match="AZR_SANDBOX_PYTHON=.*bytecode"):
        sandbox_python()


def _python(name: str, seconds: float) -> SandboxPython:
    return SandboxPython(Path(f"/opt/{name}/bin/python"), "3.11", Path(f"/opt/{name}/lib"), seconds)


@pytest.mark.parametrize("other_seconds, chosen", [
    (0.010, "system"),   # 33 % faster: the system's
    (0.0145, "own"),     # 3 % faster: within the noise, this process's own
    (0.020, "own"),      # slower
])
def test_the_default_is_the_fastest_candidate_by_a_clear_margin(monkeypatch, other_seconds, chosen):
    pythons = {"/opt/own/bin/python": _python("own", 0.015), "/opt/system/bin/python": _python("system", other_seconds)}
    monkeypatch.setattr(rootfs, "_candidates", lambda: [Path(p) for p in pythons])
    monkeypatch.setattr(rootfs, "describe", lambda path: pythons[str(path)])
    assert sandbox_python().executable == Path(f"/opt/{chosen}/bin/python")


def test_a_candidate_that_cannot_load_our_bytecode_is_never_chosen(monkeypatch):
    pythons = {"/opt/own/bin/python": _python("own", 0.015), "/opt/other/bin/python": None}
    monkeypatch.setattr(rootfs, "_candidates", lambda: [Path(p) for p in pythons])
    monkeypatch.setattr(rootfs, "describe", lambda path: pythons[str(path)])
    assert sandbox_python().executable == Path("/opt/own/bin/python")


def test_the_sandbox_root_holds_the_chosen_interpreter_and_its_stdlib_only():
    python = sandbox_python()
    root = ensure_rootfs(python)
    assert (root / str(python.executable).lstrip("/")).is_file()
    assert (root / str(python.stdlib).lstrip("/") / "os.py").is_file()
    assert not (root / str(python.stdlib).lstrip("/") / "site-packages").exists()
    assert (root / "azr" / "sandbox_worker.py").is_file()
    assert ensure_rootfs(python) == root  # built once, then found
