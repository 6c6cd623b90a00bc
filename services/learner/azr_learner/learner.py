"""The learner: drives the self-play loop, trains the policy, publishes weights, checkpoints.

    resume from the newest checkpoint, or run the seeding pass
    for each step:
        rollout   = propose, validate, Monte-Carlo, insert, solve, check, rewards, TRR++ (azr.selfplay)
        update    = one PPO-clip pass on DeepSpeed (azr_learner.policy)
        sync      = write the weights, UpdateWeights on every proposer and solver replica
        checkpoint every `checkpointEvery` steps, at the end, and when asked to stop
        one line of metrics.jsonl

Synchronous mode runs these in order (docs/method.md, part 2). Asynchronous mode rolls out step
t+1 in a second thread while step t trains; the rollout of step t may start only once the
policy is at version t - 1 - maxPolicyLag, and any sample more than maxPolicyLag versions
behind the policy being updated is dropped and counted (`dropped_stale`).
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azr.metrics import Phase, json_safe
from azr.selfplay import Interrupted, SelfPlay, StepRollout, assign_advantages, drop_stale
from azr.spec import RunMode, SelfPlayRun
from azr_learner.checkpoint import latest_checkpoint, read_state, restore_torch_rng, write_checkpoint
from azr_learner.clients import ExecutorClient, GeneratorClient

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
EXAMPLES = "examples.jsonl"  # per step: a few proposals (valid, rejected with the reason) and graded answers


@dataclass
class Endpoints:
    proposers: list[str]
    solvers: list[str]
    executor: str


@dataclass
class Status:
    """What GetStatus reports; written by the loop, read by the RPC threads."""

    step: int = 0
    total_steps: int = 0
    policy_version: int = 0
    phase: str = Phase.STARTING.value
    last_checkpoint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self, key, value)


class Learner:
    def __init__(self, run: SelfPlayRun, run_dir: Path, endpoints: Endpoints, policy, steps: int | None = None):
        self.run, self.spec = run, run.spec
        self.run_dir = Path(run_dir)
        self.policy = policy
        self.total_steps = steps or self.spec.training.steps
        self.status = Status(total_steps=self.total_steps)
        self.stop_requested = threading.Event()
        self._halt = threading.Event()  # the training thread ended early: the rollout thread stops too
        self.stopped_checkpoint: str = ""
        self.done = threading.Event()
        self.endpoints = endpoints
        # One client per distinct address: a solver sharing the proposer's pool is one engine.
        self._clients: dict[str, GeneratorClient] = {}
        self._clients_lock = threading.Lock()
        self.executor = ExecutorClient(endpoints.executor)
        self._publish_lock = threading.Lock()
        self.selfplay = SelfPlay(self.spec.method, _Replicas("proposer", endpoints.proposers, self),
                                 _Replicas("solver", endpoints.solvers, self), self.executor,
                                 seed=self.spec.training.seed, engine_logprobs=self.spec.training.uses_engine_logprobs,
                                 on_phase=lambda p: self.status.update(phase=p),
                                 should_stop=lambda: self.stop_requested.is_set() or self._halt.is_set())
        self.version = 0
        self.step = 0
        self._last_state: dict[str, Any] | None = None  # self-play state after the last completed step
        self._last_checkpointed = -1

    # -- the run -------------------------------------------------------------------------------

    def fit(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if not self._resume():
                try:
                    self._seed()
                except Interrupted:
                    self.status.update(phase=Phase.STOPPED.value)
                    return
            self._sync_generators(resume=True)
            if self.spec.training.mode is RunMode.ASYNC:
                self._fit_async()
            else:
                self._fit_sync()
            if self.step > self._last_checkpointed:
                self._checkpoint()
            self.status.update(phase=(Phase.STOPPED if self.stop_requested.is_set() else Phase.DONE).value)
        finally:
            self.done.set()

    def _fit_sync(self) -> None:
        while self.step < self.total_steps and not self.stop_requested.is_set():
            self._sync_generators()
            start = time.perf_counter()
            try:
                rollout = self.selfplay.collect(self.step + 1)
            except Interrupted:
                return
            self._learn(rollout, dropped=0, started=start)

    def _fit_async(self) -> None:
        lag = self.spec.training.max_policy_lag
        ready: queue.Queue[StepRollout | BaseException | None] = queue.Queue(maxsize=1)
        version_changed = threading.Condition()

        def produce() -> None:
            try:
                for step in range(self.step + 1, self.total_steps + 1):
                    with version_changed:  # the policy lag bound, before any sample of `step` exists
                        version_changed.wait_for(lambda s=step: self.version >= s - 1 - lag or self._halted())
                    if self._halted():
                        break
                    ready.put(self.selfplay.collect(step))
                ready.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread, which raises it
                ready.put(exc)

        producer = threading.Thread(target=produce, name="rollout", daemon=True)
        producer.start()
        try:
            while self.step < self.total_steps:
                start = time.perf_counter()
                item = ready.get()
                if item is None or isinstance(item, Interrupted):
                    return
                if isinstance(item, BaseException):
                    raise item
                kept, dropped = drop_stale(item.samples, self.version, lag)
                if dropped:
                    log.warning("step %d: dropped %d samples more than %d versions old", item.step, dropped, lag)
                    assign_advantages(kept, self.spec.method.advantage_weighting)
                item.samples = kept
                self._learn(item, dropped, started=start)
                with version_changed:
                    version_changed.notify_all()
                if self.stop_requested.is_set():
                    return
        finally:
            self._halt.set()
            with version_changed:
                version_changed.notify_all()
            _drain(ready)
            producer.join(timeout=60)

    def clients(self, role: str, endpoints: list[str]) -> list[GeneratorClient]:
        """The replicas behind `endpoints`: host:port as given, and every address a
        `dns:///host:port` name resolves to now (a headless Service lists its ready pods)."""
        addresses = expand_endpoints(endpoints)
        with self._clients_lock:
            for address in addresses:
                if address not in self._clients:
                    self._clients[address] = GeneratorClient(role, address)
            return [self._clients[a] for a in addresses]

    @property
    def generators(self) -> dict[str, GeneratorClient]:
        current = self.clients("proposer", self.endpoints.proposers) + self.clients("solver", self.endpoints.solvers)
        return {c.address: c for c in current}

    def _halted(self) -> bool:
        return self.stop_requested.is_set() or self._halt.is_set()

    # -- one step's learning -------------------------------------------------------------------

    def _learn(self, rollout: StepRollout, dropped: int, started: float) -> None:
        seconds: dict[str, float] = {}
        self.status.update(phase=Phase.UPDATE.value)
        t, update_start = time.perf_counter(), time.time()
        lags = [self.version - s.version for s in rollout.samples]
        train_metrics = self.policy.train(rollout.samples, self.version, seed=self.spec.training.seed * 7919 + rollout.step)
        seconds[f"seconds.{Phase.UPDATE.value}"] = time.perf_counter() - t
        seconds["time.update_start"], seconds["time.update_end"] = update_start, time.time()
        self.version += 1
        self.step = rollout.step
        self._last_state = rollout.state
        self.status.update(phase=Phase.SYNC.value)
        t = time.perf_counter()
        self._publish()
        seconds[f"seconds.{Phase.SYNC.value}"] = time.perf_counter() - t
        if self.step % self.spec.training.checkpoint_every == 0 or self.step == self.total_steps:
            t = time.perf_counter()
            self._checkpoint()
            seconds[f"seconds.{Phase.CHECKPOINT.value}"] = time.perf_counter() - t
        metrics = {**rollout.metrics, **train_metrics, **seconds, "dropped_stale": float(dropped),
                   "samples_trained": float(len(rollout.samples)), "max_policy_lag": float(max(lags, default=0)),
                   "step_seconds": time.perf_counter() - started}
        self._write_metrics({"step": self.step, "policy_version": self.version, "time": time.time(), **json_safe(metrics)})
        self._append(EXAMPLES, {"step": self.step, "policy_version": self.version, "examples": rollout.examples})
        self.status.update(step=self.step, policy_version=self.version, metrics=metrics)
        log.info("step %d/%d done in %.1f s: version %d", self.step, self.total_steps, metrics["step_seconds"], self.version)

    def _write_metrics(self, record: dict[str, Any]) -> None:
        self._append(METRICS, record)

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- weights -------------------------------------------------------------------------------

    def _weights_dir(self, version: int) -> Path:
        return self.run_dir / "weights" / f"v{version:06d}"

    def _publish(self, resume: bool = False, only: list[GeneratorClient] | None = None) -> None:
        with self._publish_lock:
            folder = self._weights_dir(self.version)
            if not folder.is_dir():
                self.policy.save_weights(folder)
            for client in only if only is not None else self.generators.values():
                client.update_weights(self.version, str(folder.resolve()), resume=resume)
        for old in sorted((self.run_dir / "weights").glob("v*")):
            if old.name < self._weights_dir(self.version - 1).name:  # keep this version and the one before
                shutil.rmtree(old, ignore_errors=True)

    def _sync_generators(self, resume: bool = False) -> None:
        """Bring every replica to the learner's version: after a resume, or when a replica was
        restarted and came back with the base weights."""
        behind = [c for c in self.generators.values() if c.policy_version() != self.version]
        if behind:
            log.info("publishing version %d to %s", self.version, ", ".join(c.address for c in behind))
            self._publish(resume=True, only=behind)

    def oldest_acceptable_version(self) -> int:
        """Synchronous mode samples only from the current policy; asynchronous within the lag."""
        lag = self.spec.training.max_policy_lag if self.spec.training.mode is RunMode.ASYNC else 0
        return self.version - lag

    def republish(self, client: GeneratorClient) -> None:
        """A replica answered with weights older than allowed (it was restarted): give it the
        current ones from disk (never from the policy, which may be mid-update in async mode)."""
        with self._publish_lock:
            folder = self._weights_dir(self.version)
            log.warning("%s at %s serves an old policy; loading version %d into it", client.name, client.address, self.version)
            client.update_weights(self.version, str(folder.resolve()), resume=True)

    # -- checkpoints -----------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        if self._last_state is None:
            return
        self.status.update(phase=Phase.CHECKPOINT.value)
        path = write_checkpoint(self.policy, self.run_dir, self.step,
                                {"policy_version": self.version, "selfplay": self._last_state,
                                 "metrics": json_safe(self.status.metrics)}, keep=self.spec.training.keep_checkpoints)
        self._last_checkpointed = self.step
        self.status.update(last_checkpoint=str(path))
        log.info("checkpoint %s", path)

    def _resume(self) -> bool:
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return False
        state = read_state(checkpoint)
        self.policy.load_optimizer(checkpoint / "optimizer")
        self.selfplay.load_state_dict(state["selfplay"])
        restore_torch_rng(state["torch_rng"])
        self.step, self.version = state["step"], state["policy_version"]
        self._last_state, self._last_checkpointed = state["selfplay"], self.step
        # The lines of steps after the checkpoint will be written again.
        for name in (METRICS, EXAMPLES):
            path = self.run_dir / name
            if path.exists():
                kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= self.step]
                path.write_text("".join(line + "\n" for line in kept))
        self.status.update(step=self.step, policy_version=self.version, last_checkpoint=str(checkpoint),
                           metrics=state.get("metrics") or {})
        log.info("resumed from %s: step %d, policy version %d, buffers %s", checkpoint, self.step, self.version,
                 self.selfplay.buffers.sizes())
        return True

    def _seed(self) -> None:
        start = time.perf_counter()
        metrics = self.selfplay.seed_buffers()
        self._last_state = self.selfplay.state_dict()
        self._write_metrics({"step": 0, "policy_version": 0, "time": time.time(), "phase": Phase.SEEDING.value, **metrics})
        log.info("seeding done in %.1f s: buffers %s", time.perf_counter() - start, self.selfplay.buffers.sizes())

    # -- control ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()

    def close(self) -> None:
        for client in [*self._clients.values(), self.executor]:
            client.close()


def expand_endpoints(endpoints: list[str], wait_seconds: float = 600.0, resolve=socket.getaddrinfo,
                     sleep=time.sleep) -> list[str]:
    """host:port stays; dns:///host:port becomes one host:port per address it resolves to.

    A headless Service's name does not resolve while the pool has no ready pod (a pool
    starting, or every replica restarting): that is waited out, up to `wait_seconds`, and then
    a ConnectionError names the pool."""
    out: list[str] = []
    for endpoint in endpoints:
        if endpoint.startswith("dns:///"):
            host, _, port = endpoint[len("dns:///"):].rpartition(":")
            infos = _resolve_waiting(host, int(port), wait_seconds, resolve, sleep)
            addresses = sorted({f"[{i[4][0]}]:{port}" if ":" in i[4][0] else f"{i[4][0]}:{port}" for i in infos})
            out += [a for a in addresses if a not in out]
        elif endpoint not in out:
            out.append(endpoint)
    return out


def _resolve_waiting(host: str, port: int, wait_seconds: float, resolve, sleep) -> list:
    deadline, delay = time.monotonic() + wait_seconds, 1.0
    while True:
        try:
            infos = resolve(host, port, type=socket.SOCK_STREAM)
            if infos:
                return infos
            problem = "no addresses"
        except (socket.gaierror, UnicodeError) as exc:
            problem = str(exc)
        if time.monotonic() >= deadline:
            raise ConnectionError(f"{host}: no ready replica after {wait_seconds:.0f} s ({problem})")
        log.warning("%s does not resolve (%s): no ready replica yet; retrying in %.0f s", host, problem, delay)
        sleep(delay)
        delay = min(delay * 2, 10.0)


class _Replicas:
    """The replicas of one role: calls go round-robin, and an answer from a policy older than
    the learner allows (a replica restarted with the base weights) is thrown away and asked
    again once the replica has the current weights, so no sample of a wrong policy is used."""

    def __init__(self, role: str, endpoints: list[str], learner: Learner):
        if not endpoints:
            raise ValueError(f"at least one {role} replica is needed")
        self.role, self.endpoints, self.learner, self.next = role, endpoints, learner, 0
        self.lock = threading.Lock()

    def generate(self, prompts, n, sampling):
        with self.lock:
            clients = self.learner.clients(self.role, self.endpoints)
            client = clients[self.next % len(clients)]
            self.next += 1
        for _ in range(3):
            groups = client.generate(prompts, n, sampling)
            versions = [g.version for group in groups for g in group]
            if not versions or min(versions) >= self.learner.oldest_acceptable_version():
                return groups
            self.learner.republish(client)
        raise RuntimeError(f"{client.name} at {client.address} keeps answering with an old policy (versions {sorted(set(versions))})")


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
