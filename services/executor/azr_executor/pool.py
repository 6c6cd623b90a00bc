"""The trusted side of the sandbox: starts the sandbox host process and runs jobs through it.

Mode `gvisor`: `runsc --rootless --network=none do -root <minimal root> python sandbox_host.py`.
Mode `process`: the same host as a plain process, and where this process is root: in a
fresh network namespace (no network), chrooted into the minimal root, as user nobody.
Either way the host gets an empty environment, so no secret of the server reaches a job.

`SandboxPool.submit(jobs)` is thread-safe and gives a `JobFuture` per job; `run(jobs)` blocks
until every job has a result. If the
sandbox itself dies, it is restarted and the jobs in flight are run again (they are pure),
so nothing is lost or counted twice. `SandboxPool.cancel(futures)` gives jobs whose result no
longer matters a timeout result at once and drops them from the sandbox's queue.
"""

from __future__ import annotations

import ctypes
import dis
import itertools
import json
import logging
import marshal
import os
import resource  # imported here, not in _confine: after the chroot this process's own stdlib may be gone
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

from azr.spec import SandboxMode
from azr_executor.rootfs import SANDBOX_CODE_DIR, ensure_rootfs, interpreter

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 2**20
MAX_ATTEMPTS = 3
CLONE_NEWNET = 0x40000000


class SandboxError(RuntimeError):
    pass


_RESULT_LOCK = threading.Lock()  # guards every JobFuture's hand-over: each holds it for a moment


class JobFuture:
    """A job's result to come: the part of `concurrent.futures.Future` the executor uses.

    One is made per sandbox run, thousands a second, so it is made cheap: no lock or
    condition of its own until someone waits on it unfinished."""

    __slots__ = ("job_id", "_result", "_callbacks", "_waiter")

    def __init__(self, job_id: int):
        self.job_id = job_id
        self._result: dict[str, Any] | None = None
        self._callbacks: list[Callable[[JobFuture], None]] = []
        self._waiter: threading.Event | None = None

    def done(self) -> bool:
        return self._result is not None

    def add_done_callback(self, callback: Callable[[JobFuture], None]) -> None:
        """`callback(self)` once the result is set: at once if it is."""
        with _RESULT_LOCK:
            if self._result is None:
                self._callbacks.append(callback)
                return
        callback(self)

    def set_result(self, result: dict[str, Any]) -> None:
        with _RESULT_LOCK:
            if self._result is not None:
                raise RuntimeError(f"job {self.job_id} already has a result")
            self._result = result
            callbacks, self._callbacks, waiter = self._callbacks, [], self._waiter
        if waiter is not None:
            waiter.set()
        for callback in callbacks:
            callback(self)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The result; raises TimeoutError if there is none after `timeout` seconds."""
        if self._result is None:
            with _RESULT_LOCK:
                if self._result is None and self._waiter is None:
                    self._waiter = threading.Event()
                waiter = self._waiter if self._result is None else None
            if waiter is not None and not waiter.wait(timeout):
                raise TimeoutError(f"job {self.job_id} has no result after {timeout} s")
        assert self._result is not None
        return self._result


class _Outbox:
    """Frames on their way to the sandbox's stdin, written by a thread of their own.

    Whoever submits only queues: a write to a full pipe must never block a thread that holds
    the pool's lock, or the reader thread (which takes the lock for each result) stops
    draining the sandbox's stdout, the sandbox stops reading its stdin, and both wait forever."""

    def __init__(self, stream: Any):
        self._stream = stream
        self._frames: list[bytes] = []
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        threading.Thread(target=self._write, daemon=True, name="sandbox-writer").start()

    def put(self, frame: bytes) -> None:
        with self._ready:
            if not self._closed:
                self._frames.append(frame)
                self._ready.notify()

    def close(self) -> None:
        """Drop what is unwritten and stop; the process behind the stream is going away."""
        with self._ready:
            self._closed = True
            self._frames.clear()
            self._ready.notify()

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._frames and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                data, self._frames = b"".join(self._frames), []
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                return  # the sandbox is gone: the reader thread sees it, restarts it, re-sends its jobs


def runsc_available() -> bool:
    return shutil.which("runsc") is not None


def default_mode() -> SandboxMode:
    return SandboxMode.GVISOR if runsc_available() else SandboxMode.PROCESS


