"""A long-lived worker inside the sandbox: runs model-written programs, one job at a time.

Started by sandbox_host.py as `python -I -S sandbox_worker.py` with its own PYTHONHASHSEED,
stdin/stdout/stderr on /dev/null. Jobs arrive on fd JOB_FD as marshal frames (the trusted
side has already checked and compiled the program and parsed the arguments); results leave
on RESULT_FD as JSON frames (4-byte big-endian length first). Everything here is untrusted
territory: the trusted side re-parses every result and never believes a worker's verdict
about another worker's run.

Jobs cannot leak state into the next job: each runs with fresh globals and a fresh copy of
the builtins dict; after each job the worker checks the state a job could have changed
(builtins, the modules it imported and their classes, threads, signal handlers, recursion
limit, gc) and, on any difference, reports itself tainted so the host replaces it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _thread  # noqa: E402
import builtins  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import marshal  # noqa: E402
import mmap  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

from azr_literals import is_literal_value  # noqa: E402

# Modules a program may import, loaded before any job so that their state can be checked.
PRELOAD = ("collections", "collections.abc", "itertools", "functools", "math", "cmath", "heapq", "bisect",
           "re", "string", "operator", "copy", "statistics", "fractions", "decimal", "typing", "enum",
           "numbers", "array", "textwrap", "unicodedata", "dataclasses", "keyword", "difflib", "base64",
           "binascii", "zlib", "abc", "contextlib")
for _name in PRELOAD:
    try:
        __import__(_name)
    except ImportError:
        pass

_HEADER = struct.Struct(">I")
_PROGRESS = struct.Struct("=Q")  # jobs started, in the memory shared with the host
FLUSH_SECONDS = 0.02             # the longest a finished job's result waits for its chunk
READ_BYTES = 1 << 16             # below malloc's mmap threshold: no mmap and munmap per read
_type = type
_repr = repr
_len = len
_id = id
_list = list
_map = map
_all = all
_is = __import__("operator").is_
_BuiltinsDict = dict(builtins.__dict__)
_dumps, _loads = marshal.dumps, marshal.loads
_monotonic = time.monotonic
_REAL_IMPORT = builtins.__import__


def _identities(namespace):
    """The keys and values, in order: compared by identity (`_same`), a replaced, added,
    removed or reordered entry shows. The snapshot keeps the original objects alive."""
    return tuple(namespace), tuple(namespace.values())


def _same(namespace, snapshot):
    """Whether `namespace` holds the very objects of `snapshot`, in order. The comparison runs
    in C (`map` of `operator.is_`), with no object made per entry."""
    keys, values = snapshot
    return _len(namespace) == _len(keys) and _all(_map(_is, namespace, keys)) and _all(_map(_is, namespace.values(), values))


class _Sink:
    """Where a job's prints go: nowhere, without a system call."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _contents(value):
    """What a module-level container holds, for `_same_contents`."""
    kind = _type(value)
    if kind is dict:
        return _identities(value)
    if kind is list:
        return tuple(value)
    return _len(value), frozenset(_map(_id, value))  # set: no order to compare in


def _same_contents(value, snapshot):
    kind = _type(value)
    if kind is dict:
        return _same(value, snapshot)
    if kind is list:
        return _len(value) == _len(snapshot) and _all(_map(_is, value, snapshot))
    return (_len(value), frozenset(_map(_id, value))) == snapshot


def _snapshot_module(module):
    """A module's namespace; for the thorough check also the namespaces of its classes and
    its module-level dicts, lists and sets (caches, dispatch tables)."""
    names = vars(module)
    parts = [(v, _identities(vars(v))) for v in names.values()
             if _type(v) is _type and getattr(v, "__module__", None) == module.__name__]
    parts += [(v, _contents(v)) for v in names.values() if _type(v) in (dict, list, set)]
    return _identities(names), parts


def _module_changed(module, snapshot, thorough=True):
    names, parts = snapshot
    if not _same(vars(module), names):
        return True
    for value, contents in (parts if thorough else ()):
        if not (_same(vars(value), contents) if _type(value) is _type else _same_contents(value, contents)):
            return True
    return False


NEW_MODULE = "imported a module that was not preloaded"  # legitimate, but the worker is no longer fresh
MEMORY_ERROR = "memory error"  # the job already failed with kind memory
_SNAPSHOTS = {name: _snapshot_module(mod) for name, mod in list(sys.modules.items()) if mod is not None}
_MODULE_COUNT = len(sys.modules)
_RECURSION_LIMIT = sys.getrecursionlimit()
_SCRATCH_STAMP = 0
_CHECK_SCRATCH = False
_SIGNAL_HANDLERS = []
_OWN_THREADS = 0  # the worker's own: the result flusher
_WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGXFSZ, signal.SIGPIPE)


