"""The supervisor inside the sandbox: keeps a pool of long-lived workers and feeds them jobs.

Runs as the sandbox's first process (`runsc do ... python -I -S sandbox_host.py`, or a
plain rlimited process in `process` mode). It reads job batches from stdin (marshal
frames from the trusted side) and writes results to stdout (JSON frames), in completion
order; every frame starts with its 4-byte big-endian length.

Workers are split into two lanes with different hash seeds; the trusted side sends the two
runs of a determinism check to different lanes. A worker reports how many jobs it has started
in memory shared with the host and its results a chunk at a time (a system call costs more
than a typical job inside gVisor). A worker that overruns a job's wall-clock limit, dies, or
reports itself tainted is killed with its whole process group and replaced; the jobs it had
not started, and those it finished without reporting, go back to the queue. A frame entry {"cancel": [ids]} drops those jobs:
from the queues at once, and from a worker's hands if they come back to the queue. Forking is slow inside gVisor, so workers are
started once and reused.
"""

import collections
import json
import marshal
import mmap
import os
import random
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "sandbox_worker.py")
_HEADER = struct.Struct(">I")
_PROGRESS = struct.Struct("=Q")  # what a worker writes before each job: how many it has started
CHUNK = 32           # jobs handed to a worker at once
GRACE_SECONDS = 1.0  # on top of a job's own limit before the host kills the worker
POLL_SECONDS = 0.05  # how often a busy worker's progress is read (the error of its job's start time)
NOBODY = 65534
# Reads stay below malloc's mmap threshold (128 KiB): a larger buffer is mapped and unmapped
# on every read, two more system calls, and a system call is dear inside gVisor.
READ_BYTES = 1 << 16


