"""A Docker engine of the tests' own, with gVisor's runsc as a runtime, and the images built
from this checkout (docker/build.sh on a base from docker/base.sh: no registry is needed)."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from azr_models.cache import cache_dir

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "azr-runsc"


def _engine_dirs() -> tuple[Path, Path]:
    state = Path(os.environ.get("AZR_TEST_DOCKER_STATE", "/tmp/azr-docker"))
    return state, cache_dir() / "docker" / "engine"


@pytest.fixture(scope="session")
def docker():
    """The client command of a dockerd started for the tests (on its own socket, no bridge:
    containers get --network=none, which runsc needs here). Its image store is in the cache,
    so a second session reuses the images' layers."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("runsc") is None:
        pytest.fail("the image tests need root, dockerd and runsc: ./install.sh installs docker.io and runsc")
    state, data = _engine_dirs()
    state.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    wrapper = state / "runsc-nonet"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('runsc')} --network=none \"$@\"\n")
    wrapper.chmod(0o755)
    socket = state / "docker.sock"
    client = ["docker", "-H", f"unix://{socket}"]
    if subprocess.run([*client, "info"], capture_output=True).returncode == 0:
        yield client  # one left running (a developer's, or a session that is still stopping)
        return
    log = open(state / "dockerd.log", "ab")
    daemon = subprocess.Popen(
        ["dockerd", "-H", f"unix://{socket}", "--data-root", str(data), "--exec-root", str(state / "exec"),
         "--pidfile", str(state / "dockerd.pid"), "--bridge=none", "--iptables=false", "--ip-masq=false",
         "--storage-driver=overlay2", "--add-runtime", f"{RUNTIME}={wrapper}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while subprocess.run([*client, "info"], capture_output=True).returncode != 0:
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            pytest.fail(f"dockerd did not start: {(state / 'dockerd.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield client
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
    log.close()


def _base(docker, tag: str, packages: str = "") -> str:
    env = dict(os.environ, DOCKER=" ".join(docker), AZR_BASE_PACKAGES=packages)
    out = subprocess.run(["bash", "docker/base.sh", tag], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


@pytest.fixture(scope="session")
def base_image(docker):
    return _base(docker, "azr-base:bookworm")


@pytest.fixture(scope="session")
def compiler_base_image(docker):
    """The CPU image's base: its compiler and Python's headers cannot come from apt under --network=none."""
    return _base(docker, "azr-base:bookworm-compiler", "gcc g++ libc6-dev python3-dev libgomp1 libnuma1")


def build_image(docker, base_image: str, name: str) -> str:
    env = dict(os.environ, DOCKER=" ".join(docker))
    out = subprocess.run(["bash", "docker/build.sh", name, f"azr-{name}:test", base_image], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    # The build stage and the image this tag replaced: gigabytes for the CPU image, on every run.
    subprocess.run([*docker, "image", "prune", "-f"], capture_output=True, timeout=600)
    return out.stdout.strip()


def inspect(docker, image: str) -> dict:
    return json.loads(subprocess.run([*docker, "image", "inspect", image], capture_output=True, text=True, check=True).stdout)[0]
