"""Pure builders: a SelfPlayRun in, the Kubernetes objects of its services out.

No client, no cluster: `azr render` prints what these return, the operator applies it, and the
tests validate it against Kubernetes' own schemas. Which services run, with which arguments,
comes from `azr_launcher.topology`, the same plan `azr run` starts as local processes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from azr.spec import API_GROUP, API_VERSION, KIND, AccessMode, SelfPlayRun, WeightSync
from azr_launcher.topology import PORTS, STATUS_PORT, plan, roles

SPEC_MOUNT = "/etc/azr"
TLS_MOUNT = "/etc/azr-tls"
OPERATOR_LABELS = {"app.kubernetes.io/name": "azr-operator"}  # the chart's operator pod
DATA_MOUNT = "/data"
DATA_ROLES = ("proposer", "solver", "learner")  # the pods that mount the run's volume
CACHE_MOUNT = "/cache"
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Images:
    """One image per kind of service (docker/ holds their Dockerfiles)."""

    executor: str = "ghcr.io/azr-dev/azr-executor:0.1.0"
    inference: str = "ghcr.io/azr-dev/azr-inference:0.1.0"
    learner: str = "ghcr.io/azr-dev/azr-learner:0.1.0"
    cpu: str = "ghcr.io/azr-dev/azr-cpu:0.1.0"  # vLLM for CPUs, CPU torch and DeepSpeed: any role without GPUs
    pull_policy: str = "IfNotPresent"

    def for_role(self, role: str, gpus: int = 1) -> str:
        """A proposer, solver or learner with no GPU gets the CPU image: the CUDA builds of vLLM
        and torch do not run without one."""
        if role != "executor" and gpus == 0:
            return self.cpu
        return {"executor": self.executor, "proposer": self.inference, "solver": self.inference, "learner": self.learner}[role]


@dataclass(frozen=True)
class PodDefaults:
    """What the cluster, not the run, decides for every pod of every run (the chart's values
    `gvisor.runtimeClass.name` and `runPods`)."""

    runtime_class: str = "gvisor"
    image_pull_secrets: tuple[str, ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)

    def runtime_class_for(self, run: SelfPlayRun) -> str:
        return run.spec.executor.runtime_class_name or self.runtime_class

    def apply(self, pod: dict[str, Any]) -> dict[str, Any]:
        if self.image_pull_secrets:
            pod["imagePullSecrets"] = [{"name": n} for n in self.image_pull_secrets]
        if self.tolerations:
            pod["tolerations"] = [dict(t) for t in self.tolerations]
        if self.node_selector:
            pod["nodeSelector"] = dict(self.node_selector)
        return pod


def name(run: SelfPlayRun, role: str) -> str:
    return f"{run.metadata.name}-{role}"


def labels(run: SelfPlayRun, role: str | None = None) -> dict[str, str]:
    out = {f"{API_GROUP}/run": run.metadata.name, "app.kubernetes.io/name": "azr",
           "app.kubernetes.io/instance": run.metadata.name, "app.kubernetes.io/managed-by": "azr-operator"}
    if role:
        out[f"{API_GROUP}/role"] = role
        out["app.kubernetes.io/component"] = role
    return out


def _meta(run: SelfPlayRun, object_name: str, role: str | None = None, uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": object_name, "labels": labels(run, role)}
    if run.metadata.namespace:
        meta["namespace"] = run.metadata.namespace
    if uid:  # children are owned by the run: deleting it deletes them
        meta["ownerReferences"] = [{"apiVersion": API_VERSION, "kind": KIND, "name": run.metadata.name, "uid": uid,
                                    "controller": True, "blockOwnerDeletion": True}]
    return meta


def service_address(run: SelfPlayRun, role: str, replica: int = 0) -> str:
    """Where a role listens in the cluster: its headless Service, whose DNS name lists every
    ready pod, as a `dns:///` target. The learner expands a generator pool's before every step
    (UpdateWeights goes to each replica); the executor's is one gRPC channel balancing
    round-robin over its pods (a plain name would pin every call to one pod: pick_first)."""
    namespace = run.metadata.namespace or "default"
    address = f"{name(run, role)}.{namespace}.svc:{PORTS[role]}"
    return f"dns:///{address}" if role in ("proposer", "solver", "executor") else address


def _resources(r, gpus_key: str = "nvidia.com/gpu") -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": r.cpu, "memory": r.memory}
    if r.gpus:
        limits[gpus_key] = r.gpus
    return {"requests": {"cpu": r.cpu, "memory": r.memory}, "limits": limits}


def _probe(port: int, period: int = 10, failures: int = 3) -> dict[str, Any]:
    return {"grpc": {"port": port}, "periodSeconds": period, "failureThreshold": failures}


def _container(run: SelfPlayRun, role: str, service_plan, images: Images, resources, *, extra_args: tuple[str, ...] = (),
               mounts: tuple[dict[str, Any], ...] = (), writable_root: bool = False) -> dict[str, Any]:
    """A role's container, hardened: non-root, no privilege escalation, no capabilities, the
    runtime's seccomp profile, a read-only root unless the role writes caches there."""
    port = PORTS[role]
    container = {
        "name": role,
        "image": images.for_role(role, resources.gpus),
        "imagePullPolicy": images.pull_policy,
        "command": ["azr"],
        # The wildcard of both families: dual-stack where the node has IPv6, IPv4 where it has
        # not (gRPC falls back), so IPv6-only clusters work too. NetworkPolicies guard the port.
        "args": service_plan.command(f"[::]:{port}"),
        "ports": [{"name": "grpc", "containerPort": port}],
        "env": [{"name": "AZR_CACHE_DIR", "value": CACHE_MOUNT}, {"name": "HOME", "value": CACHE_MOUNT}],
        "resources": _resources(resources),
        "volumeMounts": [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
                         {"name": "cache", "mountPath": CACHE_MOUNT}],
    }
    tls = run.spec.security
    # Probes go to the plaintext status port under mutual TLS (kubelet's gRPC probes cannot
    # speak it), and for a learner of several ranks: only rank 0 serves the Learner service,
    # while every rank answers health on the status port.
    multi_rank = role == "learner" and run.spec.learner.ranks > 1
    if tls.tls_secret_name or multi_rank:
        container["args"] += ["--status-address", f"[::]:{STATUS_PORT}"]
        container["ports"].append({"name": "status", "containerPort": STATUS_PORT})
        port = STATUS_PORT
    if tls.tls_secret_name:
        container["env"] += [{"name": "AZR_TLS_DIR", "value": TLS_MOUNT},
                             {"name": "AZR_TLS_SERVER_NAME", "value": tls.tls_server_name}]
        container["volumeMounts"].append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
    container["args"] += list(extra_args)
    container["volumeMounts"] += [dict(m) for m in mounts]
    # Model loading (vLLM: minutes) is the start-up probe's; readiness and liveness follow.
    container["startupProbe"] = _probe(port, period=10, failures=90)
    container["readinessProbe"] = _probe(port)
    container["livenessProbe"] = _probe(port, period=20, failures=6)
    container["securityContext"] = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": not writable_root,
                                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    return container


