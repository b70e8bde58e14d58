"""An OpenAI-compatible server on loopback: a stand-in for tests, demos and benchmarks.

It speaks the REST shapes the `openai` SDK parses (files, fine-tuning jobs and events, chat
completions with logprobs and logit_bias, batches of chat completions, models, errors). Its
fine-tuning trains a real small classifier (local.textmodel) on the uploaded JSONL. It enforces
RPM/TPM limits and the batch queue limit, and injects latency and faults on demand. It is not
OpenAI: no base-model chat, no streaming, batches for /v1/chat/completions only.
"""

from local.openai_server.config import OpenAIServerConfig
from local.openai_server.server import ServerHandle, serve_in_thread

__all__ = ["OpenAIServerConfig", "ServerHandle", "serve_in_thread"]
