"""The backfill state machine's tasks: each takes the state data and returns what it adds to it.

docs/design.md invariants 4 (nothing lost: every planned line ends as a row or a dead letter with
its reason), 5 and 11 (results go through `ResultStore.put_if_not_older`, the live path's write,
so a backfill result never replaces a newer one), 6 (no double spend: content and model already
stored are not planned) and 1/3 (the request is `chat_request_body`, the live one).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from categorizer.active_model import read_active_model
from categorizer.backfill import batches
from categorizer.backfill.models import (
    MAX_SHARD_BYTES,
    BackfillConfig,
    RunInfo,
    ShardRef,
    ShardState,
)
from categorizer.classifier import PERMANENT_STATUS, chat_request_body, classification_from_completion
from categorizer.config import BackfillSettings
from categorizer.dlq import DeadLetterQueue
from categorizer.errors import PermanentError
from categorizer.finetune.errors import CostGuardExceeded, DatasetInvalid
from categorizer.finetune.storage import RunStore
from categorizer.finetune.tasks import transient_errors
from categorizer.ingest import ItemError, generic_adapter, validate_item
from categorizer.models import ActiveModel, UnpublishEvent
from categorizer.pricing import Prices
from categorizer.prompt import Prompt, model_input, prompt_from_input
from categorizer.service import build_result
from categorizer.store import ResultStore
from categorizer.taxonomy import Taxonomy, bundled_taxonomy
from categorizer.textstore import StoredText, TextStore

if TYPE_CHECKING:
    from categorizer.store import StoredState

# Invalid input lines kept in the state data (all of them go to the run's invalid.jsonl).
_INVALID_EXAMPLES = 20
_UNRUN_CODES = frozenset({"batch_expired", "batch_cancelled"})
# Text-store reads in flight at most (the --all plan), so memory stays bounded by the chunk.
_TEXT_READ_CHUNK = 1000


def custom_id(article_id: str, revision: int) -> str:
    """Names the article and revision; the revision is digits, so the last "@" splits them."""
    return f"{article_id}@{revision}"


@dataclass(frozen=True)
class Planned:
    text: StoredText
    prompt: Prompt


def dead_letter_body(text: StoredText) -> str:
    """The line as an ArticleEvent, so the DLQ tooling can redrive it through the live path."""
    event = {
        "article_id": text.article_id,
        "url": text.url,
        "title": text.title,
        "body": text.body or text.title,
        "body_format": "text",
        "version": text.revision,
        "site": text.site,
        "language": text.language,
    }
    return json.dumps({k: v for k, v in event.items() if v is not None}, ensure_ascii=False)


class Backfill:
    def __init__(
        self,
        settings: BackfillSettings,
        runs: RunStore,
        texts: TextStore,
        results: ResultStore,
        dead_letters: DeadLetterQueue,
        openai_client: Callable[[], AsyncOpenAI],
        prices: Prices,
        active_model: Callable[[], ActiveModel] | None = None,
    ) -> None:
        self._settings = settings
        self._runs = runs
        self._texts = texts
        self._results = results
        self._dead_letters = dead_letters
        self._openai = openai_client
        self._prices = prices
        self._active_model = active_model or (lambda: read_active_model(settings.active_model_parameter, 0))

    # ── Plan ────────────────────────────────────────────────────────────────────────────────
    def plan(self, event: dict[str, Any]) -> dict[str, Any]:
        """Execution input → validated, deduplicated, skipped, priced and sharded; the new state data."""
        run = RunInfo.model_validate(event.get("run"))
        try:
            config = BackfillConfig.model_validate({k: v for k, v in event.items() if k != "run"})
        except ValidationError as error:
            raise DatasetInvalid(f"invalid run input: {error}") from error
        with transient_errors():
            active = self._active_model()
        taxonomy = bundled_taxonomy(active.taxonomy_version)
        invalid: list[dict[str, Any]] = []
        with transient_errors():
            candidates = self._from_prefix(config.prefix, invalid) if config.prefix else self._from_text_store()
            newest: dict[str, Planned] = {}
            for planned in candidates:
                held = newest.get(planned.text.article_id)
                if held is None or planned.text.revision > held.text.revision:
                    newest[planned.text.article_id] = planned
            states = self._results.states(list(newest))
        skipped: Counter[str] = Counter()
        todo: list[Planned] = []
        for article_id, planned in newest.items():
            reason = _skip_reason(states.get(article_id), planned, active.model_id)
            if reason:
                skipped[reason] += 1
            else:
                todo.append(planned)
        prompt_tokens = sum(p.prompt.prompt_tokens for p in todo)
        estimate = self._prices.inference_cost(active.model_id, prompt_tokens, len(todo), batch_api=True)
        live = self._prices.inference_cost(active.model_id, prompt_tokens, len(todo))
        guard = min(self._settings.cost_guard_usd, config.max_cost_usd if config.max_cost_usd is not None else 1e18)
        summary: dict[str, Any] = {
            "model_id": active.model_id,
            "taxonomy_version": taxonomy.version,
            "requests": len(todo),
            "prompt_tokens": prompt_tokens,
            "estimated_cost_usd": round(estimate, 6),
            "live_cost_usd": round(live, 6),
            "cost_guard_usd": guard,
            "skipped": dict(skipped),
            "invalid": len(invalid),
            "invalid_by_reason": dict(Counter(e["errors"][0]["reason"] for e in invalid)),
            "invalid_examples": invalid[:_INVALID_EXAMPLES],
        }
        with transient_errors():
            if invalid:
                report = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in invalid).encode()
                summary["invalid_report"] = self._runs.put_bytes(
                    self._run_key(run.execution_name, "invalid.jsonl"), report, "application/jsonl"
                )
        if estimate > guard:
            raise CostGuardExceeded(
                f"estimated Batch API cost ${estimate:.4f} ({prompt_tokens} prompt tokens, {len(todo)} requests, "
                f"batch prices) exceeds the guard ${guard:.4f}; nothing was uploaded"
            )
        shards: list[dict[str, Any]] = []
        if not config.dry_run:
            with transient_errors():
                shards = [
                    s.model_dump()
                    for s in self._write_shards(run.execution_name, config, active, taxonomy, todo, round_number=0)
                ]
        return {
            "run": run.model_dump(),
            "config": config.model_dump(mode="json")
            | {"max_concurrency": config.max_concurrency or self._settings.max_concurrency},
            "plan": summary | {"shards": shards},
        }

    def _from_prefix(self, uri: str, invalid: list[dict[str, Any]]) -> Iterator[Planned]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if bucket != self._runs.bucket or not prefix.startswith(self._settings.archive_prefix):
            raise DatasetInvalid(f"prefix {uri} is not under s3://{self._runs.bucket}/{self._settings.archive_prefix}")
        keys = self._runs.label_keys(prefix)
        if not keys:
            raise DatasetInvalid(f"no .jsonl files under {uri}")
        for line in self._runs.lines(keys):
            if not line.text.strip():
                continue
            try:
                item: Any = json.loads(line.text)
            except ValueError as error:
                invalid.append({"line": line.where, "article_id": None, "errors": [_problem(f"not JSON: {error}")]})
                continue
            checked = validate_item(0, item, generic_adapter)  # the webhook's validation, item by item
            if isinstance(checked, ItemError):
                invalid.append({"line": line.where, "article_id": checked.article_id, "errors": checked.errors})
                continue
            article = checked.article
            if isinstance(article, UnpublishEvent):  # a backfill categorises; removal goes through the webhook
                reason = "an unpublish item is not backfilled; send it through the webhook"
                invalid.append({"line": line.where, "article_id": article.article_id, "errors": [_problem(reason)]})
                continue
            read = model_input(article.title, article.text, self._settings.input_token_budget)
            prompt = prompt_from_input(read)
            text = StoredText(
                article_id=article.article_id,
                revision=article.revision,
                content_hash=prompt.fingerprint,
                title=read.title,
                body=read.body,
                truncated=read.truncated,
                input_token_budget=self._settings.input_token_budget,
                url=article.url,
                site=article.site,
                language=article.language,
            )
            yield Planned(text, prompt)

    def _from_text_store(self) -> Iterator[Planned]:
        """Every article's newest text: one listing, then GetObjects in parallel, a chunk at a time.

        One GET after another would spend the Plan Lambda's 15 minutes on S3 latency alone at a
        few tens of thousands of articles (docs/backfill.md "Limits and sizing").
        """
        revisions = self._texts.latest_revisions()
        with ThreadPoolExecutor(max_workers=self._settings.io_concurrency) as pool:
            while chunk := list(islice(revisions, _TEXT_READ_CHUNK)):
                for text in pool.map(lambda ref: self._texts.get(*ref), chunk):
                    yield Planned(text, prompt_from_input(text.model_input))

    def _run_key(self, run_id: str, name: str) -> str:
        return f"{self._settings.runs_prefix}{run_id}/{name}"

    def _write_shards(
        self,
        run_id: str,
        config: BackfillConfig,
        active: ActiveModel,
        taxonomy: Taxonomy,
        todo: list[Planned],
        *,
        round_number: int,
        name: str | None = None,
    ) -> list[ShardRef]:
        limit = config.shard_requests or self._settings.shard_requests
        shards: list[ShardRef] = []
        lines: list[bytes] = []
        texts: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal lines, texts, size
            if not lines:
                return
            shard = name or f"{len(shards):04d}"
            base = self._run_key(run_id, f"round-{round_number}/shard-{shard}")
            self._runs.put_bytes(f"{base}.input.jsonl", b"".join(lines), "application/jsonl")
            self._runs.put_bytes(f"{base}.texts.jsonl", b"".join(texts), "application/jsonl")
            shards.append(
                ShardRef(
                    run_id=run_id,
                    shard=shard,
                    round=round_number,
                    input_key=f"{base}.input.jsonl",
                    texts_key=f"{base}.texts.jsonl",
                    requests=len(lines),
                    model_id=active.model_id,
                    taxonomy_version=taxonomy.version,
                    poll_seconds=config.poll_seconds,
                    max_rounds=config.max_rounds,
                    max_queue_waits=config.max_queue_waits,
                )
            )
            lines, texts, size = [], [], 0

        for planned in todo:
            body = chat_request_body(
                planned.prompt,
                active.model_id,
                taxonomy,
                top_k=self._settings.top_k,
                label_logit_bias=self._settings.label_logit_bias,
            )
            request = {
                "custom_id": custom_id(planned.text.article_id, planned.text.revision),
                "method": "POST",
                "url": batches.ENDPOINT,
                "body": body,
            }
            line = (json.dumps(request, ensure_ascii=False) + "\n").encode()
            if lines and (len(lines) >= limit or size + len(line) > MAX_SHARD_BYTES):
                if name is not None:
                    raise ValueError("a follow-up round must fit one shard")
                flush()
            lines.append(line)
            texts.append((planned.text.model_dump_json() + "\n").encode())
            size += len(line)
        flush()
        return shards

    # ── Submit / Check ──────────────────────────────────────────────────────────────────────
    async def submit(self, state: ShardState) -> dict[str, Any]:
        """The shard's batch: the one this run already made for it (a retried task), or a new one."""
        shard = state.shard
        metadata = batches.batch_metadata(shard.run_id, shard.shard, shard.round)
        queue_waits = state.batch.queue_waits + 1 if state.batch and state.batch.phase == "queue_full" else 0
        with transient_errors():
            client = self._openai()
            existing = await batches.find_batch(client, metadata)
            if existing is not None:
                return self._state(existing, state, queue_waits, reused=True)
            content = self._runs.open(shard.input_key)["Body"].read()
            filename = f"{shard.run_id}-r{shard.round}-{shard.shard}.jsonl"
            created = await batches.create_batch(client, filename, io.BytesIO(content), metadata)
        return self._state(created, state, queue_waits, reused=False)

    async def check(self, state: ShardState) -> dict[str, Any]:
        if state.batch is None:
            raise ValueError("CheckBatch needs the batch ($.batch)")
        with transient_errors():
            batch = await self._openai().batches.retrieve(state.batch.batch_id)
        return self._state(batch, state, state.batch.queue_waits, reused=state.batch.reused, poll=True)

    def _state(
        self, batch: Any, state: ShardState, queue_waits: int, *, reused: bool, poll: bool = False
    ) -> dict[str, Any]:
        polls = state.batch.polls + 1 if poll and state.batch else 0
        return batches.batch_state(
            batch, polls=polls, queue_waits=queue_waits, max_queue_waits=state.shard.max_queue_waits, reused=reused
        ).model_dump()

    # ── Collect ─────────────────────────────────────────────────────────────────────────────
    async def collect(self, state: ShardState) -> dict[str, Any]:
        """Decode every line, write rows, dead-letter permanent failures, resubmit the rest (bounded)."""
        shard, batch = state.shard, state.batch
        if batch is None:
            raise ValueError("Collect needs the batch ($.batch)")
        taxonomy = bundled_taxonomy(shard.taxonomy_version)
        with transient_errors():
            texts = {
                custom_id(t.article_id, t.revision): t
                for t in (StoredText.model_validate_json(line.text) for line in self._runs.lines([shard.texts_key]))
            }
            client = self._openai()
            output = await batches.file_lines(client, batch.output_file_id)
            errors = await batches.file_lines(client, batch.error_file_id)
        answered: dict[str, dict[str, Any]] = {}
        for raw in [*output, *errors]:
            line = json.loads(raw)
            answered[str(line["custom_id"])] = line
        writes: list[tuple[StoredText, Any]] = []
        dead: list[tuple[StoredText, str, str]] = []
        again: list[StoredText] = []
        batch_failure = "; ".join(f"{e['code']}: {e['message']}" for e in batch.errors) or batch.status
        for key, text in texts.items():
            line = answered.get(key)
            if batch.status == "failed":
                dead.append((text, "batch_failed", batch_failure))
            elif line is None:
                again.append(text)  # neither answered nor reported: ask again
            elif line.get("error"):
                code = str(line["error"].get("code"))
                if code in _UNRUN_CODES:
                    again.append(text)
                else:
                    dead.append((text, "batch_line_error", f"{code}: {line['error'].get('message')}"))
            else:
                response = line["response"]
                status = int(response["status_code"])
                if status == 200:
                    writes.append((text, response["body"]))
                elif status in PERMANENT_STATUS:
                    message = (response.get("body") or {}).get("error", {}).get("message", "")
                    dead.append((text, "openai_rejected_request", f"HTTP {status}: {message}"))
                else:
                    again.append(text)  # 429 and 5xx: transient, as on the live path
        totals = state.totals.model_copy(deep=True)
        with transient_errors():
            outcomes = self._write_all(shard, taxonomy, writes)
        for text, outcome in zip((t for t, _ in writes), outcomes, strict=True):
            if isinstance(outcome, tuple):
                dead.append((text, outcome[0], outcome[1]))
            elif outcome > 0:
                totals.written += 1
                totals.cost_usd += outcome
            else:
                totals.stale += 1
        next_shard: ShardRef | None = None
        if again and shard.round < shard.max_rounds:
            with transient_errors():
                active = ActiveModel(model_id=shard.model_id, taxonomy_version=shard.taxonomy_version)
                config = BackfillConfig(
                    all=True,
                    poll_seconds=shard.poll_seconds,
                    max_rounds=shard.max_rounds,
                    max_queue_waits=shard.max_queue_waits,
                    shard_requests=len(again),
                )
                todo = [Planned(t, prompt_from_input(t.model_input)) for t in again]
                (next_shard,) = self._write_shards(
                    shard.run_id, config, active, taxonomy, todo, round_number=shard.round + 1, name=shard.shard
                )
            totals.resubmitted += len(again)
        else:
            dead += [(t, "batch_rounds_exhausted", f"unanswered after {shard.round + 1} batch rounds") for t in again]
        with transient_errors():
            for text, reason, detail in dead:
                self._dead_letters.send(
                    dead_letter_body(text),
                    reason=reason,
                    detail=detail,
                    source="backfill",
                    source_message_id=f"{batch.batch_id}:{custom_id(text.article_id, text.revision)}",
                    receive_count=shard.round + 1,
                )
        totals.dead_lettered += len(dead)
        for _, reason, _ in dead:
            totals.dlq_by_reason[reason] = totals.dlq_by_reason.get(reason, 0) + 1
        totals.rounds = shard.round + 1
        totals.cost_usd = round(totals.cost_usd, 8)
        totals.batches.append(
            {"batch_id": batch.batch_id, "round": shard.round, "status": batch.status, "requests": shard.requests}
        )
        return {"totals": totals.model_dump(), "next": next_shard.model_dump() if next_shard else None}

    def _write_all(
        self, shard: ShardRef, taxonomy: Taxonomy, writes: list[tuple[StoredText, Any]]
    ) -> list[float | tuple[str, str]]:
        """Per line: the cost when written, 0 when a newer row kept, or (reason, detail) to dead-letter."""

        def write(item: tuple[StoredText, Any]) -> float | tuple[str, str]:
            text, body = item
            try:
                completion = ChatCompletion.model_validate(body)
                classification = classification_from_completion(
                    completion,
                    prompt_from_input(text.model_input),
                    shard.model_id,
                    taxonomy,
                    self._prices,
                    latency_ms=0.0,
                    batch_api=True,
                )
            except PermanentError as error:  # no_valid_label, no_logprobs: as on the live path
                return (error.reason, error.detail)
            except ValidationError as error:
                return ("batch_line_invalid", str(error)[:500])
            result = build_result(
                text,
                shard.model_id,
                taxonomy,
                classification,
                self._settings.low_confidence_threshold,
                "batch",
                self._settings.review_sample_share,
            )
            self._texts.put(text)  # before the row, as on the live path (categorizer.service)
            return classification.cost_usd if self._results.put_if_not_older(result) else 0.0

        with ThreadPoolExecutor(max_workers=self._settings.io_concurrency) as pool:
            return list(pool.map(write, writes))


def _problem(reason: str) -> dict[str, str]:
    return {"field": "(line)", "reason": reason}


def _skip_reason(state: StoredState | None, planned: Planned, model_id: str) -> str | None:
    """Why no request is needed (docs/design.md invariants 5 and 6), or None."""
    if state is None or state.revision is None:
        return None
    if state.revision > planned.text.revision:
        return "newer_revision_stored"
    if state.unchanged(planned.text.content_hash, model_id):
        return "already_categorized_with_model"
    return None
