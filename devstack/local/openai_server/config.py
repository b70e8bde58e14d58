"""Settings of the offline OpenAI-compatible server: limits, faults and the fake model's quirks."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from categorizer.limiter import TokenCounting

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Fields fixed at start; everything else can change at runtime through POST /_admin/config.
STARTUP_ONLY_FIELDS = frozenset({"host", "port", "state_dir"})


class OpenAIServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    state_dir: Path | None = Field(None, description="files, jobs and models; None: a temporary dir")

    # OpenAI-style limits (0 = unlimited), enforced by continuously refilled buckets that hold
    # at most `bucket_seconds` worth of the per-minute limit (60 = a whole minute, like OpenAI).
    rpm: int = Field(0, ge=0)
    tpm: int = Field(0, ge=0)
    bucket_seconds: float = Field(60.0, gt=0, le=60)
    # How a request counts against TPM (chat.rate_limit_tokens): "tiktoken" (its o200k_base prompt
    # tokens, what usage reports) or "characters" (like OpenAI's limiter: an estimate from the
    # request's characters, not a tokenisation, plus max_tokens).
    token_counting: TokenCounting = "tiktoken"  # noqa: S105 (a mode, no secret)

    # Faults, applied to chat completions (the path whose behaviour under load matters).
    latency_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    spike_rate: float = Field(0.0, ge=0, le=1)
    spike_ms: float = Field(0.0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)
    error_statuses: list[int] = Field(default_factory=lambda: [500, 503])
    slow_rate: float = Field(0.0, ge=0, le=1)
    slow_ms: float = Field(0.0, ge=0)
    seed: int | None = Field(None, description="seeds fault and sampling randomness")

    # The fine-tuned model keeps this probability mass for tokens that are no label, so
    # clients see a realistic "coverage" below 1.
    junk_mass: float = Field(0.02, ge=0, lt=1)
    junk_tokens: list[str] = Field(default_factory=lambda: [" ", "The", "\n"])

    # Time a job spends in validating_files and again in queued, so polling can see both.
    job_stage_delay_ms: float = Field(0.0, ge=0)

    # Batch API (local.openai_server.batches). Its limits are OpenAI's own pool, apart from rpm/tpm:
    # prompt tokens enqueued per model (0 = unlimited), requests per batch, bytes per input file.
    batch_queue_tokens: int = Field(0, ge=0)
    batch_max_requests: int = Field(50_000, ge=1)
    batch_max_file_bytes: int = Field(200 * 1024 * 1024, ge=1)
    # Pace: time spent on each request line, so polling can see in_progress (0 = as fast as it goes).
    batch_line_delay_ms: float = Field(0.0, ge=0)
    # Faults: a batch expires once this many of its requests ran (None: batches finish), and this
    # share of request lines is answered with a 500 (in the error file).
    batch_expire_after_requests: int | None = Field(None, ge=0)
    batch_error_rate: float = Field(0.0, ge=0, le=1)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the offline server binds loopback only, not {host!r}")
        return host

    @field_validator("error_statuses")
    @classmethod
    def _server_errors(cls, statuses: list[int]) -> list[int]:
        if not statuses or any(not 500 <= s <= 599 for s in statuses):
            raise ValueError("error_statuses must be a non-empty list of 5xx codes")
        return statuses
