"""The real Kopf operator against kmock's Kubernetes API emulator, over real HTTP.

The emulator stores objects and streams watch events; it runs no controllers, so readiness is
written into the children's status by the test, and deletion is checked through the owner
references that the API server's garbage collector follows.
"""

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNS = "azr.dev/v1alpha1/selfplayruns"
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
CHILD_PLURALS = ("deployments", "statefulsets", "services", "configmaps", "persistentvolumeclaims", "networkpolicies",
                 "poddisruptionbudgets", "serviceaccounts")


def api_server_class():
    """kmock's emulator plus what a real API server does and Kopf relies on: every write gets a
    new resourceVersion (Kopf's patches test it), and a created object gets a uid and a
    creation timestamp (owner references need the uid)."""
    import copy
    import datetime
    import itertools
    import uuid

    import kmock

    class ApiServer(kmock.KubernetesEmulator):
        _revisions = itertools.count(1)
        creates: list[tuple[str, str]]  # (plural, name) of every create request, to find duplicates
        applied_creates: list[tuple[str, str]]  # (plural, name) of every object a server-side apply created
        hold: set[str]  # creates (and creating applies) of these plurals wait until `released` (a request in flight to kill)
        refuse: dict[str, str]  # name -> message: writes of that object are refused 403, as by a quota or an admission webhook
        held: threading.Event
        released: threading.Event

        async def _handle(self, request):
            name = request.name or (request.data.get("metadata", {}).get("name") if isinstance(request.data, dict) else None)
            if request.action in (kmock.action.CREATE, kmock.action.UPDATE) and name in self.refuse:
                raise kmock.KubernetesError(status=403, reason="Forbidden", message=self.refuse[name])
            if (request.resource is not None and request.action == kmock.action.UPDATE and request.name
                    and "apply-patch" in request.headers.get("Content-Type", "") and isinstance(request.data, dict)):
                # Server-side apply of a missing object creates it, as a real API server does;
                # the apply then goes on as a patch of what it created.
                key = (request.resource, request.namespace, request.name)
                async with self._lock:
                    missing = key not in self._objects or self._objects[key].deleted
                if missing and request.resource.plural in self.hold:
                    self.creates.append((request.resource.plural, request.name))
                    self.held.set()
                    while not self.released.is_set():
                        await asyncio.sleep(0.05)
                async with self._lock:
                    if key not in self._objects or self._objects[key].deleted:
                        self.applied_creates.append((request.resource.plural, request.name))
                        created = copy.deepcopy(request.data)
                        meta = created.setdefault("metadata", {})
                        meta.update(uid=str(uuid.uuid4()), generation=1, resourceVersion=str(next(self._revisions)),
                                    creationTimestamp=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
                        if key in self._objects:
                            self._objects[key].create(created)
                        else:
                            self._objects[key] = created
                        await self._buses[request.resource].put({"type": "ADDED", "object": self._objects[key].last.raw})
            if request.resource is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self.creates.append((request.resource.plural, request.data.get("metadata", {}).get("name")))
                if request.resource.plural in self.hold:
                    self.held.set()
                    while not self.released.is_set():
                        await asyncio.sleep(0.05)
            if request.resource is not None and request.action in (kmock.action.CREATE, kmock.action.UPDATE):
                revision = str(next(self._revisions))
                data = request.data
                if request.action == kmock.action.CREATE and isinstance(data, dict):
                    meta = data.setdefault("metadata", {})
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault("generation", 1)
                    meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
                    meta["resourceVersion"] = revision
                elif isinstance(data, dict):
                    data.setdefault("metadata", {})["resourceVersion"] = revision
                elif isinstance(data, list):
                    data.append({"op": "add", "path": "/metadata/resourceVersion", "value": revision})
            return await super()._handle(request)

    return ApiServer


class Cluster:
    """The API server emulator and (unless `operator=False`) the operator, in one event loop
    on a background thread."""

    def __init__(self, kubeconfig: Path, operator: bool = True):
        import kmock

        self.kmock = kmock
        self.operator = operator
        self.emulator = api_server_class()()
        self.emulator.creates, self.emulator.applied_creates, self.emulator.hold = [], [], set()
        self.emulator.refuse = {}
        self.emulator.held, self.emulator.released = threading.Event(), threading.Event()
        self.emulator.resources.load_bundled()
        self.emulator.resources[RUNS] = kmock.ResourceInfo(kind="SelfPlayRun", namespaced=True, subresources={"status"},
                                                           verbs=VERBS)
        self.kubeconfig = kubeconfig
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_flag: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        import kopf

        import azr_operator.handlers  # noqa: F401 - registers the handlers

        # Inside the emulator's own context, API errors are answered as Kubernetes answers them
        # (404 Status objects), not as 500s; expected 404s are then dropped at exit.
        async with self.kmock.Server(self.emulator) as server, self._emulator_context():
            self.kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": str(server.url)}}],
                "users": [{"name": "test", "user": {"token": "test"}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "test"}}]}))
            self.stop_flag = asyncio.Event()
            if not self.operator:
                self.ready.set()
                await self.stop_flag.wait()
                return
            tasks = await kopf.spawn_tasks(standalone=True, clusterwide=True, stop_flag=self.stop_flag)
            self.ready.set()
            with contextlib.suppress(asyncio.CancelledError):  # the stop flag cancels the tasks
                await kopf.run_tasks(tasks, ignored=set())

    def _emulator_context(self):
        @contextlib.asynccontextmanager
        async def context():
            async with self.emulator:
                try:
                    yield
                finally:
                    self.emulator._errors[-1][:] = [e for e in self.emulator._errors[-1]
                                                    if getattr(e, "status", 500) >= 500]

        return context()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(30), "the operator did not start"

    def stop(self) -> None:
        if self.stop_flag is not None:
            self.loop.call_soon_threadsafe(self.stop_flag.set)
        self.thread.join(timeout=30)

    def objects(self, plural: str, namespace: str = "default") -> dict[str, dict]:
        out = {}
        for (resource, ns, name), obj in list(self.emulator.objects.items()):
            if resource.plural == plural and ns == namespace and not obj.deleted:
                out[name] = dict(obj.raw)
        return out

    def run(self, name: str, namespace: str = "default") -> dict:
        return dict(self.emulator.objects[RUNS, namespace, name].raw)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    os.environ["KUBECONFIG"] = str(kubeconfig)
    os.environ["AZR_OPERATOR_INTERVAL"] = "1"
    c = Cluster(kubeconfig)
    c.start()
    yield c
    c.stop()