def _volumes(run: SelfPlayRun, cache_limit: str | None = None) -> list[dict[str, Any]]:
    volumes = [{"name": "spec", "configMap": {"name": name(run, "spec")}},
               {"name": "cache", "emptyDir": {"sizeLimit": cache_limit or run.spec.storage.cache_size}}]
    if run.spec.security.tls_secret_name:  # readable by the pods' group (fsGroup) only
        volumes.append({"name": "tls", "secret": {"secretName": run.spec.security.tls_secret_name, "defaultMode": 0o440}})
    return volumes


def _service(run: SelfPlayRun, role: str, uid: str | None) -> Manifest:
    """A headless Service. The learner's governs its StatefulSet and publishes its pods before
    they are ready: a rank's pod DNS name (`<run>-learner-0.<run>-learner`, torchrun's
    rendezvous) must resolve before the rendezvous that makes rank 0 ready."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(run, name(run, role), role, uid),
            "spec": {"clusterIP": "None", "selector": labels(run, role), "publishNotReadyAddresses": role == "learner",
                     "ports": [{"name": "grpc", "port": PORTS[role], "targetPort": "grpc"}]}}


def _pdb(run: SelfPlayRun, role: str, uid: str | None) -> Manifest:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(run, name(run, role), role, uid),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(run, role)}}}


def build(run: SelfPlayRun, images: Images = Images(), uid: str | None = None, finished: bool = False,
          pods: PodDefaults = PodDefaults()) -> list[Manifest]:
    """Every child object of the run, in apply order. `spec.suspend`, and a run whose learner
    has done its last step (`finished`), scale every workload to zero (the GPUs go back) and
    keep the ConfigMap, the volume and the Services."""
    plans = {p.role: p for p in plan(run, f"{SPEC_MOUNT}/spec.yaml", DATA_MOUNT, lambda role, k: service_address(run, role, k))}
    scaled_down = run.spec.suspend or finished
    objects = [_service_account(run, uid), _spec_config_map(run, uid), _data_claim(run, uid),
               *_executor_objects(run, plans["executor"], images, uid, pods, scaled_down)]
    for role in ("proposer", "solver"):
        if role in roles(run):
            objects += _generator_objects(run, role, plans[role], images, uid, pods, scaled_down)
    return objects + _learner_objects(run, plans["learner"], images, uid, pods, scaled_down)


def _service_account(run: SelfPlayRun, uid: str | None) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(run, name(run, "workload"), None, uid),
            "automountServiceAccountToken": False}


def _spec_config_map(run: SelfPlayRun, uid: str | None) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(run, name(run, "spec"), None, uid),
            "data": {"spec.yaml": run.model_copy(update={"status": None}).to_yaml()}}


def _data_claim(run: SelfPlayRun, uid: str | None) -> Manifest:
    """The run's volume: checkpoints, weights, metrics. `storage.keepOnDelete`: no owner
    reference, so deleting the run keeps its checkpoints."""
    storage = run.spec.storage
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(run, name(run, "data"), "learner", None if storage.keep_on_delete else uid),
            "spec": {"accessModes": [storage.access_mode.value], "resources": {"requests": {"storage": storage.size}},
                     **({"storageClassName": storage.storage_class_name} if storage.storage_class_name else {})}}


def _executor_objects(run: SelfPlayRun, service_plan, images: Images, uid: str | None, pods: PodDefaults,
                      scaled_down: bool) -> list[Manifest]:
    """gVisor, non-root, read-only, no token, no egress. The pod itself is the gVisor sandbox
    (its RuntimeClass); inside it the workers are rlimited non-root processes: `runsc do`
    cannot nest, and the pod has no root to chroot with."""
    spec = run.spec
    container = _container(run, "executor", service_plan, images, spec.executor.resources, extra_args=("--sandbox", "process"),
                           mounts=({"name": "tmp", "mountPath": "/tmp"},))
    pod = {"runtimeClassName": pods.runtime_class_for(run), "automountServiceAccountToken": False,
           "securityContext": {"fsGroup": 65532}, "serviceAccountName": name(run, "workload"), "enableServiceLinks": False,
           "volumes": _volumes(run, "2Gi") + [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}]}
    return [_deployment(run, "executor", 0 if scaled_down else spec.executor.replicas, container, uid, pods, pod),
            _service(run, "executor", uid), _network_policy(run, "executor", uid), _pdb(run, "executor", uid)]


def _generator_objects(run: SelfPlayRun, role: str, service_plan, images: Images, uid: str | None, pods: PodDefaults,
                       scaled_down: bool) -> list[Manifest]:
    """A proposer or solver pool: GPU inference, the run's volume read-only (published weights)."""
    generator = run.spec.proposer if role == "proposer" else run.spec.solver
    container = _container(run, role, service_plan, images, generator.resources, writable_root=True,  # vLLM, torch compile caches
                           mounts=({"name": "shm", "mountPath": "/dev/shm"},
                                   {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}))
    pod = {"automountServiceAccountToken": False, "serviceAccountName": name(run, "workload"),
           "securityContext": {"fsGroup": 65532}, "enableServiceLinks": False, **_data_affinity(run),
           "volumes": _volumes(run) + [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                                       {"name": "data", "persistentVolumeClaim": {"claimName": name(run, "data"), "readOnly": True}}]}
    return [_deployment(run, role, 0 if scaled_down else generator.replicas, container, uid, pods, pod),
            _service(run, role, uid), _network_policy(run, role, uid), _pdb(run, role, uid)]


