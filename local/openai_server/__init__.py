"""An OpenAI-compatible server on loopback: a stand-in for tests, demos and benchmarks.

It speaks the REST shapes the `openai` SDK parses (files, fine-tuning jobs and events, chat
completions with logprobs and logit_bias, models, errors). Its fine-tuning trains a real
small classifier (local.textmodel) on the uploaded JSONL. It enforces RPM/TPM limits and
injects latency and faults on demand. It is not OpenAI: no base-model chat, no streaming.
"""

import sys
from pathlib import Path

# `python -m local.openai_server` runs from the repo root: put the layer (shared/) on the path
# for the prompt's token formula, as `python -m local` does.
_SHARED = str(Path(__file__).resolve().parents[2] / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)

from local.openai_server.config import OpenAIServerConfig  # noqa: E402
from local.openai_server.server import ServerHandle, serve_in_thread  # noqa: E402

__all__ = ["OpenAIServerConfig", "ServerHandle", "serve_in_thread"]