class SandboxPool:
    def __init__(self, mode: SandboxMode | str = SandboxMode.GVISOR, workers: int = 4, memory_mib: int = 512):
        self.mode = SandboxMode(mode)
        if self.mode is SandboxMode.GVISOR and not runsc_available():
            raise SandboxError("sandbox mode gvisor needs runsc on PATH (Debian: apt-get install runsc); "
                               "use --sandbox process where gVisor is not available")
        self.workers = max(2, workers)
        self.memory_mib = memory_mib
        self.rootfs = ensure_rootfs()
        self._ids = itertools.count(1)
        self._starts = itertools.count(1)
        self._lock = threading.Lock()      # guards _proc, _outbox and _pending (frames queue in order)
        self._pending: dict[int, tuple[dict[str, Any], JobFuture, int]] = {}
        self._proc: subprocess.Popen | None = None
        self._outbox: _Outbox | None = None
        self._closed = False
        self.restarts = 0
        with self._lock:
            self._start()

    # -- process management -------------------------------------------------------------------

    def _command(self) -> list[str]:
        python = str(interpreter())
        # A fresh scratch per sandbox start: in process mode the root's /tmp is a real folder.
        host_args = [str(self.workers), str(self.memory_mib), f"/tmp/scratch-{os.getpid()}-{next(self._starts)}"]
        if self.mode is SandboxMode.GVISOR:
            return ["runsc", "--rootless", "--network=none", "do", "-root", str(self.rootfs), "-cwd", "/tmp",
                    python, "-I", "-S", "-B", f"{SANDBOX_CODE_DIR}/sandbox_host.py", *host_args]
        if os.geteuid() == 0:  # chrooted: the sandbox paths are the same as under gVisor
            return [python, "-I", "-S", "-B", f"{SANDBOX_CODE_DIR}/sandbox_host.py", *host_args]
        scratch = Path(tempfile.gettempdir()) / Path(host_args[2]).name
        return [python, "-I", "-S", "-B", str(Path(self.rootfs) / SANDBOX_CODE_DIR.lstrip("/") / "sandbox_host.py"),
                host_args[0], host_args[1], str(scratch)]

    def _confine(self) -> None:
        """Runs in the child before exec (process mode)."""
        libc = ctypes.CDLL(None, use_errno=True)
        if os.geteuid() == 0:
            # The host stays root inside the chroot (it runs no model code) and starts its
            # workers as nobody, so a job can neither signal the host nor write in scratch.
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
            os.chroot(self.rootfs)
            os.chdir("/tmp")
        else:
            # Unprivileged: a user + network namespace where the kernel allows it; rlimits always.
            libc.unshare(CLONE_NEWNET | 0x10000000)
        resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _start(self) -> None:
        cmd = self._command()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        preexec = self._confine if self.mode is SandboxMode.PROCESS else None
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, preexec_fn=preexec, cwd="/" if preexec else None)
        assert proc.stdout is not None
        try:
            first = _read_frame(proc.stdout)  # the host writes [] once its workers are starting
        except (EOFError, ValueError) as exc:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            proc.kill()
            raise SandboxError(f"the {self.mode.value} sandbox did not start: {exc}; {err.strip()}") from None
        if first != []:
            proc.kill()
            raise SandboxError(f"unexpected first frame from the sandbox: {first!r}")
        self._proc = proc
        self._outbox = _Outbox(proc.stdin)
        threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True).start()
        threading.Thread(target=self._read_results, args=(proc,), daemon=True, name="sandbox-reader").start()

    @staticmethod
    def _drain_stderr(proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.debug("sandbox: %s", line.decode(errors="replace").rstrip())

    def _read_results(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        try:
            while True:
                frame = _read_frame(proc.stdout)
                if not isinstance(frame, list):
                    raise ValueError("result frame is not a list")
                for result in frame:
                    self._resolve(result)
        except (EOFError, ValueError, OSError) as exc:
            self._on_sandbox_exit(proc, exc)

    def _resolve(self, result: Any) -> None:
        if not isinstance(result, dict) or type(result.get("id")) is not int:
            return
        with self._lock:
            entry = self._pending.pop(result["id"], None)
        if entry is not None:
            entry[1].set_result(clean_result(result))

    def _on_sandbox_exit(self, proc: subprocess.Popen, reason: Exception) -> None:
        given_up: list[tuple[JobFuture, dict[str, Any]]] = []  # resolved outside the lock: callbacks may call in
        with self._lock:
            if self._closed or proc is not self._proc:
                return
            log.warning("sandbox exited (%s); restarting and re-running %d jobs", reason, len(self._pending))
            proc.kill()
            if self._outbox is not None:
                self._outbox.close()
            self._proc = self._outbox = None  # until a start succeeds: then submit tries again
            self.restarts += 1
            retry = []
            for job_id, (job, future, attempts) in list(self._pending.items()):
                if attempts < MAX_ATTEMPTS:
                    retry.append((job_id, job, future, attempts))
                else:
                    del self._pending[job_id]
                    given_up.append((future, {"id": job_id, "error": "sandbox", "message": "the sandbox failed repeatedly"}))
            try:
                self._start()
            except SandboxError as exc:
                for job_id, _, future, _ in retry:
                    self._pending.pop(job_id, None)
                    given_up.append((future, {"id": job_id, "error": "sandbox", "message": str(exc)}))
            else:
                for job_id, job, future, attempts in retry:
                    self._pending[job_id] = (job, future, attempts + 1)
                self._send([job for _, job, _, _ in retry])
        for future, result in given_up:
            future.set_result(result)

    def _send(self, jobs: list[dict[str, Any]]) -> None:
        """Queue a frame for the sandbox (the caller holds the lock); it never blocks."""
        assert self._outbox is not None
        data = marshal.dumps(jobs)
        self._outbox.put(_HEADER.pack(len(data)) + data)

    # -- public API ---------------------------------------------------------------------------

    def submit(self, jobs: list[dict[str, Any]]) -> list[JobFuture]:
        """Queue jobs (see `make_job`); one future per job, resolving to {output} or {error, message}."""
        futures = []
        batch = []
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox pool is closed")
            if self._proc is None:  # its last restart failed
                self._start()
            for job in jobs:
                job = dict(job, id=next(self._ids))
                future = JobFuture(job["id"])
                self._pending[job["id"]] = (job, future, 1)
                futures.append(future)
                batch.append(job)
            self._send(batch)
        return futures

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f.result() for f in self.submit(jobs)]

    def cancel(self, futures: list[JobFuture], message: str) -> None:
        """Resolve the unfinished ones among `futures` as timed out, with `message`.

        The sandbox drops those it has not handed to a worker yet; one that is running
        finishes there, and its result is ignored."""
        cancelled = []
        with self._lock:
            for future in futures:
                if self._pending.pop(future.job_id, None) is not None:
                    cancelled.append(future)
            if cancelled and self._proc is not None:
                self._send([{"cancel": [f.job_id for f in cancelled]}])
        for future in cancelled:
            future.set_result({"id": future.job_id, "error": "timeout", "message": message, "cancelled": True})

    def close(self) -> None:
        """Stop the sandbox; every job still waiting gets a sandbox error, so no caller hangs."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
            waiting, self._pending = self._pending, {}
            if self._outbox is not None:
                self._outbox.close()
        for job_id, (_, future, _) in waiting.items():
            future.set_result({"id": job_id, "error": "sandbox", "message": "the sandbox pool was closed"})
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RESULT_ERRORS = frozenset({"runtime", "timeout", "memory", "bad_output_type", "output_too_long", "crashed", "sandbox"})
MAX_MESSAGE_CHARS = 1000


def clean_result(raw: dict[str, Any]) -> dict[str, Any]:
    """What the sandbox said, reduced to {id, output: str[, again: [str]]} or {id, error: known kind, message: str}.

    Frames come from untrusted territory: anything else becomes a sandbox error."""
    result: dict[str, Any] = {"id": raw["id"]}
    error, output, message = raw.get("error"), raw.get("output"), raw.get("message", "")
    again = raw.get("again", [])
    if error is None and isinstance(output, str) and isinstance(again, list) and all(isinstance(a, str) for a in again):
        result["output"] = output
        if again:
            result["again"] = again
    elif error in RESULT_ERRORS:
        result["error"] = error
        result["message"] = message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else ""
    else:
        result.update(error="sandbox", message="malformed result from the sandbox")
    if isinstance(raw.get("taint"), str):
        result["taint"] = raw["taint"][:200]
    return result


@dataclass(frozen=True)
class ShippedCode:
    """A compiled program as it crosses into the sandbox, made once and shared by its runs:
    marshalled (the sandbox's host passes the bytes on without loading them), and whether
    the worker must check the classes and containers of the modules the program imports
    after each run, not only their namespaces."""

    data: bytes
    thorough: bool

    @classmethod
    def of(cls, code: CodeType) -> ShippedCode:
        return cls(marshal.dumps(code), may_change_namespaces(code))


# Bytecode that can change a namespace: attribute stores, and names that reach namespaces
# reflectively. Programs that passed the static checks contain none of these, so the
# (costly) check of every imported module's classes runs only for jobs that skipped them.
_STORE_OPS = frozenset({dis.opmap[n] for n in ("STORE_ATTR", "DELETE_ATTR")})
_REFLECTIVE = frozenset({"setattr", "delattr", "vars", "getattr", "globals", "locals", "exec", "eval", "compile",
                         "__import__", "attrgetter", "methodcaller"})


def may_change_namespaces(code: CodeType) -> bool:
    stack = [code]
    while stack:
        current = stack.pop()
        if _STORE_OPS.intersection(current.co_code[::2]) or _REFLECTIVE.intersection(current.co_names) \
                or any(n.startswith("_") for n in current.co_names):
            return True
        stack.extend(c for c in current.co_consts if isinstance(c, CodeType))
    return False


def make_job(code: CodeType | ShippedCode, args: tuple, lane: int, timeout: float, max_chars: int,
             calls: int = 1) -> dict[str, Any]:
    """One run of f(*args) after executing `code`, in a worker of `lane` (0 or 1): `calls`
    calls in the same process, each on its own copy of the arguments. The result's `output`
    is the first call's repr and `again` the later ones'.

    Only trusted values go in: code compiled here from a checked program, and argument
    values parsed here from literals. They cross into the sandbox with marshal."""
    shipped = code if isinstance(code, ShippedCode) else ShippedCode.of(code)
    return {"code": shipped.data, "thorough": shipped.thorough, "args": tuple(args), "lane": lane,
            "timeout": float(timeout), "max_chars": int(max_chars), "calls": int(calls)}


def _read_frame(stream: Any) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError("the sandbox closed its output")
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes from the sandbox")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the sandbox closed its output mid-frame")
    return json.loads(data)