def _learner_objects(run: SelfPlayRun, service_plan, images: Images, uid: str | None, pods: PodDefaults,
                     scaled_down: bool) -> list[Manifest]:
    """A StatefulSet of ranks; rank 0 (pod -0) is the rendezvous and drives the loop."""
    ranks = run.spec.learner.ranks
    container = _container(run, "learner", service_plan, images, run.spec.learner.resources,
                           extra_args=("--hold-when-done",),  # an exit would be restarted; the operator scales down instead
                           mounts=({"name": "data", "mountPath": DATA_MOUNT}, {"name": "shm", "mountPath": "/dev/shm"}),
                           writable_root=True)
    if run.spec.training.weight_sync is WeightSync.NCCL:
        # Rank 0 hosts the broadcast's rendezvous: the engines reach it at the pod's IP.
        container["env"].append({"name": "AZR_WEIGHT_SYNC_ADDRESS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    if ranks > 1:
        container = _under_torchrun(run, container)
    pod = {"automountServiceAccountToken": False, "serviceAccountName": name(run, "workload"), "enableServiceLinks": False,
           **_data_affinity(run),
           "terminationGracePeriodSeconds": 600,  # SIGTERM: finish the update, write a checkpoint
           "securityContext": {"fsGroup": 65532}, "containers": [container],
           "volumes": _volumes(run) + [{"name": "data", "persistentVolumeClaim": {"claimName": name(run, "data")}},
                                       {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]}
    stateful_set = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(run, name(run, "learner"), "learner", uid),
                    "spec": {"replicas": 0 if scaled_down else ranks, "serviceName": name(run, "learner"),
                             "podManagementPolicy": "Parallel", "selector": {"matchLabels": labels(run, "learner")},
                             "template": {"metadata": _pod_meta(run, "learner"), "spec": pods.apply(pod)}}}
    return [stateful_set, _service(run, "learner", uid), _network_policy(run, "learner", uid)]


def _under_torchrun(run: SelfPlayRun, container: dict[str, Any]) -> dict[str, Any]:
    """The same `azr serve learner` as one torchrun rank per pod, its rank the pod's index."""
    learner = name(run, "learner")
    return {**container, "command": ["torchrun"],
            "args": [f"--nnodes={run.spec.learner.ranks}", "--nproc-per-node=1", "--node-rank=$(RANK)",
                     f"--master-addr={learner}-0.{learner}", "--master-port=29500", "-m", "azr_launcher.cli", *container["args"]],
            "env": [*container["env"], {"name": "RANK", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}}]}


def _deployment(run: SelfPlayRun, role: str, replicas: int, container: dict[str, Any], uid: str | None,
                pods: PodDefaults, pod: dict[str, Any]) -> Manifest:
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": labels(run, role)},
                            "template": {"metadata": _pod_meta(run, role),
                                         "spec": pods.apply({**pod, "containers": [container]})}}
    if set(container["resources"]["limits"]) - {"cpu", "memory"}:
        # A surge pod would need a spare GPU: replace one pod at a time instead.
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(run, name(run, role), role, uid), "spec": spec}