def kubectl_apply(cluster, doc: dict) -> None:
    """Create or update a SelfPlayRun through the emulator's HTTP API, as kubectl would."""
    import lightkube
    from lightkube.generic_resource import create_namespaced_resource

    resource = create_namespaced_resource("azr.dev", "v1alpha1", "SelfPlayRun", "selfplayruns")
    client = lightkube.Client(config=lightkube.KubeConfig.from_file(cluster.kubeconfig), field_manager="test")
    body = resource(doc)
    try:
        client.create(body, namespace="default")
    except lightkube.ApiError:
        client.patch(resource, doc["metadata"]["name"], {"spec": doc["spec"], "metadata": {"generation": 2}},
                     namespace="default")


def example(path: str, name: str) -> dict:
    doc = yaml.safe_load((ROOT / path).read_text())
    doc["metadata"]["name"] = name
    doc["metadata"]["namespace"] = "default"
    return doc


def test_create_gives_children_and_status(cluster):
    kubectl_apply(cluster, example("examples/selfplayrun-gpu.yaml", "gpu-run"))
    wait_for(lambda: "gpu-run-learner" in cluster.objects("statefulsets"), what="the run's objects")  # applied last
    deployments = cluster.objects("deployments")
    assert {"gpu-run-executor", "gpu-run-proposer", "gpu-run-solver"} <= set(deployments)
    assert {"gpu-run-executor"} <= set(cluster.objects("networkpolicies"))
    # Every child came from a server-side apply (which a real API server turns into a create),
    # never a POST: fields that later drop out of the manifest are then removed.
    assert ("deployments", "gpu-run-executor") in cluster.emulator.applied_creates
    assert not [c for c in cluster.emulator.creates if c[1] and c[1].startswith("gpu-run-") and c not in cluster.emulator.applied_creates]
    owner = deployments["gpu-run-executor"]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "SelfPlayRun" and owner["name"] == "gpu-run"  # deleting the run deletes its children
    status = wait_for(lambda: cluster.run("gpu-run").get("status", {}).get("phase") and cluster.run("gpu-run")["status"],
                      what="a status")
    # No RuntimeClass in this cluster: a clear condition, not silence.
    assert status["phase"] == "Pending"
    executor = next(c for c in status["conditions"] if c["type"] == "ExecutorReady")
    assert executor["reason"] == "RuntimeClassMissing" and "gvisor" in executor["message"]


