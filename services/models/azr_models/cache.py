"""Where azr keeps big derived files (converted models, sandbox roots): never in git."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$AZR_CACHE_DIR, else $XDG_CACHE_HOME/azr, else ~/.cache/azr."""
    if os.environ.get("AZR_CACHE_DIR"):
        return Path(os.environ["AZR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "azr"