def spec_hash(run: SelfPlayRun) -> str:
    """A digest of what the pods read from the spec. Scaling (`replicas`) and `suspend` are left
    out, so they change replica counts only; any other change rolls every pod, since each one
    reads the whole spec file at start."""
    spec = run.spec.model_dump(mode="json", by_alias=True)
    spec.pop("suspend", None)
    for role in ("proposer", "solver", "executor"):
        spec[role].pop("replicas", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _pod_meta(run: SelfPlayRun, role: str) -> dict[str, Any]:
    pod_labels = labels(run, role)
    if role in DATA_ROLES:
        pod_labels[f"{API_GROUP}/data"] = "mounted"
    return {"labels": pod_labels, "annotations": {f"{API_GROUP}/spec-hash": spec_hash(run)}}


def _data_affinity(run: SelfPlayRun) -> dict[str, Any]:
    """On a ReadWriteOnce volume, the pods that mount it share its node (the first one placed
    matches its own term, so it may go anywhere; the others follow it)."""
    if run.spec.storage.access_mode is not AccessMode.READ_WRITE_ONCE:
        return {}
    term = {"labelSelector": {"matchLabels": {f"{API_GROUP}/run": run.metadata.name, f"{API_GROUP}/data": "mounted"}},
            "topologyKey": "kubernetes.io/hostname"}
    return {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}


def _network_policy(run: SelfPlayRun, role: str, uid: str | None) -> Manifest:
    """Only the run's own pods reach a role's pods (the learner's ranks talk on every port, and
    so do the engines under `weightSync: nccl`);
    the operator may also read the learner's progress. The executor has no egress at all."""
    same_run = {"podSelector": {"matchLabels": {f"{API_GROUP}/run": run.metadata.name}}}
    ports = [{"port": PORTS[role], "protocol": "TCP"}, {"port": STATUS_PORT, "protocol": "TCP"}]
    ingress: list[dict[str, Any]] = [{"from": [same_run], "ports": ports}]
    if role in ("proposer", "solver") and run.spec.training.weight_sync is WeightSync.NCCL:
        # A weight broadcast's group connects its ranks to each other on ports they pick.
        ingress = [{"from": [same_run]}]
    if role == "learner":
        ingress = [{"from": [same_run]},
                   {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR_LABELS}}], "ports": ports}]
    policy: Manifest = {"podSelector": {"matchLabels": labels(run, role)}, "policyTypes": ["Ingress"], "ingress": ingress}
    if role == "executor":
        policy |= {"policyTypes": ["Ingress", "Egress"], "egress": []}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(run, name(run, role), role, uid),
            "spec": policy}
