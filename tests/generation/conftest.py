"""One vLLM server per module (the model and the transformers engine are session fixtures)."""

import pytest

from tests.services import start_server, stop_server


@pytest.fixture(scope="module")
def vllm_process(model_path, tmp_path_factory):
    """The proposer on vLLM (module-scoped: two vLLM engines never run at once here), taking
    weights from disk and by broadcast (`--weight-sync nccl`: gloo on this CPU)."""
    proc, channel = start_server("proposer", tmp_path_factory.mktemp("vllm"), "--engine", "vllm",
                                 "--model", str(model_path), "--max-model-len", "2048", "--weight-sync", "nccl")
    yield proc, channel
    stop_server(proc, channel)


@pytest.fixture(scope="module")
def vllm_server(vllm_process):
    return vllm_process[1]
