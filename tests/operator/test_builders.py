"""The operator's pure side: the CRD, the builders and `azr render`, validated against
Kubernetes' own schemas (kubernetes-validate, pinned version) and the CRD's schema."""

import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from azr.spec import load_run, parse_run
from azr_operator.builders import build, service_address
from azr_operator.crd import custom_resource_definition

KUBERNETES = "1.32.0"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml")) + [EXAMPLES_DIR.parent / "deploy" / "kind" / "selfplayrun-kind.yaml"]
CPU_PRESET, GPU_PRESET = EXAMPLES_DIR / "selfplayrun-cpu.yaml", EXAMPLES_DIR / "selfplayrun-gpu.yaml"
UID = "0c6c3c52-2d4e-4b6a-9e3a-6f1b2f1a9d11"


def by_kind(objects):
    out = {}
    for o in objects:
        out.setdefault(o["kind"], []).append(o)
    return out


def named(objects, kind, suffix):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_rendered_object_is_valid_kubernetes(example):
    objects = build(load_run(example), uid=UID)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        assert obj["metadata"]["labels"]["azr.dev/run"] == load_run(example).metadata.name
        assert obj["metadata"]["ownerReferences"][0]["uid"] == UID  # deleting the run deletes it


def test_the_crd_is_valid_and_has_status_and_printer_columns():
    crd = custom_resource_definition()
    kubernetes_validate.validate(crd, KUBERNETES, strict=True)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Step", "Ready", "Age"]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any("oldSelf.model" in r["rule"] for r in rules)
    assert not any("sandbox" in r["rule"] for r in rules)  # no effect in a cluster: examples/selfplayrun-1gpu.yaml applies
    (name_rule,) = version["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert "self.metadata.name.size() <= 44" in name_rule["rule"] and "'^[a-z]" in name_rule["rule"]


def _json_schema(node):
    """OpenAPI v3 (nullable) as JSON Schema draft 4, which shares its boolean exclusiveMinimum."""
    node = {k: _json_schema(v) if isinstance(v, dict) and k != "default" else v for k, v in node.items()
            if not k.startswith("x-kubernetes")}
    if "properties" in node:
        node["properties"] = {k: _json_schema(v) for k, v in node["properties"].items()}
        node["additionalProperties"] = False  # the API server prunes unknown fields; here they are errors
    if node.pop("nullable", False):
        node["type"] = [node["type"], "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    return node


@pytest.fixture(scope="module")
def crd_validator():
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema = _json_schema(schema)
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_schema(example, crd_validator):
    crd_validator.validate(yaml.safe_load(example.read_text()))


@pytest.mark.parametrize("path,value", [(("spec", "training", "zeroStage"), 5),
                                        (("spec", "executor", "sandbox"), "docker"),
                                        (("spec", "method", "temperature"), 0.0),
                                        (("spec", "method", "proposalsPerTyp"), 4)])
def test_invalid_runs_are_rejected_by_the_crd_schema_with_the_field_named(path, value, crd_validator):
    doc = yaml.safe_load(CPU_PRESET.read_text())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = list(crd_validator.iter_errors(doc))
    assert errors
    where = [".".join(str(p) for p in e.absolute_path) + " " + e.message for e in errors]
    assert any(path[-1] in w or ".".join(path[:-1]) in w for w in where), where


def test_crd_defaults_are_the_launchers_defaults():
    """The API server fills what `azr run` would: the same spec both ways."""
    spec = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    executor = spec["properties"]["executor"]["properties"]
    defaults = parse_run({"metadata": {"name": "x"}}).spec
    assert executor["resources"]["properties"]["cpu"]["default"] == defaults.executor.resources.cpu == "2"
    assert spec["properties"]["method"]["properties"]["proposalsPerType"]["default"] == defaults.method.proposals_per_type


def test_the_executor_is_hardened_and_isolated():
    run = load_run(CPU_PRESET)
    objects = build(run)
    pod = named(objects, "Deployment", "-executor")["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor" and pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["args"][-2:] == ["--sandbox", "process"]  # inside the gVisor pod
    security = pod["containers"][0]["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    policy = named(objects, "NetworkPolicy", "-executor")["spec"]
    assert policy["egress"] == [] and "Egress" in policy["policyTypes"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {"azr.dev/run": run.metadata.name}


def test_services_and_arguments_follow_the_topology():
    gpu = load_run(GPU_PRESET)
    kinds = by_kind(build(gpu))
    assert {d["metadata"]["name"] for d in kinds["Deployment"]} == {"qwen-coder-3b-executor", "qwen-coder-3b-proposer",
                                                                   "qwen-coder-3b-solver"}
    solver = named(kinds["Deployment"], "Deployment", "-solver")
    assert solver["spec"]["replicas"] == 2
    assert solver["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    learner = kinds["StatefulSet"][0]
    args = learner["spec"]["template"]["spec"]["containers"][0]["args"]
    assert service_address(gpu, "executor") in args and learner["spec"]["replicas"] == 2
    assert all(s["spec"]["clusterIP"] == "None" for s in kinds["Service"])  # headless
    cpu = load_run(CPU_PRESET)
    assert not any(o["metadata"]["name"].endswith("-solver") for o in build(cpu))  # shareWith: proposer


def test_suspend_scales_every_workload_to_zero_and_keeps_storage():
    run = load_run(GPU_PRESET)
    suspended = copy.deepcopy(run)
    suspended.spec.suspend = True
    objects = build(suspended)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads and all(o["spec"]["replicas"] == 0 for o in workloads)
    assert any(o["kind"] == "PersistentVolumeClaim" for o in objects)


def test_azr_render_prints_the_objects_and_names_a_bad_field(tmp_path):
    out = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "render", "-f", str(GPU_PRESET)], capture_output=True, text=True,
                         check=True).stdout
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == [o["kind"] for o in build(load_run(GPU_PRESET))]
    bad = tmp_path / "bad.yaml"
    bad.write_text(GPU_PRESET.read_text().replace("zeroStage: 2", "zeroStage: 7"))
    result = subprocess.run([sys.executable, "-m", "azr_launcher.cli", "render", "-f", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "spec.training.zeroStage" in result.stderr
    crd = yaml.safe_load(subprocess.run([sys.executable, "-m", "azr_launcher.cli", "render", "-f", str(bad), "--crd"],
                                        capture_output=True, text=True, check=True).stdout)
    assert crd["kind"] == "CustomResourceDefinition"


def test_only_the_runs_pods_reach_its_services():
    run = load_run(CPU_PRESET)
    objects = build(run)
    policies = {o["metadata"]["labels"]["azr.dev/role"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {"executor", "proposer", "solver", "learner"} - ({"solver"} if run.spec.solver.share_with else set())
    same_run = {"podSelector": {"matchLabels": {"azr.dev/run": run.metadata.name}}}
    for role, policy in policies.items():
        assert policy["podSelector"]["matchLabels"]["azr.dev/role"] == role
        assert policy["ingress"][0]["from"] == [same_run]
    operator = policies["learner"]["ingress"][1]["from"][0]["podSelector"]["matchLabels"]
    assert operator == {"app.kubernetes.io/name": "azr-operator"}


def test_a_tls_secret_gives_every_service_mutual_tls_and_probes_a_plaintext_status_port():
    from azr_launcher.topology import STATUS_PORT
    from azr_operator.handlers import learner_address

    run = load_run(CPU_PRESET)
    run.spec.security.tls_secret_name = "run-tls"
    objects = build(run, uid=UID)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AZR_TLS_DIR"] == "/etc/azr-tls" and env["AZR_TLS_SERVER_NAME"] == "azr"
        assert {"name": "tls", "secret": {"secretName": "run-tls", "defaultMode": 0o440}} in pod["volumes"]
        assert pod["securityContext"]["fsGroup"] == 65532  # the key is group-readable only
        assert container["args"][container["args"].index("--status-address") + 1] == f"[::]:{STATUS_PORT}"
        assert container["readinessProbe"]["grpc"]["port"] == STATUS_PORT
        kubernetes_validate.validate(workload, KUBERNETES, strict=True)
    assert learner_address(run).endswith(f":{STATUS_PORT}")
    plain = build(load_run(CPU_PRESET))
    assert not any("--status-address" in o["spec"]["template"]["spec"]["containers"][0]["args"]
                   for o in plain if o["kind"] == "Deployment")


@pytest.mark.parametrize("run_name, ok", [("a" * 44, True), ("a" * 45, False), ("1run", False), ("run-1", True),
                                          ("run-", False)])
def test_run_names_fit_every_child_name(run_name, ok):
    from azr.spec import SpecError

    doc = {"apiVersion": "azr.dev/v1alpha1", "kind": "SelfPlayRun", "metadata": {"name": run_name}}
    if not ok:
        with pytest.raises(SpecError, match="metadata.name"):
            parse_run(doc)
        return
    objects = build(parse_run(doc), uid=UID)
    assert len(named(objects, "StatefulSet", "-learner")["metadata"]["name"]) <= 52  # controller-revision-hash label
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_a_weight_broadcast_reaches_the_learner_at_its_pod_ip_and_the_engines_on_any_port():
    run = load_run(GPU_PRESET)
    disk = build(run)
    run.spec.training.weight_sync = "nccl"
    objects = build(run)
    learner = named(objects, "StatefulSet", "-learner")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "AZR_WEIGHT_SYNC_ADDRESS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in learner["env"]
    assert not any(e["name"] == "AZR_WEIGHT_SYNC_ADDRESS"
                   for e in named(disk, "StatefulSet", "-learner")["spec"]["template"]["spec"]["containers"][0]["env"])
    same_run = [{"podSelector": {"matchLabels": {"azr.dev/run": run.metadata.name}}}]
    for role in ("proposer", "solver"):
        if run.spec.solver.share_with and role == "solver":
            continue
        assert named(objects, "NetworkPolicy", f"-{role}")["spec"]["ingress"] == [{"from": same_run}]
        assert "ports" in named(disk, "NetworkPolicy", f"-{role}")["spec"]["ingress"][0]
    assert "ports" in named(objects, "NetworkPolicy", "-executor")["spec"]["ingress"][0]
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_a_learner_of_several_ranks_can_rendezvous_and_pass_its_probes():
    from azr_launcher.topology import STATUS_PORT

    run = load_run(GPU_PRESET)
    assert run.spec.learner.ranks > 1
    objects = build(run, uid=UID)
    service = named(objects, "Service", "-learner")
    assert service["spec"]["publishNotReadyAddresses"] is True  # rank 0's DNS name resolves before it is ready
    assert named(objects, "Service", "-executor")["spec"]["publishNotReadyAddresses"] is False
    learner = named(objects, "StatefulSet", "-learner")
    assert learner["spec"]["serviceName"] == service["metadata"]["name"]
    container = learner["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["torchrun"] and f"[::]:{STATUS_PORT}" in container["args"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == STATUS_PORT  # every rank serves health there, rank 0 also Learner
    single = load_run(CPU_PRESET)
    container = named(build(single), "StatefulSet", "-learner")["spec"]["template"]["spec"]["containers"][0]
    assert "--status-address" not in container["args"] and container["readinessProbe"]["grpc"]["port"] != STATUS_PORT


def test_a_finished_run_scales_every_workload_to_zero_and_the_learner_holds():
    objects = build(load_run(GPU_PRESET), finished=True)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert workloads and all(o["spec"]["replicas"] == 0 for o in workloads)
    running = build(load_run(GPU_PRESET))
    args = named(running, "StatefulSet", "-learner")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--hold-when-done" in args  # an exit would be restarted by the StatefulSet


def test_the_executor_is_reached_round_robin_over_its_pods():
    run = load_run(GPU_PRESET)
    assert service_address(run, "executor").startswith("dns:///")


def _pods(objects):
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


def test_a_read_write_once_volume_co_locates_its_pods_and_read_write_many_does_not():
    run = load_run(GPU_PRESET)
    objects = build(run)
    assert named(objects, "PersistentVolumeClaim", "-data")["spec"]["accessModes"] == ["ReadWriteOnce"]
    for pod_name, template in _pods(objects).items():
        mounts = any(v.get("persistentVolumeClaim") for v in template["spec"]["volumes"])
        affinity = template["spec"].get("affinity", {}).get("podAffinity")
        assert bool(affinity) == mounts, pod_name  # the executor mounts nothing and goes anywhere
        if mounts:
            (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            assert term["topologyKey"] == "kubernetes.io/hostname"
            assert term["labelSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    shared = parse_run({**yaml.safe_load(GPU_PRESET.read_text()), "spec": {
        **yaml.safe_load(GPU_PRESET.read_text())["spec"], "storage": {"accessMode": "ReadWriteMany", "cacheSize": "50Gi"}}})
    objects = build(shared)
    assert named(objects, "PersistentVolumeClaim", "-data")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert not any("affinity" in t["spec"] for t in _pods(objects).values())
    caches = [v["emptyDir"]["sizeLimit"] for n, t in _pods(objects).items() for v in t["spec"]["volumes"]
              if v["name"] == "cache" and not n.endswith("-executor")]  # the executor loads no model: 2Gi
    assert caches and set(caches) == {"50Gi"}


def test_gpu_pods_roll_without_surge_and_no_pod_gets_service_links():
    objects = build(load_run(GPU_PRESET))
    proposer = named(objects, "Deployment", "-proposer")["spec"]
    assert proposer["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}  # no spare GPU needed
    assert "strategy" not in named(objects, "Deployment", "-executor")["spec"]
    assert all(t["spec"]["enableServiceLinks"] is False for t in _pods(objects).values())  # a Service `vllm` breaks vLLM


def test_spec_changes_roll_the_pods_and_scaling_does_not():
    def hashes(run):
        return {n: t["metadata"]["annotations"]["azr.dev/spec-hash"] for n, t in _pods(build(run)).items()}

    run = load_run(GPU_PRESET)
    before = hashes(run)
    scaled = copy.deepcopy(run)
    scaled.spec.solver.replicas += 1
    scaled.spec.suspend = True
    assert hashes(scaled) == before
    changed = copy.deepcopy(run)
    changed.spec.executor.timeout_seconds = 3.0
    after = hashes(changed)
    assert all(after[n] != before[n] for n in before)


def test_a_nullable_enum_takes_null_and_quantities_are_checked():
    spec = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    share = spec["properties"]["solver"]["properties"]["shareWith"]
    assert share["nullable"] and None in share["enum"]  # the API server checks a null against the enum
    assert "pattern" in spec["properties"]["executor"]["properties"]["resources"]["properties"]["memory"]
    assert "pattern" in spec["properties"]["storage"]["properties"]["size"]


def test_the_clusters_pod_defaults_reach_every_pod_and_a_run_may_name_its_runtime_class():
    from azr_operator.builders import PodDefaults

    defaults = PodDefaults(runtime_class="azr-gvisor", image_pull_secrets=("regcred",),
                           tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
                           node_selector={"pool": "azr"})
    run = load_run(GPU_PRESET)
    objects = build(run, pods=defaults)
    for template in _pods(objects).values():
        pod = template["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["nodeSelector"] == {"pool": "azr"}
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert named(objects, "Deployment", "-executor")["spec"]["template"]["spec"]["runtimeClassName"] == "azr-gvisor"
    own = copy.deepcopy(run)
    own.spec.executor.runtime_class_name = "gvisor"  # GKE Sandbox's
    pod = named(build(own, pods=defaults), "Deployment", "-executor")["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor"
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_pods_listen_on_both_families_and_the_volume_can_outlive_the_run():
    run = load_run(GPU_PRESET)
    objects = build(run, uid=UID)
    for template in _pods(objects).values():
        args = template["spec"]["containers"][0]["args"]
        assert args[args.index("--address") + 1].startswith("[::]:")  # IPv6-only clusters too; IPv4 where no IPv6
    assert named(objects, "PersistentVolumeClaim", "-data")["metadata"]["ownerReferences"][0]["uid"] == UID
    kept = copy.deepcopy(run)
    kept.spec.storage.keep_on_delete = True
    objects = build(kept, uid=UID)
    assert "ownerReferences" not in named(objects, "PersistentVolumeClaim", "-data")["metadata"]
    assert all("ownerReferences" in o["metadata"] for o in objects if o["kind"] != "PersistentVolumeClaim")


def test_roles_without_gpus_get_the_cpu_image():
    """The CUDA builds of vLLM and torch need a GPU: a role with none runs the CPU image."""
    from azr_operator.builders import Images

    images = Images(executor="x", inference="gpu-inference", learner="gpu-learner", cpu="cpu")
    cpu = {n: t["spec"]["containers"][0]["image"] for n, t in _pods(build(load_run(CPU_PRESET), images)).items()}
    gpu = {n: t["spec"]["containers"][0]["image"] for n, t in _pods(build(load_run(GPU_PRESET), images)).items()}
    assert {n.rsplit("-", 1)[1]: i for n, i in cpu.items()} == {"executor": "x", "proposer": "cpu", "learner": "cpu"}
    assert {n.rsplit("-", 1)[1]: i for n, i in gpu.items()} == {"executor": "x", "proposer": "gpu-inference",
                                                                 "solver": "gpu-inference", "learner": "gpu-learner"}


def test_a_run_with_both_domains_reaches_the_learner_and_a_misspelt_domain_is_refused(crd_validator):
    """The domains are method settings: the learner reads them from the run's spec ConfigMap."""
    run = load_run(EXAMPLES_DIR / "selfplayrun-cpu-domains.yaml")
    config = named(build(run, uid=UID), "ConfigMap", "-spec")
    method = yaml.safe_load(config["data"]["spec.yaml"])["spec"]["method"]
    assert method["domains"] == ["codeIO", "bugRepair"] and method["bugRepair"] == {"share": 0.5, "maxEditLines": 3}
    doc = yaml.safe_load((EXAMPLES_DIR / "selfplayrun-cpu-domains.yaml").read_text())
    doc["spec"]["method"]["domains"] = ["codeIO", "bugrepair"]
    with pytest.raises(jsonschema.ValidationError, match="bugrepair"):
        crd_validator.validate(doc)
