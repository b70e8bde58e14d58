"""The OpenAI Batch API calls the backfill makes: upload, retry-safe create, retrieve, file content."""

from __future__ import annotations

from typing import IO, Final

from openai import AsyncOpenAI
from openai.types import Batch

from categorizer.backfill.models import BatchState, Phase

ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
_RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
_DONE = frozenset({"completed", "expired", "cancelled"})
QUEUE_FULL_CODE = "token_limit_exceeded"


def batch_metadata(run_id: str, shard: str, round_number: int) -> dict[str, str]:
    return {"backfill_run": run_id, "shard": shard, "round": str(round_number)}


async def find_batch(client: AsyncOpenAI, metadata: dict[str, str]) -> Batch | None:
    """The newest batch this run made for this shard and round that did not fail, if any.

    The list endpoint filters by nothing but time, so it is read newest first until a match;
    a failed batch (e.g. the enqueued-token pool was full) is not one to follow, so it is skipped.
    """
    async for batch in client.batches.list(limit=100):
        ours = batch.metadata and all(batch.metadata.get(k) == v for k, v in metadata.items())
        if ours and batch.status != "failed":
            return batch
    return None


async def create_batch(client: AsyncOpenAI, filename: str, content: IO[bytes], metadata: dict[str, str]) -> Batch:
    uploaded = await client.files.create(file=(filename, content), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id,
        endpoint=ENDPOINT,
        completion_window=COMPLETION_WINDOW,
        metadata=metadata,
    )


def batch_state(batch: Batch, *, polls: int, queue_waits: int, max_queue_waits: int, reused: bool) -> BatchState:
    errors = [
        {"code": e.code, "message": e.message, "line": e.line}
        for e in (batch.errors.data if batch.errors else None) or []
    ]
    phase: Phase
    if batch.status in _RUNNING:
        phase = "running"
    elif batch.status in _DONE:
        phase = "done"
    elif any(e["code"] == QUEUE_FULL_CODE for e in errors) and queue_waits < max_queue_waits:
        phase = "queue_full"
    else:
        phase = "failed"
    counts = batch.request_counts
    return BatchState(
        batch_id=batch.id,
        status=batch.status,
        phase=phase,
        request_counts={"total": counts.total, "completed": counts.completed, "failed": counts.failed}
        if counts
        else {},
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        errors=errors,
        polls=polls,
        queue_waits=queue_waits,
        reused=reused,
    )


async def file_lines(client: AsyncOpenAI, file_id: str | None) -> list[str]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [line for line in content.text.splitlines() if line.strip()]
