"""The Kopf handlers: one idempotent reconcile on create, update and resume, and a timer.

    kopf run --standalone --all-namespaces -m azr_operator.handlers

Each reconcile validates the spec, reads the learner's progress (a finished run scales its
workloads to zero), builds the run's objects (`builders.build`), applies them with server-side
apply (creates included), deletes children the spec no longer asks for (the solver when it starts sharing the
proposer's pool), reads the workloads' readiness and the RuntimeClass, and writes the status
(`status.compute_status`). The handlers stay thin.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from typing import Any

import kopf

from azr.spec import API_GROUP, SpecError, parse_run
from azr_operator.builders import Images, PodDefaults, build, name
from azr_operator.crd import PLURAL, VERSION
from azr_operator.status import Observed, compute_status, finished_before, learner_done

FIELD_MANAGER = "azr-operator"
TIMER_SECONDS = float(os.environ.get("AZR_OPERATOR_INTERVAL", "30"))


def _run_pods() -> dict[str, Any]:
    """The chart's `runPods` value (AZR_RUN_PODS is its JSON)."""
    return json.loads(os.environ.get("AZR_RUN_PODS") or "{}")


def images_from_env() -> Images:
    default = Images()
    policy = _run_pods().get("imagePullPolicy")
    return Images(executor=os.environ.get("AZR_EXECUTOR_IMAGE", default.executor),
                  inference=os.environ.get("AZR_INFERENCE_IMAGE", default.inference),
                  learner=os.environ.get("AZR_LEARNER_IMAGE", default.learner),
                  cpu=os.environ.get("AZR_CPU_IMAGE", default.cpu),
                  pull_policy=policy or default.pull_policy)


def pod_defaults_from_env() -> PodDefaults:
    """The chart's `gvisor.runtimeClass.name` and `runPods` values."""
    run_pods = _run_pods()
    return PodDefaults(runtime_class=os.environ.get("AZR_RUNTIME_CLASS") or PodDefaults.runtime_class,
                       image_pull_secrets=tuple(s["name"] if isinstance(s, dict) else s
                                                for s in run_pods.get("imagePullSecrets") or ()),
                       tolerations=tuple(run_pods.get("tolerations") or ()),
                       node_selector=dict(run_pods.get("nodeSelector") or {}))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=API_GROUP)
    settings.posting.level = 30  # warnings and errors become Kubernetes events


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _client():
    import lightkube

    return lightkube.AsyncClient(field_manager=FIELD_MANAGER)


def _status_code(exc: Exception) -> int | None:
    """The HTTP status of a failed API call (lightkube's ApiError, or the HTTP error under it)."""
    status = getattr(exc, "status", None)
    if status is not None and getattr(status, "code", None) is not None:
        return int(status.code)
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _refusal(exc: Exception, manifest: dict[str, Any]) -> str | None:
    """What the status says when the API server refuses a child for good (4xx: invalid, forbidden,
    over quota, denied by a webhook); None for errors worth a retry (5xx, 409, 429, no answer)."""
    code = _status_code(exc)
    if code is None or code >= 500 or code in (409, 429):
        return None
    message = getattr(getattr(exc, "status", None), "message", None)
    if not message:  # the HTTP error itself: the Status object is its body
        try:
            message = exc.response.json().get("message")  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - no body, or not JSON
            message = None
    return f"{manifest['kind']} {manifest['metadata']['name']}: HTTP {code}: {message or exc}"


