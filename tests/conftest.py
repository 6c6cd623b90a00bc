"""Shared fixtures: one sandbox pool per mode for the whole session (starting one costs ~0.5 s)."""

import shutil

import pytest

from azr_executor.engine import Executor, Limits
from azr_executor.pool import SandboxPool

FAST_LIMITS = Limits(timeout_seconds=2.0)


@pytest.fixture(scope="session")
def model_path():
    """The embedded SmolLM2-135M-Instruct, converted once into the cache."""
    from azr_models.resolve import ensure_embedded_model

    return ensure_embedded_model()


@pytest.fixture(scope="session")
def transformers_engine(model_path):
    from azr_generation.engines import TransformersEngine

    return TransformersEngine(str(model_path), "float32", 2048)


def _pool(mode: str) -> SandboxPool:
    if mode == "gvisor" and shutil.which("runsc") is None:
        pytest.fail("runsc is not on PATH: ./install.sh installs it (Debian package runsc)")
    return SandboxPool(mode, workers=2, memory_mib=256)


@pytest.fixture(scope="session")
def gvisor_pool():
    with _pool("gvisor") as pool:
        yield pool


@pytest.fixture(scope="session")
def process_pool():
    with _pool("process") as pool:
        yield pool


@pytest.fixture(scope="session", params=["gvisor", "process"])
def pool(request):
    return request.getfixturevalue(f"{request.param}_pool")


@pytest.fixture(scope="session")
def executor(gvisor_pool):
    return Executor(gvisor_pool, FAST_LIMITS)