def test_an_invalid_spec_fails_with_the_field_named(cluster):
    doc = example("examples/selfplayrun-cpu.yaml", "bad-run")
    doc["spec"]["training"]["zeroStage"] = 9
    kubectl_apply(cluster, doc)
    status = wait_for(lambda: cluster.run("bad-run").get("status", {}).get("phase") and cluster.run("bad-run")["status"],
                      what="a status")
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert "spec.training.zeroStage" in failed["message"]
    assert not any(n.startswith("bad-run-") for n in cluster.objects("deployments"))


def test_a_child_the_api_server_refuses_fails_the_run_with_its_reason(cluster):
    message = 'exceeded quota: compute, requested: requests.cpu=8, limited: requests.cpu=4'
    cluster.emulator.refuse["quota-run-executor"] = message
    kubectl_apply(cluster, example("examples/selfplayrun-cpu.yaml", "quota-run"))
    status = wait_for(lambda: cluster.run("quota-run").get("status", {}).get("phase") and cluster.run("quota-run")["status"],
                      what="a status")
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ApplyFailed" and failed["status"] == "True"
    assert failed["message"].startswith("Deployment quota-run-executor: HTTP 403") and "exceeded quota" in failed["message"]


def patch_run(cluster, name: str, spec: dict, generation: int) -> None:
    import lightkube
    from lightkube.generic_resource import create_namespaced_resource

    resource = create_namespaced_resource("azr.dev", "v1alpha1", "SelfPlayRun", "selfplayruns")
    client = lightkube.Client(config=lightkube.KubeConfig.from_file(cluster.kubeconfig), field_manager="test")
    # A real API server bumps metadata.generation on a spec change; the emulator is told to.
    client.patch(resource, name, {"spec": spec, "metadata": {"generation": generation}}, namespace="default")


def test_a_spec_change_updates_and_prunes_children(cluster):
    wait_for(lambda: "gpu-run-solver" in cluster.objects("deployments"), what="the solver")
    patch_run(cluster, "gpu-run", {"solver": {"replicas": 3}}, 2)
    wait_for(lambda: cluster.objects("deployments")["gpu-run-solver"]["spec"]["replicas"] == 3, what="3 solver replicas")
    patch_run(cluster, "gpu-run", {"solver": {"shareWith": "proposer"}}, 3)
    wait_for(lambda: "gpu-run-solver" not in cluster.objects("deployments") and "gpu-run-solver" not in cluster.objects("services")
             and "gpu-run-solver" not in cluster.objects("poddisruptionbudgets"), what="the solver pruned")
    assert "gpu-run-proposer" in cluster.objects("deployments")
    wait_for(lambda: cluster.run("gpu-run")["status"]["observedGeneration"] == 3, what="observedGeneration 3")


def test_suspend_scales_to_zero_keeps_storage_and_resume_restores(cluster):
    patch_run(cluster, "gpu-run", {"suspend": True}, 4)
    wait_for(lambda: all(d["spec"]["replicas"] == 0 for n, d in cluster.objects("deployments").items() if n.startswith("gpu-run"))
             and cluster.objects("statefulsets")["gpu-run-learner"]["spec"]["replicas"] == 0, what="zero replicas")
    assert "gpu-run-data" in cluster.objects("persistentvolumeclaims")
    wait_for(lambda: cluster.run("gpu-run")["status"]["phase"] == "Suspended", what="phase Suspended")
    patch_run(cluster, "gpu-run", {"suspend": False}, 5)
    wait_for(lambda: cluster.objects("statefulsets")["gpu-run-learner"]["spec"]["replicas"] == 2
             and cluster.objects("deployments")["gpu-run-proposer"]["spec"]["replicas"] == 1, what="replicas back")


