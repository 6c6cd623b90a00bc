"""The service images, built here from this checkout and run as the operator renders their pods.

- the executor image runs the rendered executor container under gVisor (runsc): non-root,
  read-only root, every capability dropped, no privilege escalation; it turns SERVING, validates,
  kills a looping program at its time limit, keeps a program inside its sandbox, and answers a
  bad request INVALID_ARGUMENT;
- the operator image imports its handlers and runs Kopf's command line, as the chart's
  Deployment starts it.
"""

import json
import subprocess
import uuid

import pytest
from azr_operator import builders

from azr.spec import load_run
from tests.images.conftest import ROOT, RUNTIME, build_image, inspect

pytestmark = pytest.mark.slow


def _rendered_container(role: str) -> tuple[dict, dict]:
    run = load_run(ROOT / "examples" / "selfplayrun-cpu.yaml")
    [deployment] = [o for o in builders.build(run) if o["kind"] == "Deployment" and o["metadata"]["name"] == builders.name(run, role)]
    pod = deployment["spec"]["template"]["spec"]
    return pod["containers"][0], run.model_copy(update={"status": None}).to_yaml()


def _docker_run_flags(container: dict) -> list[str]:
    """The container's securityContext and emptyDir volumes as `docker run` flags."""
    sc = container["securityContext"]
    flags = ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}"]
    if sc["readOnlyRootFilesystem"]:
        flags.append("--read-only")
    flags += [f"--cap-drop={cap}" for cap in sc["capabilities"]["drop"]]
    if not sc["allowPrivilegeEscalation"]:
        flags += ["--security-opt", "no-new-privileges"]
    for env in container["env"]:
        flags += ["-e", f"{env['name']}={env['value']}"]
    for mount in container["volumeMounts"]:
        if mount["name"] in ("cache", "tmp"):  # emptyDirs
            flags += ["--tmpfs", f"{mount['mountPath']}:uid={sc['runAsUser']},gid={sc['runAsGroup']},mode=0755"]
    return flags


@pytest.fixture(scope="module")
def executor_image(docker, base_image):
    return build_image(docker, base_image, "executor")


def test_the_executor_image_serves_under_gvisor_as_its_pod_is_rendered(docker, executor_image, tmp_path):
    container, spec_yaml = _rendered_container("executor")
    (tmp_path / "spec.yaml").write_text(spec_yaml)
    (tmp_path / "spec.yaml").chmod(0o644)  # a ConfigMap volume's files are world-readable
    tmp_path.chmod(0o755)
    config = inspect(docker, executor_image)["Config"]
    assert config["User"] == "65532:65532" and config["Entrypoint"] == container["command"]
    name = f"azr-executor-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [*docker, "run", "-d", "--name", name, f"--runtime={RUNTIME}", "--network=none",
         *_docker_run_flags(container), "-v", f"{tmp_path}:/etc/azr:ro", executor_image, *container["args"]],
        capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        probe = subprocess.run([*docker, "exec", "-i", name, "python3", "-"], input=(ROOT / "tests/images/probe_executor.py").read_text(),
                               capture_output=True, text=True, timeout=300)
        logs = subprocess.run([*docker, "logs", name], capture_output=True, text=True).stderr
        assert probe.returncode == 0, probe.stderr + logs
        report = json.loads(probe.stdout.strip().splitlines()[-1])
        kernel = subprocess.run([*docker, "exec", name, "dmesg"], capture_output=True, text=True).stdout
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True)
    assert "gVisor" in kernel, kernel  # runsc's kernel, not the host's
    assert (report["uid"], report["gid"]) == (65532, 65532)
    assert int(report["cap_eff"], 16) == 0 and report["no_new_privs"] == 1
    assert report["root_read_only"] and report["cache_writable"]
    assert report["health"] == "SERVING", logs
    assert report["validate"]["ok"] == [True, ["42"], "ERROR_KIND_UNSPECIFIED"]
    assert report["validate"]["loops"][0] is False and report["validate"]["loops"][2] == "ERROR_KIND_TIMEOUT"
    assert report["validate"]["escapes"][0] is False  # `import os` never runs: the static checks refuse it
    assert report["empty_request"][0] == "INVALID_ARGUMENT" and "at least one item" in report["empty_request"][1]
    assert "serving on port 50051 (sandbox process" in logs


def test_the_operator_image_starts_kopf_on_the_handlers(docker, base_image):
    image = build_image(docker, base_image, "operator")
    config = inspect(docker, image)["Config"]
    assert config["Entrypoint"][:2] == ["kopf", "run"] and "azr_operator.handlers" in config["Entrypoint"]
    assert config["User"] == "65532:65532"
    imported = subprocess.run(
        [*docker, "run", "--rm", f"--runtime={RUNTIME}", "--network=none", "--read-only", "--cap-drop=ALL",
         "--entrypoint", "python3", image, "-c",
         "import azr_operator.handlers as h, kopf; from azr_operator import builders; "
         "print(kopf.__version__ if hasattr(kopf, '__version__') else 'kopf', builders.Images().executor)"],
        capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    assert "azr-executor" in imported.stdout
    help_text = subprocess.run([*docker, "run", "--rm", f"--runtime={RUNTIME}", "--network=none", "--entrypoint", "kopf",
                                image, "run", "--help"], capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0 and "--standalone" in help_text.stdout, help_text.stderr
