"""Shared fixtures: the embedded model, one engine, and one sandbox pool per mode for the
whole session (starting one costs ~0.5 s). Each imports its service only when a test asks for
it, so the core's tests run with nothing but the core installed."""

import shutil

import pytest

FAST_TIMEOUT_SECONDS = 2.0


@pytest.fixture(scope="session")
def model_path():
    """The embedded SmolLM2-135M-Instruct, converted once into the cache."""
    from azr_models.resolve import ensure_embedded_model

    return ensure_embedded_model()


@pytest.fixture(scope="session")
def transformers_engine(model_path):
    from azr_generation.engines import TransformersEngine

    return TransformersEngine(str(model_path), "float32", 2048)


def _pool(mode: str):
    from azr_executor.pool import SandboxPool

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
    from azr_executor.engine import Executor, Limits

    return Executor(gvisor_pool, Limits(timeout_seconds=FAST_TIMEOUT_SECONDS))