def _signal_handlers():
    return [_id(signal.getsignal(s)) for s in _WATCHED_SIGNALS]


def _restore_builtins():
    """Put back the builtins a job replaced; True if it had changed any. Uses no builtin
    that the job could have replaced (only names captured at start-up and dict methods);
    the snapshot keeps the original objects alive, so their ids cannot be reused."""
    current = builtins.__dict__
    if _same(current, _BUILTINS_SNAPSHOT):
        return False
    _dict_clear(current)
    _dict_update(current, _BuiltinsDict)
    return True


_dict_clear, _dict_update = dict.clear, dict.update
_BUILTINS_SNAPSHOT = _identities(_BuiltinsDict)


def _scratch_stamp():
    try:
        return os.stat(".").st_mtime_ns
    except OSError:
        return 0


def _tainted(imported, thorough=True):
    """A reason why this worker's state differs from a fresh one, or ''. `thorough` adds the
    classes of the imported modules to the modules themselves."""
    if _CHECK_SCRATCH and _scratch_stamp() != _SCRATCH_STAMP:
        return "files changed in the scratch directory"
    if _thread._count() != _OWN_THREADS:
        return "threads left running"
    if len(sys.modules) != _MODULE_COUNT:
        return NEW_MODULE
    if _signal_handlers() != _SIGNAL_HANDLERS:
        return "signal handlers changed"
    if sys.getrecursionlimit() != _RECURSION_LIMIT or not gc.isenabled() or sys.gettrace() or sys.getprofile():
        return "interpreter settings changed"
    for name in imported:
        module = sys.modules.get(name)
        snapshot = _SNAPSHOTS.get(name)
        if module is None or snapshot is None or _module_changed(module, snapshot, thorough):
            return f"module {name} changed"
    return ""


def run_job(job):
    """Run f(*args) for one job; returns the result message."""
    imported = set()

    def tracking_import(name, globals=None, locals=None, fromlist=(), level=0):
        module = _REAL_IMPORT(name, globals, locals, fromlist, level)
        imported.add(name)
        for sub in fromlist or ():
            if f"{name}.{sub}" in sys.modules:
                imported.add(f"{name}.{sub}")
        return module

    job_builtins = dict(_BuiltinsDict)
    job_builtins["__import__"] = tracking_import
    scope = {"__builtins__": job_builtins, "__name__": "__azr_job__"}
    reply = {"id": job["id"]}
    try:
        # No timer here: the host kills a worker that overruns its job's wall-clock limit,
        # which a job cannot catch or disarm; it saves two system calls per job.
        exec(_loads(job["code"]), scope)
        reply.update(_calls(scope["f"], job))
    except MemoryError:
        reply.update(error="memory", message="memory limit exceeded", taint=MEMORY_ERROR)
    except RecursionError:
        reply.update(error="runtime", message="RecursionError: maximum recursion depth exceeded")
    except BaseException as exc:  # any exception, SystemExit and KeyboardInterrupt included, is invalid
        reply.update(error="runtime", message=_describe(exc))
    # Encoding ran worker code between the job's calls: if the job replaced builtins, it can at
    # worst forge its own output, and the check below fails the job anyway.
    patched = _restore_builtins()
    scope.clear()
    taint = reply.get("taint") or ("builtins changed" if patched else
                                   _tainted(imported, job.get("thorough", True)))
    if taint:
        reply["taint"] = taint
        if taint not in (NEW_MODULE, MEMORY_ERROR):  # changing the interpreter's state fails the job
            reply.update(error="runtime", message=f"the program changed the interpreter's state: {taint}")
            reply.pop("output", None)
    return reply


def _calls(f, job):
    """The reply's output (and `again`) from job["calls"] calls of f, or its error. Every call
    gets its own copy of the arguments (f may change them), and each result is printed before
    the next call (the next call may change it)."""
    args, calls, max_chars = job["args"], job.get("calls", 1), int(job["max_chars"])
    fresh = _dumps(args) if calls > 1 else b""
    outputs = []
    for call in range(calls):
        encoded = _encode_result(f(*(args if call == 0 else _loads(fresh))), max_chars)
        if "output" not in encoded:
            return encoded
        outputs.append(encoded["output"])
    return {"output": outputs[0], "again": outputs[1:]} if calls > 1 else {"output": outputs[0]}


