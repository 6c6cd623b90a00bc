"""`azr run`: every service of a SelfPlayRun as a local process, wired by gRPC on loopback.

    RUN_DIR/spec.yaml        the spec the run uses (a resumed run keeps its own)
    RUN_DIR/logs/<role>.log  each service's output
    RUN_DIR/metrics.jsonl, checkpoints/, weights/   written by the learner

The runner starts the executor and the generators, waits until each answers its health check,
then starts the learner and watches: a service that dies is restarted on the same port (the
learner's clients retry until it is back); a learner that dies is restarted and resumes from its
last checkpoint. Ctrl-C (or SIGTERM) asks the learner to checkpoint and stop, then stops the rest.
Started again on the same run directory, a run continues from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml

import azr_rpc as rpc
from azr.spec import SelfPlayRun, SpecError, load_run
from azr_contracts.v1 import learner_pb2, learner_pb2_grpc
from azr_launcher.topology import ServicePlan, gpu_placement, plan

log = logging.getLogger(__name__)

START_TIMEOUT = 900        # a vLLM engine on 2 CPU cores takes 30-120 s; the first model conversion ~40 s more
MAX_RESTARTS = 3           # per service, before the run gives up
LEARNER_STOP_TIMEOUT = 600  # a stop finishes an update in flight and writes a checkpoint


class RunError(RuntimeError):
    """A service could not start, or died more often than the runner restarts it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visible_gpus() -> list[str]:
    """The cards this process may use: CUDA_VISIBLE_DEVICES when set, else every card
    `nvidia-smi` lists (none without a driver). Nothing here initialises CUDA."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [card for card in given.split(",") if card.strip()]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in listed.splitlines() if line.startswith("GPU "))]


def prepare_run_dir(spec_file: str, run_dir: Path) -> tuple[SelfPlayRun, Path]:
    """The run directory and its spec: a new run copies the file in; a resumed run must be
    given the same spec (or none), so that one directory never mixes two runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stored = run_dir / "spec.yaml"
    given = load_run(spec_file)
    if stored.exists():
        kept = load_run(stored)
        a, b = (r.model_dump(mode="json", by_alias=True, exclude={"status"}) for r in (kept, given))
        if a != b:
            changed = sorted(_differences(a, b))
            raise SpecError(f"{run_dir} holds a run of a different spec (differs at {', '.join(changed[:5])}); "
                            f"use another --run-dir, or the same spec to resume it")
        return kept, stored
    stored.write_text(given.to_yaml())
    return given, stored


def _differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}.{k}".lstrip("."))]
    return [] if a == b else [path or "(top level)"]


@dataclass
class Service:
    role: str
    plan: ServicePlan
    port: int
    log_path: Path
    cards: str | None = None  # CUDA_VISIBLE_DEVICES, when the run gives it cards of its own
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, ranks: int = 1) -> None:
        command = [sys.executable, "-m", "azr_launcher.cli", *self.plan.command(self.address)]
        if ranks > 1:  # the learner's data-parallel ranks; rank 0 binds the address
            command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}",
                       f"--master-port={free_port()}", "-m", *command[2:]]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(command)}\n")
            out.flush()
            # Its own session: Ctrl-C reaches the runner only, which stops services in order.
            env = None if self.cards is None else {**os.environ, "CUDA_VISIBLE_DEVICES": self.cards}
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.started_at = time.monotonic()
        if self.channel is None:
            self.channel = rpc.channel(self.address)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        return rpc.is_serving(self.channel)

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.channel is not None:
            self.channel.close()
            self.channel = None


class LocalRun:
    def __init__(self, spec_file: str, run_dir: Path, steps: int | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.run, stored = prepare_run_dir(spec_file, self.run_dir)
        self.steps = steps or self.run.spec.training.steps
        ports = {role: free_port() for role in ("executor", "proposer", "solver", "learner")}
        plans = plan(self.run, str(stored), str(self.run_dir), lambda role, k: f"127.0.0.1:{ports[role]}", self.steps)
        for p in plans:
            if p.role != "learner" and p.replicas != 1:
                log.warning("%s: %d replicas requested; a local run starts one", p.role, p.replicas)
        cards = gpu_placement(self.run, visible_gpus())
        if cards:
            log.info("cards of their own: %s", ", ".join(f"{role} {ids}" for role, ids in cards.items()))
        self.services = {p.role: Service(p.role, p, ports[p.role], self.run_dir / "logs" / f"{p.role}.log", cards.get(p.role))
                         for p in plans}
        self.stopping = threading.Event()
        self.failure: str | None = None

    @property
    def learner(self) -> Service:
        return self.services["learner"]

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, on_wait=lambda pending: None) -> None:
        """The services the learner needs, healthy; then the learner."""
        backends = [s for s in self.services.values() if s.role != "learner"]
        for s in backends:
            s.start()
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(backends)
        while pending:
            if self.stopping.is_set():
                raise KeyboardInterrupt
            for s in list(pending):
                if not s.alive():
                    raise RunError(f"the {s.role} exited with {s.proc.returncode} while starting; see {s.log_path}:\n"
                                   + tail(s.log_path))
                if s.healthy():
                    pending.remove(s)
            on_wait([s.role for s in pending])
            if time.monotonic() > deadline:
                raise RunError(f"not healthy after {START_TIMEOUT} s: {', '.join(s.role for s in pending)}")
            time.sleep(0.5)
        self.learner.start(ranks=self.run.spec.learner.ranks)

    def supervise_once(self) -> bool:
        """Restart what died; returns True once the learner has finished."""
        for s in self.services.values():
            if s.alive() or self.stopping.is_set():
                continue
            code = s.proc.returncode
            if s.role == "learner" and code == 0:
                return True
            if s.restarts >= MAX_RESTARTS:
                self.failure = f"the {s.role} died {s.restarts + 1} times (last exit {code}); see {s.log_path}"
                raise RunError(self.failure + "\n" + tail(s.log_path))
            s.restarts += 1
            log.warning("the %s exited with %s; restarting it (%d of %d)", s.role, code, s.restarts, MAX_RESTARTS)
            s.start(ranks=self.run.spec.learner.ranks if s.role == "learner" else 1)
        return False

    def status(self) -> learner_pb2.LearnerStatus | None:
        if self.learner.channel is None:
            return None
        try:
            return learner_pb2_grpc.LearnerStub(self.learner.channel).GetStatus(learner_pb2.LearnerStatusRequest(), timeout=2)
        except grpc.RpcError:
            return None

    def shutdown(self) -> None:
        """The learner first (it checkpoints), then the services it used."""
        self.stopping.set()
        self.learner.stop(timeout=LEARNER_STOP_TIMEOUT)
        for s in self.services.values():
            if s.role != "learner":
                s.stop()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_jsonl(run_dir: Path, name: str) -> list[dict]:
    """A run directory's metrics.jsonl or examples.jsonl: one record a line; none yet is []."""
    import json

    path = Path(run_dir) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir, "metrics.jsonl")


def default_run_dir(spec_file: str) -> Path:
    try:
        name = yaml.safe_load(Path(spec_file).read_text())["metadata"]["name"]
    except Exception:  # the spec's own validation reports a bad file
        name = Path(spec_file).stem
    return Path("runs") / str(name)


def which_runsc_missing(run: SelfPlayRun) -> str | None:
    from azr_executor.pool import runsc_available

    if run.spec.executor.sandbox.value == "gvisor" and not runsc_available():
        return "the executor's sandbox is gvisor but runsc is not on PATH (./install.sh installs it; or set executor.sandbox: process)"
    return None
