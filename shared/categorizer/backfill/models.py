"""The backfill run's input and the state data its tasks read and return (pydantic at the boundary)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A Batch API input file holds at most 50,000 requests and 200 MB.
MAX_SHARD_REQUESTS = 50_000
MAX_SHARD_BYTES = 200 * 1024 * 1024

Phase = Literal["running", "done", "queue_full", "failed"]


class RunInfo(BaseModel):
    execution_name: str
    started_at: str


class BackfillConfig(BaseModel):
    """The execution input: what to re-categorise, and the run's bounds."""

    model_config = ConfigDict(extra="forbid")

    prefix: str | None = Field(default=None, description="s3://bucket/prefix of ArticleEvent JSONL files")
    all: bool = Field(default=False, description="every article in the text store, with the active model")
    max_cost_usd: float | None = Field(default=None, ge=0, description="lowers the template's guard, never raises it")
    dry_run: bool = False
    poll_seconds: int = Field(default=60, ge=0, le=3600)
    max_rounds: int = Field(default=3, ge=0, le=10, description="follow-up rounds for expired or unrun lines")
    max_queue_waits: int = Field(default=96, ge=0, description="waits for room in the enqueued-token pool")
    shard_requests: int | None = Field(default=None, ge=1, le=MAX_SHARD_REQUESTS)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_source(self) -> BackfillConfig:
        if (self.prefix is None) == (not self.all):
            raise ValueError("give exactly one of prefix (an s3:// URI) or all: true")
        if self.prefix is not None and not self.prefix.startswith("s3://"):
            raise ValueError("prefix must be an s3:// URI")
        return self


class ShardRef(BaseModel):
    """One batch input file and its texts, in one round (0: planned; n: the lines round n-1 resubmits)."""

    run_id: str
    shard: str
    round: int = 0
    input_key: str
    texts_key: str
    requests: int
    model_id: str
    taxonomy_version: str
    poll_seconds: int
    max_rounds: int
    max_queue_waits: int


class BatchState(BaseModel):
    batch_id: str
    status: str
    phase: Phase
    request_counts: dict[str, int] = Field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, str | int | None]] = Field(default_factory=list)
    polls: int = 0
    queue_waits: int = 0
    reused: bool = False


class Totals(BaseModel):
    written: int = 0
    stale: int = 0
    dead_lettered: int = 0
    dlq_by_reason: dict[str, int] = Field(default_factory=dict)
    resubmitted: int = 0
    rounds: int = 0
    batches: list[dict[str, str | int]] = Field(default_factory=list)
    cost_usd: float = 0.0


class ShardState(BaseModel):
    """A Map iteration's state: the shard, its batch, and what earlier rounds of it did."""

    shard: ShardRef
    batch: BatchState | None = None
    totals: Totals = Field(default_factory=Totals)
