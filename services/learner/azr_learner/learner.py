"""The learner's driver: the self-play loop, in the order below, over its named parts.

    resume from the newest checkpoint, or run the seeding pass
    for each step:
        rollout   = propose, validate, Monte-Carlo, insert, solve, check, rewards, TRR++ (azr.selfplay)
        update    = one PPO-clip pass on DeepSpeed (azr_learner.policy)
        sync      = write the weights, UpdateWeights on every proposer and solver replica
                    (or broadcast them first, `weightSync: nccl`)
        checkpoint every `checkpointEvery` steps, at the end, and when asked to stop
        one line of metrics.jsonl

Synchronous mode runs these in order (docs/method.md, part 2). Asynchronous mode rolls out step
t+1 in a second thread while step t trains; the rollout of step t may start only once version
t - 1 - maxPolicyLag is published to every replica, and any sample more than maxPolicyLag versions
behind the policy being updated is dropped and counted (`dropped_stale`). Either way the TRR++
advantages are computed once, over the samples that are trained.

Parts: the policy (`azr_learner.policy`), the replicas (`azr_learner.replicas`), the weight
publisher (`azr_learner.publisher`), checkpoints (`azr_learner.checkpoint`) and the run's
metrics and examples (`azr_learner.record`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azr.metrics import Phase, json_safe
from azr.selfplay import Interrupted, SelfPlay, StepRollout, assign_advantages, drop_stale
from azr.spec import RunMode, SelfPlayRun, WeightSync
from azr_learner.broadcast import WeightBroadcaster
from azr_learner.checkpoint import latest_checkpoint, read_state, restore_torch_rng, write_checkpoint
from azr_learner.clients import ExecutorClient
from azr_learner.publisher import WeightPublisher
from azr_learner.record import RunRecord
from azr_learner.replicas import Clients, ReplicaPool

log = logging.getLogger(__name__)


@dataclass
class Endpoints:
    proposers: list[str]
    solvers: list[str]
    executor: str


@dataclass
class Status:
    """What GetStatus reports; written by the loop, read by the RPC threads through `snapshot`."""

    step: int = 0
    total_steps: int = 0
    policy_version: int = 0
    phase: str = Phase.STARTING.value
    last_checkpoint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def snapshot(self) -> Status:
        """A consistent copy, its metrics included."""
        with self.lock:
            return dataclasses.replace(self, metrics=dict(self.metrics), lock=threading.Lock())


class Learner:
    def __init__(self, run: SelfPlayRun, run_dir: Path, endpoints: Endpoints, policy, steps: int | None = None):
        self.run, self.spec = run, run.spec
        self.run_dir = Path(run_dir)
        self.policy = policy
        self.total_steps = steps or self.spec.training.steps
        self.status = Status(total_steps=self.total_steps)
        self.stop_requested = threading.Event()
        self._halt = threading.Event()  # the training thread ended early: the rollout thread stops too
        self.done = threading.Event()
        self.record = RunRecord(self.run_dir)
        self.clients = Clients()
        self.executor = ExecutorClient(endpoints.executor)
        pools = [ReplicaPool(role, addresses, self.clients, self.oldest_acceptable_version,
                             lambda client: self.publisher.reload(client, self.version))
                 for role, addresses in (("proposer", endpoints.proposers), ("solver", endpoints.solvers))]
        broadcaster = WeightBroadcaster(policy.named_weights) if self.spec.training.weight_sync is WeightSync.NCCL else None
        self.publisher = WeightPublisher(self.run_dir, policy.save_weights, lambda: [c for p in pools for c in p.replicas()],
                                         broadcaster)
        training = self.spec.training
        self.selfplay = SelfPlay(self.spec.method, *pools, self.executor, seed=training.seed,
                                 engine_logprobs=training.uses_engine_logprobs, on_phase=lambda p: self.status.update(phase=p),
                                 should_stop=self._halted)
        # Samples at most this many versions behind the policy being updated are trained on.
        self.max_lag = training.max_policy_lag if training.mode is RunMode.ASYNC else 0
        self.version = 0
        self.published_version = 0  # the version every replica serves: `version` once its publish is done
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
            self.publisher.bring_all_up_to(self.version)
            self.published_version = self.version
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
            self.publisher.bring_all_up_to(self.version)
            start = time.perf_counter()
            try:
                rollout = self.selfplay.collect(self.step + 1)
            except Interrupted:
                return
            self._learn(rollout, started=start)

    def _fit_async(self) -> None:
        lag = self.spec.training.max_policy_lag
        ready: queue.Queue[StepRollout | BaseException | None] = queue.Queue(maxsize=1)
        version_changed = threading.Condition()

        def produce() -> None:
            try:
                for step in range(self.step + 1, self.total_steps + 1):
                    # The policy lag bound, before any sample of `step` exists. It waits for the
                    # version to be published, not only trained: a rollout started in between
                    # would sample from the replicas' older weights, and those samples be dropped.
                    with version_changed:
                        version_changed.wait_for(lambda s=step: self.published_version >= s - 1 - lag or self._halted())
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
                self._learn(item, started=start)
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

    def _halted(self) -> bool:
        return self.stop_requested.is_set() or self._halt.is_set()

    def oldest_acceptable_version(self) -> int:
        """Synchronous mode samples only from the current policy; asynchronous within the lag."""
        return self.version - self.max_lag

    # -- one step's learning -------------------------------------------------------------------

    def _learn(self, rollout: StepRollout, started: float) -> None:
        samples, dropped = drop_stale(rollout.samples, self.version, self.max_lag)
        if dropped:
            log.warning("step %d: dropped %d samples more than %d versions old", rollout.step, dropped, self.max_lag)
        assign_advantages(samples, self.spec.method.advantage_weighting)  # TRR++, once, over what is trained
        seconds: dict[str, float] = {}
        self.status.update(phase=Phase.UPDATE.value)
        t, update_start = time.perf_counter(), time.time()
        lags = [self.version - s.version for s in samples]
        train_metrics = self.policy.train(samples, self.version, seed=self.spec.training.seed * 7919 + rollout.step)
        seconds[f"seconds.{Phase.UPDATE.value}"] = time.perf_counter() - t
        seconds["time.update_start"], seconds["time.update_end"] = update_start, time.time()
        self.version += 1
        self.step = rollout.step
        self._last_state = rollout.state
        self.status.update(phase=Phase.SYNC.value)
        t, broadcasts = time.perf_counter(), self.publisher.broadcasts
        self.publisher.publish(self.version)
        self.published_version = self.version
        seconds[f"seconds.{Phase.SYNC.value}"] = time.perf_counter() - t
        seconds["sync_broadcast"] = float(self.publisher.broadcasts > broadcasts)  # 0: loaded from disk
        if self.step % self.spec.training.checkpoint_every == 0 or self.step == self.total_steps:
            t = time.perf_counter()
            self._checkpoint()
            seconds[f"seconds.{Phase.CHECKPOINT.value}"] = time.perf_counter() - t
        metrics = {**rollout.metrics, **train_metrics, **seconds, "dropped_stale": float(dropped),
                   "samples_trained": float(len(samples)), "max_policy_lag": float(max(lags, default=0)),
                   "step_seconds": time.perf_counter() - started}
        self.record.metrics({"step": self.step, "policy_version": self.version, "time": time.time(), **json_safe(metrics)})
        self.record.examples({"step": self.step, "policy_version": self.version, "examples": rollout.examples})
        self.status.update(step=self.step, policy_version=self.version, metrics=metrics)
        log.info("step %d/%d done in %.1f s: version %d", self.step, self.total_steps, metrics["step_seconds"], self.version)

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
        self.record.truncate_after(self.step)
        self.status.update(step=self.step, policy_version=self.version, last_checkpoint=str(checkpoint),
                           metrics=state.get("metrics") or {})
        log.info("resumed from %s: step %d, policy version %d, buffers %s", checkpoint, self.step, self.version,
                 self.selfplay.buffers.sizes())
        return True

    def _seed(self) -> None:
        start = time.perf_counter()
        metrics = self.selfplay.seed_buffers()
        self._last_state = self.selfplay.state_dict()
        self.record.metrics({"step": 0, "policy_version": 0, "time": time.time(), "phase": Phase.SEEDING.value, **metrics})
        log.info("seeding done in %.1f s: buffers %s", time.perf_counter() - start, self.selfplay.buffers.sizes())

    # -- control ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()

    def close(self) -> None:
        self.clients.close()
        self.executor.close()


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
