"""The o200k_base file offline: TIKTOKEN_CACHE_DIR for the stack and the functions it starts.

tiktoken downloads o200k_base on first use unless TIKTOKEN_CACHE_DIR holds it. `make` sets the
variable; `python -m local …` run directly sets it here, the same way the Makefile does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import MutableMapping
from pathlib import Path

VARIABLE = "TIKTOKEN_CACHE_DIR"


def tools_cache(repo_root: Path) -> Path:
    """Where the Makefile keeps the cache (.tools/tiktoken-cache)."""
    return repo_root / ".tools" / "tiktoken-cache"


def shared_cache(repo_root: Path) -> Path:
    """The cache beside the repository (../shared/data/tiktoken-cache), when the machine has it."""
    return repo_root.parent / "shared" / "data" / "tiktoken-cache"


def ensure_tiktoken_cache_dir(repo_root: Path, environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set TIKTOKEN_CACHE_DIR in `environ` unless it is set; returns its value (None: left unset).

    Seeds .tools/tiktoken-cache from ../shared/data/tiktoken-cache (files it lacks), as the
    Makefile does, and uses it when it exists. With neither, tiktoken downloads the file into its
    default cache on a machine with internet.
    """
    if VARIABLE in environ:
        return environ[VARIABLE]
    cache, seed = tools_cache(repo_root), shared_cache(repo_root)
    if seed.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        for source in seed.iterdir():
            if source.is_file() and not (cache / source.name).exists():
                shutil.copy2(source, cache / source.name)
    if not cache.is_dir():
        return None
    environ[VARIABLE] = str(cache)
    return environ[VARIABLE]