async def _apply(client, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, which creates a missing object too: the operator then owns exactly
    the fields of its last manifest, and a field that drops out of it (TLS turned off, a GPU
    limit gone) is removed. A create would own its fields as an update, which later applies
    never remove. An API server without apply-create (an emulator) gets a create instead."""
    from lightkube import codecs
    from lightkube.types import PatchType

    obj = codecs.from_dict(manifest)
    kind, object_name = type(obj), manifest["metadata"]["name"]
    namespace = manifest["metadata"].get("namespace")
    try:
        applied = await client.patch(kind, object_name, manifest, namespace=namespace, patch_type=PatchType.APPLY, force=True)
    except Exception as exc:
        if _status_code(exc) != 404:
            raise
        applied = await client.create(obj, namespace=namespace)
    return applied.to_dict() if hasattr(applied, "to_dict") else dict(applied)


async def _prune(client, run, namespace: str, keep: set[tuple[str, str]]) -> None:
    from lightkube.resources.apps_v1 import Deployment, StatefulSet
    from lightkube.resources.core_v1 import ConfigMap, Service, ServiceAccount
    from lightkube.resources.networking_v1 import NetworkPolicy
    from lightkube.resources.policy_v1 import PodDisruptionBudget

    selector = {f"{API_GROUP}/run": run.metadata.name}
    for kind in (Deployment, StatefulSet, Service, NetworkPolicy, PodDisruptionBudget, ConfigMap, ServiceAccount):
        async for item in client.list(kind, namespace=namespace, labels=selector):
            mine = (item.metadata.labels or {}).get(f"{API_GROUP}/run") == run.metadata.name  # whatever the server filtered
            if mine and (kind.__name__, item.metadata.name) not in keep:
                try:
                    await client.delete(kind, item.metadata.name, namespace=namespace)
                except Exception as exc:
                    if _status_code(exc) != 404:
                        raise


async def _runtime_class_exists(client, runtime_class: str) -> bool:
    from lightkube.resources.node_v1 import RuntimeClass

    try:
        await client.get(RuntimeClass, runtime_class)
        return True
    except Exception as exc:
        if _status_code(exc) == 404:
            return False
        raise


def learner_address(run) -> str:
    """Rank 0 of the learner StatefulSet, which serves the Learner service: its main port, or
    under TLS its plaintext status port (read-only progress; the operator holds no certificate)."""
    from azr_launcher.topology import PORTS, STATUS_PORT

    namespace = run.metadata.namespace or "default"
    port = STATUS_PORT if run.spec.security.tls_secret_name else PORTS["learner"]
    return f"{name(run, 'learner')}-0.{name(run, 'learner')}.{namespace}.svc:{port}"


def _learner_progress(run) -> dict[str, Any] | None:
    """The learner's GetStatus, if it answers within a second."""
    import grpc

    from azr_contracts.v1 import learner_pb2, learner_pb2_grpc

    try:
        with grpc.insecure_channel(learner_address(run)) as channel:
            s = learner_pb2_grpc.LearnerStub(channel).GetStatus(learner_pb2.LearnerStatusRequest(), timeout=1.0)
    except grpc.RpcError:
        return None
    return {"step": s.step, "totalSteps": s.total_steps, "policyVersion": s.policy_version, "phase": s.phase,
            "lastCheckpoint": s.last_checkpoint, "metrics": dict(s.metrics)}


async def reconcile(body: kopf.Body, client=None, learner_progress=_learner_progress) -> dict[str, Any]:
    """Bring the run's children to what its spec asks for; return the new status."""
    meta = body["metadata"]
    namespace = meta.get("namespace") or "default"
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    previous = dict(body.get("status") or {})
    generation = int(meta.get("generation", 1))
    data = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {"name": meta["name"], "namespace": namespace}, "spec": dict(body.get("spec") or {})}
    try:
        run = parse_run(data, f"SelfPlayRun {namespace}/{meta['name']}")
    except SpecError as exc:
        return compute_status(Observed(generation, spec_error=str(exc)), previous, now)
    own_client = client is None
    client = client or _client()
    try:
        return await _reconcile(run, meta, namespace, generation, previous, now, client, learner_progress)
    finally:
        if own_client:
            await client.close()


async def _reconcile(run, meta, namespace: str, generation: int, previous: dict[str, Any], now: str, client,
                     learner_progress) -> dict[str, Any]:
    # Progress first: a learner that reports its last step done frees the run's GPUs in this
    # same reconcile, and a finished run is not asked again until its spec changes.
    finished = finished_before(previous, generation)
    learner = None if run.spec.suspend or finished else await asyncio.to_thread(learner_progress, run)
    finished = finished or learner_done(learner)
    pods = pod_defaults_from_env()
    objects = build(run, images_from_env(), uid=meta.get("uid"), finished=finished, pods=pods)
    applied = []
    for manifest in objects:
        try:
            applied.append(await _apply(client, manifest))
        except Exception as exc:
            refusal = _refusal(exc, manifest)
            if refusal is None:
                raise  # the server's trouble, or a conflict: Kopf retries with backoff
            return compute_status(Observed(generation, apply_error=refusal), previous, now)
    await _prune(client, run, namespace, {(o["kind"], o["metadata"]["name"]) for o in objects})
    replicas: dict[str, tuple[int, int]] = {}
    for obj in applied:
        if obj.get("kind") in ("Deployment", "StatefulSet"):
            role = obj["metadata"]["labels"][f"{API_GROUP}/role"]
            replicas[role] = (int(obj["spec"].get("replicas") or 0), int((obj.get("status") or {}).get("readyReplicas") or 0))
    runtime_class = pods.runtime_class_for(run)
    observed = Observed(generation, suspended=run.spec.suspend, runtime_class=runtime_class,
                        runtime_class_exists=await _runtime_class_exists(client, runtime_class),
                        replicas=replicas, learner=learner, finished=finished)
    return compute_status(observed, previous, now)


@kopf.on.create(API_GROUP, VERSION, PLURAL)
@kopf.on.update(API_GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(API_GROUP, VERSION, PLURAL)
async def reconcile_run(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(await reconcile(body))


@kopf.timer(API_GROUP, VERSION, PLURAL, interval=TIMER_SECONDS, initial_delay=TIMER_SECONDS)
async def refresh(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Readiness and progress change without spec changes: re-read them (and repair drift)."""
    patch.status.update(await reconcile(body))
