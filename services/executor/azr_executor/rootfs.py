"""A minimal root file system for the local gVisor sandbox.

`runsc do` would otherwise show the sandbox the host's whole file system, read-only: host
secrets included. The sandbox root holds only this interpreter (at its own absolute path),
its standard library without site-packages, the shared libraries they load, the worker code
and an empty /tmp. It is built once per interpreter and worker-code version in the cache
(hard links where the file system allows, else copies) and published by an atomic rename.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from azr_models.cache import cache_dir

# Parts of the standard library a worker never needs (and which pull in big native libraries).
_SKIP_STDLIB = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                "lib2to3", "pydoc_data", "config-3.11-x86_64-linux-gnu"}
# Files copied into the sandbox's /azr: the worker and what it imports. `azr.literals` (the
# literal parser both sides share) goes in as a module of its own, `azr_literals`: it must stay
# standard-library only and import nothing else of `azr` (tests/contracts/test_layout.py checks).
SANDBOX_CODE_DIR = "/azr"


def _sources() -> dict[str, Path]:
    import azr.literals

    here = Path(__file__).resolve().parent
    return {"azr_literals.py": Path(azr.literals.__file__), "sandbox_host.py": here / "sandbox_host.py",
            "sandbox_worker.py": here / "sandbox_worker.py"}


def interpreter() -> Path:
    """The real interpreter binary behind sys.executable (venvs link to it)."""
    return Path(os.path.realpath(sys.executable))


def _fingerprint() -> str:
    digest = hashlib.sha256(str(interpreter()).encode() + sys.version.encode())
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


def build_rootfs(target: Path) -> None:
    python = interpreter()
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["stdlib"])
    dynload = stdlib / "lib-dynload"
    _place(python, target)
    for dirpath, dirnames, filenames in os.walk(stdlib):
        rel = Path(dirpath).relative_to(stdlib)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d in _SKIP_STDLIB)]
        for name in filenames:
            _place(Path(dirpath) / name, target)
    extensions = sorted(dynload.glob("*.so")) if dynload.is_dir() else []
    for lib in _shared_libraries([python, *extensions]):
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


def ensure_rootfs() -> Path:
    """The sandbox root for this interpreter and worker code, built on first use."""
    final = cache_dir() / "sandbox-root" / _fingerprint()
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        build_rootfs(staging)
        os.chmod(staging, 0o755)
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not final.is_dir():  # not a lost race with another builder
            raise
    return final