@pytest.fixture
def learner_service(monkeypatch):
    """A real Learner gRPC service (reporting a fixed status) where the operator looks for rank 0."""
    import threading as th
    from concurrent import futures

    import grpc

    import azr_operator.handlers as handlers
    from azr_contracts.v1 import learner_pb2_grpc
    from azr_learner.learner import Status
    from azr_learner.server import LearnerService

    class Reporting:
        status = Status(step=3, total_steps=10, policy_version=3, phase="update",
                        last_checkpoint="/data/checkpoints/step-000003", metrics={"reward.deduction.solve": 0.25})
        done = th.Event()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    learner_pb2_grpc.add_LearnerServicer_to_server(LearnerService(Reporting()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setattr(handlers, "learner_address", lambda run: f"127.0.0.1:{port}")
    yield
    server.stop(0)


def test_ready_children_and_a_runtime_class_make_the_run_running(cluster, learner_service):
    import lightkube
    from lightkube.resources.node_v1 import RuntimeClass

    client = lightkube.Client(config=lightkube.KubeConfig.from_file(cluster.kubeconfig), field_manager="test")
    client.create(RuntimeClass(metadata={"name": "gvisor"}, handler="runsc"))
    for plural in ("deployments", "statefulsets"):
        for name, obj in cluster.objects(plural).items():
            if name.startswith("gpu-run"):
                cluster.emulator.objects[f"apps/v1/{plural}", "default", name].patch(
                    {"status": {"replicas": obj["spec"]["replicas"], "readyReplicas": obj["spec"]["replicas"]}})
    status = wait_for(lambda: cluster.run("gpu-run")["status"]["phase"] == "Running" and cluster.run("gpu-run")["status"],
                      what="phase Running")
    assert status["ready"] == "3/3" and {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    # Progress comes from the learner's GetStatus.
    progress = wait_for(lambda: cluster.run("gpu-run")["status"].get("progress", {}).get("step") == 3
                        and cluster.run("gpu-run")["status"]["progress"], what="progress from the learner")
    assert progress["policyVersion"] == 3 and progress["lastCheckpoint"].endswith("step-000003")
    assert progress["metrics"]["reward.deduction.solve"] == 0.25


def serve_learner_status(status):
    """A real Learner gRPC service reporting `status`; returns (server, address)."""
    import threading as th
    from concurrent import futures

    import grpc

    from azr_contracts.v1 import learner_pb2_grpc
    from azr_learner.server import LearnerService

    class Reporting:
        done = th.Event()

    Reporting.status = status
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    learner_pb2_grpc.add_LearnerServicer_to_server(LearnerService(Reporting()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def test_a_finished_run_is_complete_scales_to_zero_and_stays_so(cluster, monkeypatch):
    import azr_operator.handlers as handlers
    from azr_learner.learner import Status

    def workloads():
        return [o for plural in ("deployments", "statefulsets") for n, o in cluster.objects(plural).items()
                if n.startswith("done-run-")]

    server, address = serve_learner_status(Status(step=4, total_steps=4, policy_version=4, phase="done"))
    monkeypatch.setattr(handlers, "learner_address", lambda run: address if run.metadata.name == "done-run" else "127.0.0.1:1")
    try:
        kubectl_apply(cluster, example("examples/selfplayrun-cpu.yaml", "done-run"))
        wait_for(lambda: cluster.run("done-run").get("status", {}).get("phase") == "Complete", what="phase Complete")
        wait_for(lambda: workloads() and all(o["spec"]["replicas"] == 0 for o in workloads()), what="zero replicas")
    finally:
        server.stop(0)  # scaled down: no learner answers any more
    time.sleep(3)  # several reconciles (every second here)
    status = cluster.run("done-run")["status"]
    assert status["phase"] == "Complete" and status["progress"]["step"] == 4
    assert all(o["spec"]["replicas"] == 0 for o in workloads())
    patch_run(cluster, "done-run", {"training": {"steps": 8}}, 2)  # more steps: the run goes on
    wait_for(lambda: cluster.objects("statefulsets")["done-run-learner"]["spec"]["replicas"] == 1, what="the learner back")
    wait_for(lambda: cluster.run("done-run")["status"]["phase"] != "Complete", what="a phase after Complete")


def test_every_child_is_owned_by_its_run_for_deletion(cluster):
    uid = cluster.run("gpu-run")["metadata"]["uid"]
    children = [o for plural in ("deployments", "statefulsets", "services", "configmaps", "persistentvolumeclaims",
                                 "networkpolicies", "poddisruptionbudgets", "serviceaccounts")
                for name, o in cluster.objects(plural).items() if name.startswith("gpu-run-")]
    assert len(children) >= 12
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == uid for o in children)


def test_the_objects_the_operator_applied_are_valid_kubernetes(cluster):
    import kubernetes_validate

    applied = [o for plural in ("deployments", "statefulsets", "services", "configmaps", "persistentvolumeclaims",
                                "networkpolicies", "poddisruptionbudgets", "serviceaccounts")
               for name, o in cluster.objects(plural).items() if name.startswith("gpu-run-")]
    assert applied
    for obj in applied:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)


class OperatorProcess:
    """The operator as the chart runs it (`kopf run ... -m azr_operator.handlers`), a process
    of its own that a test can kill -9."""

    def __init__(self, kubeconfig: Path, log: Path):
        import subprocess
        import sys

        kopf = Path(sys.executable).with_name("kopf")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AZR_OPERATOR_INTERVAL": "1"}
        with open(log, "a") as out:
            self.proc = subprocess.Popen([str(kopf), "run", "--standalone", "--all-namespaces", "-m", "azr_operator.handlers"],
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_an_operator_killed_mid_reconcile_is_replaced_without_duplicates(tmp_path):
    """The first operator dies while the learner's StatefulSet is being created (the children
    before it exist, the status is not written); the next one finishes the job: every child
    exactly once, none created twice, and a status."""
    from azr.spec import parse_run
    from azr_operator.builders import build

    cluster = Cluster(tmp_path / "kubeconfig", operator=False)
    cluster.emulator.hold = {"statefulsets"}
    cluster.start()
    log = tmp_path / "operator.log"
    try:
        first = OperatorProcess(cluster.kubeconfig, log)
        doc = example("examples/selfplayrun-gpu.yaml", "restart-run")
        kubectl_apply(cluster, doc)
        assert cluster.emulator.held.wait(60), log.read_text()[-3000:]
        assert "restart-run-executor" in cluster.objects("deployments")  # mid-reconcile: some children are there
        first.kill()
        cluster.emulator.released.set()  # the dead operator's request finishes (or not) on its own
        assert not cluster.run("restart-run").get("status", {}).get("phase")
        before = {(plural, name): o["metadata"]["uid"] for plural in CHILD_PLURALS
                  for name, o in cluster.objects(plural).items() if name.startswith("restart-run-")}
        assert len(before) >= 5

        second = OperatorProcess(cluster.kubeconfig, log)
        try:
            wait_for(lambda: cluster.run("restart-run").get("status", {}).get("phase"), timeout=60, what="a status")
        finally:
            second.kill()
        expected = build(parse_run(doc))
        for manifest in expected:
            kind = manifest["kind"].lower()
            plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
            assert manifest["metadata"]["name"] in cluster.objects(plural), manifest["kind"]
        after = {(plural, name): o["metadata"]["uid"] for plural in CHILD_PLURALS
                 for name, o in cluster.objects(plural).items() if name.startswith("restart-run-")}
        assert len(after) == len(expected)
        assert all(after[key] == uid for key, uid in before.items())  # re-applied in place, not re-created
        created = [c for c in cluster.emulator.creates if c[1] and c[1].startswith("restart-run-")]
        # Only the create in flight when the first operator died was sent twice (its write never landed).
        assert {c for c in created if created.count(c) > 1} <= {("statefulsets", "restart-run-learner")}
    finally:
        cluster.stop()
