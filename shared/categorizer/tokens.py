"""The o200k_base tokenizer, loaded once and offline when the layer carries its file."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import tiktoken

ENCODING_NAME = "o200k_base"
# The layer ships tiktoken's cache file here so that no cold start downloads it.
BUNDLED_CACHE_DIR = Path(__file__).parent / "data" / "tiktoken"


@functools.cache
def encoding() -> tiktoken.Encoding:
    if "TIKTOKEN_CACHE_DIR" not in os.environ and BUNDLED_CACHE_DIR.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(BUNDLED_CACHE_DIR)
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def single_token_id(text: str) -> int | None:
    """The token id when `text` encodes to exactly one token, else None."""
    ids = encoding().encode(text, disallowed_special=())
    return ids[0] if len(ids) == 1 else None
