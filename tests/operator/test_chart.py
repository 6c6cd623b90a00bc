"""The Helm chart with the real helm binary (installed by install.sh into .tools/bin)."""

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from azr_operator.crd import custom_resource_definition

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "azr-operator"
HELM = ROOT / ".tools" / "bin" / "helm"
KUBERNETES = "1.32.0"


@pytest.fixture(scope="module")
def helm():
    assert HELM.exists(), "helm is missing: ./install.sh puts it in .tools/bin"
    return str(HELM)


def template(helm, *args: str) -> list[dict]:
    out = subprocess.run([helm, "template", "azr", str(CHART), "--namespace", "azr-system", "--include-crds", *args],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_chart_lints_strictly(helm):
    result = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rendered_object_is_valid_kubernetes(helm):
    docs = template(helm)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment", "RuntimeClass",
                     "ServiceAccount"]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_operator_deployment_is_single_and_hardened(helm):
    deployment = next(d for d in template(helm, "--set", "watchNamespaces={team-a,team-b}") if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    container = spec["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["--namespace=team-a", "--namespace=team-b"]
    assert container["securityContext"]["readOnlyRootFilesystem"] and not container["securityContext"]["allowPrivilegeEscalation"]


def test_rbac_is_least_privilege(helm):
    role = next(d for d in template(helm) if d["kind"] == "ClusterRole")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources and "pods/exec" not in resources and "*" not in resources
    assert all("*" not in rule["verbs"] for rule in role["rules"])
    assert "selfplayruns/status" in resources


def _allowed(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_rbac_allows_every_call_the_operator_makes(helm):
    """The calls of `azr_operator.handlers` for the objects `builders.build` makes: apply is a
    patch (and a create where a server cannot apply-create), pruning lists and deletes, the
    RuntimeClass check gets; Kopf watches runs, patches their status and lists CRDs; owner
    references with blockOwnerDeletion need update on the runs' finalizers."""
    from azr.spec import load_run
    from azr_operator.builders import build

    allowed = _allowed(next(d for d in template(helm) if d["kind"] == "ClusterRole"))
    plural = {"NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets"}
    needed = {("azr.dev", "selfplayruns", v) for v in ("get", "list", "watch", "patch")}
    needed |= {("azr.dev", "selfplayruns/status", "patch"), ("azr.dev", "selfplayruns/finalizers", "update"),
               ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
               ("apiextensions.k8s.io", "customresourcedefinitions", "watch"), ("node.k8s.io", "runtimeclasses", "get"),
               ("", "events", "create")}
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        for obj in build(load_run(example)):
            group = obj["apiVersion"].rpartition("/")[0]
            resource = plural.get(obj["kind"], obj["kind"].lower() + "s")
            verbs = ("get", "create", "patch") + (("list", "delete") if obj["kind"] != "PersistentVolumeClaim" else ())
            needed |= {(group, resource, verb) for verb in verbs}
    assert needed - allowed == set()


def test_run_pod_values_reach_the_operator_and_the_runtime_class_can_be_scheduled(helm, monkeypatch):
    import json

    from azr_operator.handlers import images_from_env, pod_defaults_from_env

    docs = template(helm, "--set", "runPods.imagePullSecrets[0]=regcred", "--set", "runPods.imagePullPolicy=Always",
                    "--set", "runPods.nodeSelector.pool=azr", "--set", "gvisor.runtimeClass.nodeSelector.runsc=yes")
    runtime_class = next(d for d in docs if d["kind"] == "RuntimeClass")
    assert runtime_class["metadata"]["name"] == "azr-gvisor"  # not GKE Sandbox's built-in `gvisor`
    assert runtime_class["scheduling"] == {"nodeSelector": {"runsc": "yes"}}
    kubernetes_validate.validate(runtime_class, KUBERNETES, strict=True)
    operator = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert json.loads(env["AZR_RUN_PODS"])["imagePullSecrets"] == ["regcred"]
    for name in ("AZR_RUN_PODS", "AZR_RUNTIME_CLASS"):
        monkeypatch.setenv(name, env[name])
    pods = pod_defaults_from_env()
    assert (pods.runtime_class, pods.image_pull_secrets, pods.node_selector) == ("azr-gvisor", ("regcred",), {"pool": "azr"})
    assert images_from_env().pull_policy == "Always"
    assert "scheduling" not in next(d for d in template(helm) if d["kind"] == "RuntimeClass")


def test_the_runtime_class_is_optional(helm):
    assert not any(d["kind"] == "RuntimeClass" for d in template(helm, "--set", "gvisor.runtimeClass.create=false"))


def test_the_values_schema_rejects_a_bad_value(helm):
    result = subprocess.run([helm, "template", "azr", str(CHART), "--set", "image.pullPolicy=Sometimes"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "pullPolicy" in result.stderr


def test_the_chart_crd_is_the_generated_one():
    """charts/azr-operator/crds is generated: `azr render --crd > charts/azr-operator/crds/selfplayruns.azr.dev.yaml`."""
    shipped = yaml.safe_load((CHART / "crds" / "selfplayruns.azr.dev.yaml").read_text())
    assert shipped == custom_resource_definition(), "stale CRD in the chart: regenerate it with azr render --crd"