def _encode_result(result, max_chars):
    try:  # still inside the job's wall-clock limit: a huge repr gets the worker killed
        if not is_literal_value(result):
            return {"error": "bad_output_type", "message": f"result of type {_type(result).__name__} is not built from builtin literals"}
        text = _repr(result)
    except (ValueError, MemoryError, RecursionError) as exc:  # e.g. int too large to print
        return {"error": "output_too_long", "message": f"result cannot be printed: {type(exc).__name__}"}
    if _len(text) > max_chars:
        return {"error": "output_too_long", "message": f"result repr has {_len(text)} characters (limit {max_chars})"}
    return {"output": text}  # the trusted side parses it back; nan and inf fail there


def _describe(exc):
    try:
        return f"{_type(exc).__name__}: {str(exc)[:200]}"
    except BaseException:
        return _type(exc).__name__


class _Frames:
    """Frames from a pipe, read in as few system calls as the writer allows (usually one a
    chunk of jobs: a system call costs more inside gVisor than a typical job)."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, b""

    def next(self):
        while True:
            if _len(self.buffer) >= 4:
                (size,) = _HEADER.unpack_from(self.buffer)
                if _len(self.buffer) >= 4 + size:
                    frame, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
                    return frame
            chunk = os.read(self.fd, READ_BYTES)
            if not chunk:
                raise EOFError
            self.buffer += chunk


def _frame(message):
    data = json.dumps(message).encode()
    return _HEADER.pack(_len(data)) + data


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _write_frame(fd, message):
    _write_all(fd, _frame(message))


class _Results:
    """Finished jobs' result frames, written a chunk at a time: by the main thread when its
    chunk is done, or by the flusher thread when a frame has waited FLUSH_SECONDS (a long job
    must not hold back the results of those before it). A system call costs microseconds
    inside gVisor, a job often less."""

    def __init__(self, fd):
        self.fd, self.lock, self.frames, self.since = fd, _thread.allocate_lock(), [], 0.0

    def add(self, frame):
        with self.lock:
            if not self.frames:
                self.since = _monotonic()
            self.frames.append(frame)

    def flush(self):
        with self.lock:
            data, self.frames = b"".join(self.frames), []
            if data:
                _write_all(self.fd, data)

    def flush_waiting(self):
        """The flusher thread's loop; it started before RLIMIT_NPROC and before any job."""
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                if self.frames and _monotonic() - self.since > FLUSH_SECONDS:
                    self.flush()
            except OSError:
                return  # the host is gone; the main thread sees it too
            except MemoryError:
                pass  # a job holds the memory; the main thread flushes after it


def _serve(job_fd, results, progress):
    """Run chunks of jobs. Before each job, the count of jobs started goes into `progress`
    (memory the host also maps: no system call), so the host knows which job runs and since
    when."""
    started = 0
    frames = _Frames(job_fd)
    while True:
        try:
            jobs = marshal.loads(frames.next())
        except EOFError:
            return
        for job in jobs:
            started += 1
            _PROGRESS.pack_into(progress, 0, started)
            reply = run_job(job)
            results.add(_frame(reply))
            if "taint" in reply:
                results.flush()
                return  # the host replaces a tainted worker; the rest of the chunk is re-queued
        results.flush()


def _virtual_memory_size():
    """Bytes of address space this interpreter already uses; the job's limit comes on top."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 256 * 2**20


def main():
    job_fd, result_fd, progress_fd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4])
    results = _Results(result_fd)
    _thread.start_new_thread(results.flush_waiting, ())  # before RLIMIT_NPROC forbids threads
    while _thread._count() < 1:  # counted once it runs
        time.sleep(0.001)
    global _OWN_THREADS
    _OWN_THREADS = _thread._count()
    memory_bytes = int(sys.argv[3]) * 2**20 + _virtual_memory_size()
    if int(sys.argv[3]) > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
        except (ValueError, OSError):
            pass
    # No files: a job cannot leave anything on disk for the next one (Python ignores SIGXFSZ,
    # so a write fails with an error rather than killing the worker). No core dumps, no children.
    for limit, value in ((resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 0)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass
    sys.stdout = sys.stderr = _Sink()
    global _SCRATCH_STAMP, _CHECK_SCRATCH, _SIGNAL_HANDLERS
    _CHECK_SCRATCH = os.access(".", os.W_OK)  # as nobody (sandboxes run by root) nothing is writable
    _SCRATCH_STAMP = _scratch_stamp()
    _SIGNAL_HANDLERS = _signal_handlers()
    gc.collect()
    gc.freeze()  # what exists now is the fresh state; keep it out of later collections
    progress = mmap.mmap(progress_fd, _PROGRESS.size)
    _write_frame(result_fd, {"ready": os.getpid()})
    _serve(job_fd, results, progress)


if __name__ == "__main__":
    main()
