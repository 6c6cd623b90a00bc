"""A minimal root file system for the local gVisor sandbox, and the interpreter it runs.

`runsc do` would otherwise show the sandbox the host's whole file system, read-only: host
secrets included. The sandbox root holds only one interpreter (at its own absolute path),
its standard library without site-packages, the shared libraries they load, the worker code
and an empty /tmp. It is built once per interpreter and worker-code version in the cache
(hard links where the file system allows, else copies) and published by an atomic rename.

The interpreter need not be the one running this process, only one that loads its bytecode
(the trusted side compiles every program and ships the code object). Model code runs for most
of the sandbox's time, and interpreters of one version differ by a third in speed: a build
with a shared libpython and no profile-guided optimisation (pyenv's default) runs the same
loop 25-35 % slower than Debian's /usr/bin/python3.11. So the sandbox runs the fastest of
this process's interpreter and the system's of the same version (`sandbox_python`).
`AZR_SANDBOX_PYTHON` names one instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from azr_models.cache import cache_dir

log = logging.getLogger(__name__)
# Parts of the standard library a worker never needs (and which pull in big native libraries).
_SKIP_STDLIB = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                "lib2to3", "pydoc_data", f"config-{sys.version_info[0]}.{sys.version_info[1]}-x86_64-linux-gnu"}
# Files copied into the sandbox's /azr: the worker and what it imports. `azr.literals` (the
# literal parser both sides share) goes in as a module of its own, `azr_literals`: it must stay
# standard-library only and import nothing else of `azr` (tests/contracts/test_layout.py checks).
SANDBOX_CODE_DIR = "/azr"
SANDBOX_PYTHON_ENV = "AZR_SANDBOX_PYTHON"
# A candidate must be this much faster than this process's own interpreter to be chosen.
FASTER_BY = 0.9

# Run by each candidate interpreter: what the sandbox needs to know of it, and the best of
# five timings of a loop of calls and integer arithmetic (what model-written programs do).
# CPU time, not wall-clock: candidates are often probed while other services start up.
_PROBE = """
import importlib.util, json, sys, sysconfig, time
def is_prime(n):
    for j in range(2, n):
        if n % j == 0:
            return False
    return True
def loop():
    start = time.thread_time()
    sum(1 for i in range(2, 3000) if is_prime(i))
    return time.thread_time() - start
print(json.dumps({"version": sys.version, "magic": importlib.util.MAGIC_NUMBER.hex(),
                  "stdlib": sysconfig.get_paths()["stdlib"], "seconds": min(loop() for _ in range(5))}))
"""


@dataclass(frozen=True)
class SandboxPython:
    """An interpreter the sandbox can run."""

    executable: Path   # the real binary (venvs link to one)
    version: str       # its sys.version
    stdlib: Path       # its standard library, copied into the sandbox root
    seconds: float     # its time for the probe's loop


def describe(executable: str | os.PathLike) -> SandboxPython | None:
    """`executable` as a sandbox interpreter, or None if it cannot load this process's bytecode."""
    real = Path(os.path.realpath(executable))
    try:
        out = subprocess.run([str(real), "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        facts = json.loads(out.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if bytes.fromhex(facts["magic"]) != importlib.util.MAGIC_NUMBER:
        return None
    return SandboxPython(real, facts["version"], Path(facts["stdlib"]), float(facts["seconds"]))


def _candidates() -> list[Path]:
    """This process's interpreter first, then the system's of the same version."""
    name = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    paths = [sys.executable, f"/usr/bin/{name}", f"/usr/local/bin/{name}"]
    real = [Path(os.path.realpath(p)) for p in paths if os.access(p, os.X_OK)]
    return list(dict.fromkeys(real))  # in order, each binary once


@functools.cache
def sandbox_python() -> SandboxPython:
    """The interpreter the sandbox runs: $AZR_SANDBOX_PYTHON, else the fastest candidate
    (this process's own unless another is at least 10 % faster on the probe)."""
    explicit = os.environ.get(SANDBOX_PYTHON_ENV)
    if explicit:
        chosen = describe(explicit)
        if chosen is None:
            raise RuntimeError(f"{SANDBOX_PYTHON_ENV}={explicit}: not an interpreter that loads Python "
                               f"{sys.version_info[0]}.{sys.version_info[1]}'s bytecode (the trusted side compiles every program)")
        return chosen
    candidates = _candidates()
    described = {path: describe(path) for path in candidates}
    # this process's own; if it could not even run the probe, any other that could is better
    own = described[candidates[0]] or SandboxPython(candidates[0], sys.version, _own_stdlib(), float("inf"))
    chosen = min((d for d in described.values() if d is not None), key=lambda d: d.seconds, default=own)
    if chosen.seconds > own.seconds * FASTER_BY:
        chosen = own
    log.info("sandbox interpreter: %s (probe %.1f ms; this process's %s: %.1f ms)",
             chosen.executable, chosen.seconds * 1e3, own.executable, own.seconds * 1e3)
    return chosen


def _own_stdlib() -> Path:
    return Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["stdlib"])


def interpreter() -> Path:
    """The interpreter binary the sandbox runs."""
    return sandbox_python().executable


def _sources() -> dict[str, Path]:
    import azr.literals

    here = Path(__file__).resolve().parent
    return {"azr_literals.py": Path(azr.literals.__file__), "sandbox_host.py": here / "sandbox_host.py",
            "sandbox_worker.py": here / "sandbox_worker.py"}


def _fingerprint(python: SandboxPython) -> str:
    digest = hashlib.sha256(str(python.executable).encode() + python.version.encode())
    for name, path in sorted(_sources().items()):
        digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _shared_libraries(binaries: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for binary in binaries:
        try:
            out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for match in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", out):
            libs.add(Path(match.group(1)))
    return libs


def _place(src: Path, root: Path) -> None:
    """Put the real file behind `src` at the same absolute path under `root`."""
    dest = root / str(src).lstrip("/")
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(src))
    try:
        os.link(real, dest)
    except OSError:
        shutil.copy2(real, dest)


def build_rootfs(target: Path, python: SandboxPython) -> None:
    stdlib = python.stdlib
    dynload = stdlib / "lib-dynload"
    _place(python.executable, target)
    for dirpath, dirnames, filenames in os.walk(stdlib):
        rel = Path(dirpath).relative_to(stdlib)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in _SKIP_STDLIB)]
        for name in filenames:
            _place(Path(dirpath) / name, target)
    extensions = sorted(dynload.glob("*.so")) if dynload.is_dir() else []
    for lib in _shared_libraries([python.executable, *extensions]):
        _place(lib, target)
    code = target / SANDBOX_CODE_DIR.lstrip("/")
    code.mkdir(parents=True, exist_ok=True)
    for name, path in _sources().items():
        shutil.copy2(path, code / name)
    (target / "tmp").mkdir(exist_ok=True)
    os.chmod(target / "tmp", 0o755)  # workers (nobody) can write nowhere
    (target / "dev").mkdir(exist_ok=True)
    if os.geteuid() == 0:  # process mode chroots here as root; gVisor brings its own /dev
        try:
            os.mknod(target / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            os.chmod(target / "dev" / "null", 0o666)
        except OSError:
            pass


def ensure_rootfs(python: SandboxPython | None = None) -> Path:
    """The sandbox root for `python` (default: `sandbox_python()`) and the worker code, built on first use."""
    python = python or sandbox_python()
    final = cache_dir() / "sandbox-root" / _fingerprint(python)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        build_rootfs(staging, python)
        os.chmod(staging, 0o755)
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.is_dir():  # not a lost race with another builder
            raise
    return final