class Worker:
    def __init__(self, lane, memory_mib, scratch_root):
        self.lane = lane
        # Lanes never share a hash seed: lane 0 gets even seeds, lane 1 odd ones.
        self.seed = random.randrange(1, 2**31) * 2 + lane
        # Each worker its own scratch folder (its cwd), writable only where the host is not root.
        scratch = os.path.join(scratch_root, f"w{self.seed}")
        os.makedirs(scratch, mode=0o755, exist_ok=True)
        job_r, self.job_w = os.pipe()
        self.result_r, result_w = os.pipe()
        # Shared memory, not a pipe: the worker reports each job's start without a system call.
        self.progress_fd = os.memfd_create(f"progress-{self.seed}", 0)
        os.ftruncate(self.progress_fd, _PROGRESS.size)
        self.progress = mmap.mmap(self.progress_fd, _PROGRESS.size)
        env = {"PYTHONHASHSEED": str(self.seed), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "HOME": scratch, "TMPDIR": scratch}
        # As root (PID 1 under gVisor, or a chrooted host) workers drop to nobody: then the
        # worker's RLIMIT_NPROC of 0 is enforced, so a job can start no process and no thread.
        identity = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.getuid() == 0 else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", WORKER, str(job_r), str(result_w), str(memory_mib), str(self.progress_fd)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(job_r, result_w, self.progress_fd), env=env, cwd=scratch, start_new_session=True, close_fds=True,
            **identity)
        os.close(job_r)
        os.close(result_w)
        os.set_blocking(self.result_r, False)
        self.buffer = b""
        self.ready = False
        self.pending = collections.deque()  # jobs sent and not answered, in order
        self.answered = 0                   # results received, over the worker's life
        self.seen = 0                       # jobs started, as last read from its progress
        self.seen_at = 0.0                  # when that count was first read: the running job's start, within a poll

    def send(self, jobs):
        self.pending.extend(jobs)
        data = marshal.dumps(jobs)
        _write_all(self.job_w, _HEADER.pack(len(data)) + data)

    def poll(self, now):
        """Read the worker's progress; a new count means a new job started (about now)."""
        (started,) = _PROGRESS.unpack_from(self.progress)
        if started != self.seen:
            self.seen, self.seen_at = started, now

    def running(self):
        """The index in `pending` of the job the worker runs, or None: the jobs before it have
        finished, and their results may still wait in the worker's buffer."""
        index = self.seen - self.answered - 1
        return index if 0 <= index < len(self.pending) else None

    def deadline(self):
        index = self.running()
        if index is None:
            return None
        return self.seen_at + float(self.pending[index]["timeout"]) + GRACE_SECONDS

    def frames(self):
        """Complete frames read so far; raises EOFError when the worker is gone."""
        try:
            chunk = os.read(self.result_r, READ_BYTES)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            raise EOFError
        if chunk:
            self.buffer += chunk
        out = []
        while len(self.buffer) >= 4:
            (size,) = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < 4 + size:
                break
            out.append(json.loads(self.buffer[4:4 + size]))
            self.buffer = self.buffer[4 + size:]
        return out

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.progress.close()
        for fd in (self.job_w, self.result_r, self.progress_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            time.sleep(0.001)


class Host:
    def __init__(self, workers, memory_mib, scratch):
        self.memory_mib = memory_mib
        self.scratch = scratch
        self.selector = selectors.DefaultSelector()
        self.queues = (collections.deque(), collections.deque())
        self.workers = []
        self.out = []
        self.cancelled = set()  # ids cancelled while in a worker's hands, not yet run
        for n in range(workers):
            self._spawn(n % 2)
        stdin = sys.stdin.buffer.fileno()
        os.set_blocking(stdin, False)
        self.stdin = stdin
        self.stdin_buffer = b""
        self.selector.register(stdin, selectors.EVENT_READ, None)

    def _spawn(self, lane):
        worker = Worker(lane, self.memory_mib, self.scratch)
        self.workers.append(worker)
        self.selector.register(worker.result_r, selectors.EVENT_READ, worker)

    def _retire(self, worker, error, message):
        """Kill a worker, fail its running job (if error), requeue the rest (the jobs it finished
        but had not reported too: they are pure), start a replacement."""
        self.selector.unregister(worker.result_r)
        self.workers.remove(worker)
        worker.poll(time.monotonic())
        running = worker.running()
        worker.kill()
        pending = list(worker.pending)
        if error and running is not None:
            job = pending.pop(running)
            self.out.append({"id": job["id"], "error": error, "message": message})
            self.cancelled.discard(job["id"])
        pending = [job for job in pending if job["id"] not in self.cancelled]
        self.cancelled.difference_update(job["id"] for job in worker.pending)
        self.queues[worker.lane].extendleft(reversed(pending))
        self._sweep()
        self._spawn(worker.lane)

    def _sweep(self):
        """Kill every process a dead worker left behind (forked children, fork bombs).

        Only as the sandbox's first process (PID 1 under gVisor): there /proc shows the
        sandbox alone. gVisor does not enforce RLIMIT_NPROC for root, so this is what stops
        a fork bomb that outlived its worker's process group."""
        if os.getpid() != 1:
            return
        keep = {1} | {w.proc.pid for w in self.workers}
        for _ in range(10):
            strays = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
            if not strays:
                return
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            for pid in strays:  # reap the ones that were our children
                try:
                    os.waitpid(pid, os.WNOHANG)
                except OSError:
                    pass

    def _read_stdin(self):
        try:
            chunk = os.read(self.stdin, READ_BYTES)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.stdin_buffer += chunk
        while len(self.stdin_buffer) >= 4:
            (size,) = _HEADER.unpack_from(self.stdin_buffer)
            if len(self.stdin_buffer) < 4 + size:
                break
            for job in marshal.loads(self.stdin_buffer[4:4 + size]):
                if "cancel" in job:
                    self._cancel(set(job["cancel"]))
                else:
                    self.queues[int(job.get("lane", 0)) % 2].append(job)
            self.stdin_buffer = self.stdin_buffer[4 + size:]
        return True

    def _cancel(self, ids):
        for queue in self.queues:
            kept = [job for job in queue if job["id"] not in ids]
            if len(kept) < len(queue):
                queue.clear()
                queue.extend(kept)
        # A worker runs its whole chunk; these are dropped only if the chunk comes back (_retire).
        self.cancelled.update(job["id"] for worker in self.workers for job in list(worker.pending)[1:] if job["id"] in ids)

    def _on_worker(self, worker):
        try:
            frames = worker.frames()
        except EOFError:
            self._retire(worker, "crashed", "the worker process died")
            return
        for frame in frames:
            if "ready" in frame:
                worker.ready = True
                continue
            job = worker.pending.popleft() if worker.pending else None
            if job is None or frame.get("id") != job["id"]:
                self._retire(worker, "crashed", "the worker sent a result for another job")
                return
            self.out.append(frame)
            self.cancelled.discard(job["id"])
            worker.answered += 1
            if "taint" in frame:
                self._retire(worker, None, "")
                return

    def _dispatch(self):
        for worker in self.workers:
            queue = self.queues[worker.lane]
            if worker.ready and not worker.pending and queue:
                # A short queue is shared by the lane's workers: one slow job must not hold
                # back the end of a batch that another worker could be running.
                share = -(-len(queue) // sum(w.lane == worker.lane for w in self.workers))
                jobs = [queue.popleft() for _ in range(min(CHUNK, share))]
                try:
                    worker.send(jobs)
                except OSError:
                    self._retire(worker, "crashed", "the worker process died")
                    return self._dispatch()

    def _enforce_deadlines(self, now):
        for worker in list(self.workers):
            worker.poll(now)
            deadline = worker.deadline()
            if deadline is not None and now > deadline:
                self._retire(worker, "timeout", "wall-clock limit exceeded; worker killed")

    def _flush(self):
        if not self.out:
            return
        data = json.dumps(self.out).encode()
        self.out = []
        _write_all(sys.stdout.buffer.fileno(), _HEADER.pack(len(data)) + data)

    def serve(self):
        _write_all(sys.stdout.buffer.fileno(), _HEADER.pack(2) + b"[]")  # the host is up
        while True:
            now = time.monotonic()
            deadlines = [d for d in (w.deadline() for w in self.workers) if d is not None]
            # A busy worker's progress is read at least every POLL_SECONDS: its next job may start any time.
            deadlines += [now + POLL_SECONDS for w in self.workers if w.pending]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    if not self._read_stdin():
                        return
                elif key.data in self.workers:
                    self._on_worker(key.data)
            self._enforce_deadlines(time.monotonic())
            self._dispatch()
            self._flush()


def main():
    workers, memory_mib, scratch = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if os.getpid() == 1:
        # gVisor mounts its own world-writable /tmp; close it so that no job can leave a
        # file there for the next one (workers run as nobody and can write nowhere).
        os.chmod("/tmp", 0o755)
    os.makedirs(scratch, mode=0o755, exist_ok=True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    host = Host(max(2, workers), memory_mib, scratch)
    try:
        host.serve()
    finally:
        for worker in list(host.workers):
            worker.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
