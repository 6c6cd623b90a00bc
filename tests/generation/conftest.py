"""One vLLM server per module (the model and the transformers engine are session fixtures)."""

import pytest

from tests.services import start_server, stop_server


@pytest.fixture(scope="module")
def vllm_server(model_path, tmp_path_factory):
    """The proposer on vLLM (module-scoped: two vLLM engines never run at once here)."""
    proc, channel = start_server("proposer", tmp_path_factory.mktemp("vllm"), "--engine", "vllm",
                                 "--model", str(model_path), "--max-model-len", "2048")
    yield channel
    stop_server(proc, channel)
