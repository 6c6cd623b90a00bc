"""A SelfPlayRun's status as a pure function of what the operator observed.

    Failed     the spec does not validate (the message names the field), or the API server
               refused a child (reason ApplyFailed: the object, the HTTP code and the server's
               message, e.g. a quota or an admission webhook); retried on the next timer
    Suspended  spec.suspend: every workload at zero, storage kept
    Pending    the executor's RuntimeClass is missing: nothing can run safely
    Starting   children exist, not all ready
    Running    every role ready
    Complete   the learner reported its last step done; every workload is then scaled to zero,
               and the phase holds until the spec changes (a higher training.steps continues)

Conditions (Ready, ProposerReady, SolverReady, ExecutorReady, LearnerReady, Suspended,
Complete, Failed) keep their lastTransitionTime while their status does not change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from azr.metrics import Phase


class RunPhase(str, enum.Enum):
    """status.phase of a SelfPlayRun (the CRD's enum is made from this)."""

    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    COMPLETE = "Complete"
    FAILED = "Failed"

ROLE_CONDITIONS = {"proposer": "ProposerReady", "solver": "SolverReady", "executor": "ExecutorReady", "learner": "LearnerReady"}


@dataclass
class Observed:
    generation: int
    spec_error: str | None = None
    apply_error: str | None = None
    suspended: bool = False
    runtime_class: str = "gvisor"
    runtime_class_exists: bool = True
    replicas: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (desired, ready)
    learner: dict[str, Any] | None = None  # the learner's GetStatus: step, totalSteps, policyVersion, phase, ...
    finished: bool = False  # this generation's learner reported its last step done (now or earlier)


def learner_done(progress: dict[str, Any] | None) -> bool:
    """Whether a learner's GetStatus says the run's last step is done."""
    return bool(progress) and progress.get("phase") == Phase.DONE.value and progress.get("step", 0) >= progress.get("totalSteps", 1)


def finished_before(previous: dict[str, Any] | None, generation: int) -> bool:
    """Complete is kept across reconciles of the same generation: once the workloads are
    scaled down, no learner is left to ask."""
    previous = previous or {}
    return previous.get("phase") == RunPhase.COMPLETE.value and previous.get("observedGeneration") == generation


def _condition(kind: str, ok: bool, reason: str, message: str, previous: dict[str, dict], now: str, generation: int) -> dict:
    status = "True" if ok else "False"
    before = previous.get(kind)
    changed = before is None or before.get("status") != status
    return {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": generation,
            "lastTransitionTime": now if changed else before.get("lastTransitionTime", now)}


def compute_status(observed: Observed, previous: dict[str, Any] | None, now: str) -> dict[str, Any]:
    previous = previous or {}
    old = {c["type"]: c for c in previous.get("conditions", []) if "type" in c}
    g = observed.generation

    def cond(kind, ok, reason, message=""):
        return _condition(kind, ok, reason, message, old, now, g)

    if observed.spec_error or observed.apply_error:
        reason = "InvalidSpec" if observed.spec_error else "ApplyFailed"
        message = observed.spec_error or observed.apply_error
        return {"observedGeneration": g, "phase": RunPhase.FAILED.value, "ready": "0/0",
                "conditions": [cond("Failed", True, reason, message), cond("Ready", False, reason)],
                "progress": previous.get("progress", {})}

    conditions = [cond(ROLE_CONDITIONS[role], *_role_readiness(observed, role)) for role in observed.replicas]
    ready_roles = sum(c["status"] == "True" for c in conditions)
    all_ready = bool(observed.replicas) and ready_roles == len(observed.replicas) and observed.runtime_class_exists
    complete = observed.finished or learner_done(observed.learner or {})
    phase = _phase(observed, complete, all_ready)
    conditions += [cond("Ready", all_ready and not observed.suspended, phase.value),
                   cond("Suspended", observed.suspended, "SpecSuspend" if observed.suspended else "Active"),
                   cond("Complete", complete, "LastStepDone" if complete else "Training"),
                   cond("Failed", False, "Healthy")]
    return {"observedGeneration": g, "phase": phase.value, "conditions": conditions,
            "replicas": _replicas(observed, previous),
            "ready": f"{ready_roles}/{len(observed.replicas)}", "progress": _progress(observed, previous)}


def _role_readiness(observed: Observed, role: str) -> tuple[bool, str, str]:
    """(ready, reason, message) of one role's condition."""
    desired, ready = observed.replicas[role]
    ok = desired > 0 and ready >= desired
    reason = "Ready" if ok else ("ScaledToZero" if desired == 0 else "Waiting")
    message = f"{ready}/{desired} ready"
    if role == "executor" and not observed.runtime_class_exists:
        ok, reason = False, "RuntimeClassMissing"
        message = (f"RuntimeClass {observed.runtime_class!r} does not exist: install gVisor and the RuntimeClass "
                   "(helm value gvisor.runtimeClass.create), or set spec.executor.runtimeClassName")
    return ok, reason, message


def _phase(observed: Observed, complete: bool, all_ready: bool) -> RunPhase:
    if observed.suspended:
        return RunPhase.SUSPENDED
    if complete:
        return RunPhase.COMPLETE
    if not observed.runtime_class_exists:
        return RunPhase.PENDING
    return RunPhase.RUNNING if all_ready else RunPhase.STARTING


def _progress(observed: Observed, previous: dict[str, Any]) -> dict[str, Any]:
    progress = dict(previous.get("progress", {}))
    learner = observed.learner or {}
    progress.update({k: learner[k] for k in ("step", "totalSteps", "policyVersion", "phase", "lastCheckpoint", "metrics")
                     if k in learner})
    return progress


def _replicas(observed: Observed, previous: dict[str, Any]) -> dict[str, Any]:
    replicas: dict[str, Any] = {role: {"desired": d, "ready": r} for role, (d, r) in observed.replicas.items()}
    # The status is written as a merge patch: a role that is gone (the solver once it shares the
    # proposer's pool) is removed with a null, or its last counts would stay.
    return replicas | {role: None for role in previous.get("replicas") or {} if role not in replicas}
