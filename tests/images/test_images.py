"""The service images, built here from this checkout and run as the operator renders their pods.

- the executor image runs the rendered executor container under gVisor (runsc): non-root,
  read-only root, every capability dropped, no privilege escalation; it turns SERVING, validates,
  kills a looping program at its time limit, keeps a program inside its sandbox, and answers a
  bad request INVALID_ARGUMENT;
- the operator image imports its handlers and runs Kopf's command line, as the chart's
  Deployment starts it;
- the CPU image (every role without a GPU: kind) runs the kind example's proposer container
  within its memory limit: the embedded model resolves, vLLM for CPUs serves Generate, and a
  bad request gets INVALID_ARGUMENT; the learner's torch and DeepSpeed import in it.
"""

import json
import os
import subprocess
import uuid

import pytest

from azr.spec import load_run
from azr_operator import builders
from tests.images.conftest import ROOT, RUNTIME, build_image, inspect

pytestmark = pytest.mark.slow


def _rendered_container(role: str, example: str = "examples/selfplayrun-cpu.yaml") -> tuple[dict, str]:
    run = load_run(ROOT / example)
    [deployment] = [o for o in builders.build(run) if o["kind"] == "Deployment" and o["metadata"]["name"] == builders.name(run, role)]
    pod = deployment["spec"]["template"]["spec"]
    return pod["containers"][0], run.model_copy(update={"status": None}).to_yaml()


def _docker_run_flags(container: dict, tmp_path=None) -> list[str]:
    """The container's securityContext, limits and emptyDir volumes as `docker run` flags.
    The executor's emptyDirs are tmpfs; with `tmp_path`, /cache is a folder on disk, as a
    disk-backed emptyDir is (a tmpfs would count against the memory limit)."""
    sc = container["securityContext"]
    limits = container["resources"]["limits"]
    flags = ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}", f"--memory={limits['memory'].replace('Gi', 'g').replace('Mi', 'm')}"]
    if sc["readOnlyRootFilesystem"]:
        flags.append("--read-only")
    flags += [f"--cap-drop={cap}" for cap in sc["capabilities"]["drop"]]
    if not sc["allowPrivilegeEscalation"]:
        flags += ["--security-opt", "no-new-privileges"]
    for env in container["env"]:
        flags += ["-e", f"{env['name']}={env['value']}"]
    for mount in container["volumeMounts"]:
        if mount["name"] == "cache" and tmp_path is not None:
            cache = tmp_path / "cache"
            cache.mkdir()
            os.chown(cache, sc["runAsUser"], sc["runAsGroup"])
            flags += ["-v", f"{cache}:{mount['mountPath']}"]
        elif mount["name"] in ("cache", "tmp"):  # emptyDirs
            flags += ["--tmpfs", f"{mount['mountPath']}:uid={sc['runAsUser']},gid={sc['runAsGroup']},mode=0755"]
        elif mount["name"] == "shm":
            flags += ["--shm-size=1g"]
    return flags


def _start(docker, image: str, container: dict, spec_yaml: str, tmp_path, *flags: str, disk_cache: bool = False) -> str:
    """Start `container` as rendered, its spec mounted as its ConfigMap is; the container's name."""
    (tmp_path / "spec.yaml").write_text(spec_yaml)
    (tmp_path / "spec.yaml").chmod(0o644)  # a ConfigMap volume's files are world-readable
    tmp_path.chmod(0o755)
    name = f"azr-test-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [*docker, "run", "-d", "--name", name, "--network=none", *flags,
         *_docker_run_flags(container, tmp_path if disk_cache else None), "-v", f"{tmp_path}:/etc/azr:ro", image,
         *container["args"]],
        capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    return name


@pytest.fixture(scope="module")
def executor_image(docker, base_image):
    return build_image(docker, base_image, "executor")


def test_the_executor_image_serves_under_gvisor_as_its_pod_is_rendered(docker, executor_image, tmp_path):
    container, spec_yaml = _rendered_container("executor")
    config = inspect(docker, executor_image)["Config"]
    assert config["User"] == "65532:65532" and config["Entrypoint"] == container["command"]
    name = _start(docker, executor_image, container, spec_yaml, tmp_path, f"--runtime={RUNTIME}")
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


@pytest.mark.timeout(1800)  # the build, then a probe given 1200 s of its own; 600 s did not cover both on a slow day
def test_the_cpu_image_serves_generate_as_the_kind_proposer_is_rendered(docker, compiler_base_image, tmp_path):
    image = build_image(docker, compiler_base_image, "cpu")
    container, spec_yaml = _rendered_container("proposer", "deploy/kind/selfplayrun-kind.yaml")
    assert container["image"].endswith("azr-cpu:0.1.0")  # no GPU in the kind run: the CPU image
    name = _start(docker, image, container, spec_yaml, tmp_path, disk_cache=True)
    try:
        probe = subprocess.run([*docker, "exec", "-i", name, "python3", "-"], input=(ROOT / "tests/images/probe_generator.py").read_text(),
                               capture_output=True, text=True, timeout=1200)
        logs = subprocess.run([*docker, "logs", name], capture_output=True, text=True).stderr
        state = subprocess.run([*docker, "inspect", name, "--format", "{{.State.OOMKilled}}"], capture_output=True, text=True).stdout
        learner = subprocess.run([*docker, "exec", "-e", "DS_ACCELERATOR=cpu", name, "python3", "-c",
                                  "import torch, deepspeed, azr_learner.policy; print(torch.__version__, torch.cuda.is_available())"],
                                 capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True)
    assert probe.returncode == 0, probe.stderr + "\n".join(line for line in logs.splitlines() if "Error" in line or "GiB" in line)[-4000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert state.strip() == "false", "killed for memory within the rendered limit"
    assert report["health"] == "SERVING", logs[-3000:]
    assert len(report["completions"]) == 2 and all(tokens == 16 and logprobs == 16 for tokens, logprobs, _ in report["completions"])
    assert report["empty_request"][0] == "INVALID_ARGUMENT"
    assert "smollm2-135m-instruct" in logs and "vllm engine" in logs  # the embedded model, on vLLM for CPUs
    assert learner.returncode == 0 and learner.stdout.split()[1] == "False", learner.stderr[-2000:]
