"""Categorising one article: skip what needs no call, claim, classify, store.

docs/design.md invariants 5 (no stale overwrite) and 6 (no double spend). Before an OpenAI call
the record claims it on the article's row (`ResultStore.claim`): a conditional update that
fails when the row already holds this content and model, holds a newer revision, or carries a
live claim for the same content and model. So the same event delivered twice, or many
revisions with unchanged text arriving at once, make one call: the others wait for the
claimed call's result and advance, or give up after a bound and are retried by SQS.

Why a claim on the row and not Powertools' idempotency utility: the records of a batch run as
coroutines, which that utility does not support (powertools-lambda-python issue 4483, declined),
and it would add a second table and two writes per record; the claim is one conditional
update on the row that is written anyway, under the same revision rule.

The text store (categorizer.textstore) receives what the model read before the row is written:
while the OpenAI call runs (no added latency), for a shared call, and when a newer revision with
unchanged content advances the row. A failed text write fails the record like any transient
error (claim released, SQS retries, the last receive dead-letters it: docs/design.md invariant 4).
Best effort would be wrong: once the row holds this content and model the skip rule never calls
again, so a text missed then would stay missing and the article could never be backfilled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from categorizer.classifier import Classification, OpenAIClassifier
from categorizer.decoding import Decoded
from categorizer.errors import PermanentError
from categorizer.models import (
    REVIEW_PENDING,
    ActiveModel,
    ArticleEvent,
    CategorizationResult,
    PathNode,
    Prediction,
    ResultSource,
    UnpublishEvent,
)
from categorizer.prompt import Prompt, model_input, prompt_from_input
from categorizer.review.queue import queue_timestamp, review_reason
from categorizer.shadow import ShadowOutcome, ShadowTraffic
from categorizer.store import DYNAMODB_MAX_ITEM_BYTES, Claim, ResultStore, StoredState, item_bytes, result_item
from categorizer.taxonomy import Category, Taxonomy
from categorizer.textstore import StoredText, TextStore
from categorizer.urls import canonical_url

Status = Literal["categorized", "unchanged", "stale", "removed"]
_CLAIM_POLL_SECONDS = 0.2
_CLAIM_ATTEMPTS = 3


class ClaimBusy(RuntimeError):
    """Another record holds the call for this content and model: transient, retried by SQS."""


@dataclass(frozen=True)
class Outcome:
    status: Status
    result: CategorizationResult | None = None
    classification: Classification | None = None  # set only when this record made the call
    prompt: Prompt | None = None  # with `classification`: what the model read (a shadow candidate reads it too)


@dataclass
class _InFlight:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    classification: Classification | None = None
    # The records sharing a call write one after another: one item, so parallel conditional
    # writes would only contend (and moto, unlike DynamoDB, does not serialise them).
    writes: asyncio.Lock = field(default_factory=asyncio.Lock)


class BatchScope:
    """What the records of one invocation share: their rows and the active model read up front, and
    calls in flight."""

    def __init__(self, states: Mapping[str, StoredState | None] | None = None) -> None:
        self.states = dict(states or {})
        self.active: ActiveModel | None = None
        self.in_flight: dict[tuple[str, str, str], _InFlight] = {}


class CategorizeService:
    def __init__(
        self,
        store: ResultStore,
        classifier: OpenAIClassifier,
        texts: TextStore,
        *,
        input_token_budget: int,
        low_confidence_threshold: float,
        review_sample_share: float,
        claim_seconds: float,
        claim_wait_seconds: float,
        shadow: ShadowTraffic | None = None,
    ) -> None:
        self._store = store
        self._classifier = classifier
        self._texts = texts
        self._input_token_budget = input_token_budget
        self._low_confidence_threshold = low_confidence_threshold
        self._review_sample_share = review_sample_share
        self._claim_seconds = claim_seconds
        self._claim_wait_seconds = claim_wait_seconds
        self._shadow = shadow

    def batch_scope(self, article_ids: list[str]) -> BatchScope:
        """The batch's rows in BatchGetItem calls instead of one GetItem per record."""
        return BatchScope(self._store.states(article_ids) if article_ids else {})

    async def unpublish(self, event: UnpublishEvent) -> Outcome:
        """Tombstone the row at the event's revision (docs/design.md invariant 10); no OpenAI call."""
        removed = await asyncio.to_thread(self._store.unpublish, event.article_id, event.revision, event.url)
        return Outcome("removed" if removed else "stale")

    async def categorize(
        self, article: ArticleEvent, active: ActiveModel, taxonomy: Taxonomy, scope: BatchScope | None = None
    ) -> Outcome:
        scope = scope or BatchScope()
        read = model_input(article.title, article.text, self._input_token_budget)
        prompt = prompt_from_input(read)
        text = StoredText(
            article_id=article.article_id,
            revision=article.revision,
            content_hash=prompt.fingerprint,
            title=read.title,
            body=read.body,
            truncated=read.truncated,
            input_token_budget=self._input_token_budget,
            url=article.url,
            site=article.site,
            language=article.language,
        )
        self._check_row_fits(text, active, taxonomy)
        key = (article.article_id, prompt.fingerprint, active.model_id)
        earlier = scope.in_flight.get(key)
        if earlier is not None:
            # The same article, content and model earlier in this batch: share its call.
            await earlier.done.wait()
            if earlier.classification is not None:
                await asyncio.to_thread(self._texts.put, text)  # its own revision's text
                async with earlier.writes:
                    return await self._store_result(text, active, taxonomy, earlier.classification, shared=True)
        mine = scope.in_flight.setdefault(key, _InFlight())
        try:
            return await self._categorize(article, active, taxonomy, prompt, text, scope, mine)
        finally:
            mine.done.set()

    async def _categorize(
        self,
        article: ArticleEvent,
        active: ActiveModel,
        taxonomy: Taxonomy,
        prompt: Prompt,
        text: StoredText,
        scope: BatchScope,
        mine: _InFlight,
    ) -> Outcome:
        # boto3 is synchronous: its calls run in threads so the batch's records overlap.
        if article.article_id in scope.states:
            state = scope.states.pop(article.article_id)  # read once; later looks read afresh
        else:
            state = await asyncio.to_thread(self._store.state, article.article_id)
        for _ in range(_CLAIM_ATTEMPTS):
            skipped = await self._skip(article, state, text, active.model_id)
            if skipped is not None:
                return skipped
            claimed = await asyncio.to_thread(
                self._store.claim,
                article.article_id,
                article.revision,
                prompt.fingerprint,
                active.model_id,
                self._claim_seconds,
            )
            if isinstance(claimed, Claim):
                claim = claimed
                break
            state = claimed
            if (
                state is not None
                and state.claim is not None
                and state.claim.covers(prompt.fingerprint, active.model_id, time.time())
            ):
                state = await self._wait_for_claim(article.article_id, prompt.fingerprint, active.model_id)
        else:
            raise ClaimBusy(f"another record is classifying {article.article_id} with the same content and model")
        try:
            classification = await self._classify_and_keep_text(prompt, active.model_id, taxonomy, text)
            outcome = await self._store_result(text, active, taxonomy, classification, shared=False)
        except BaseException:
            # The retry must not wait for its own claim (the write replaces the claim on success).
            await asyncio.to_thread(self._release, article.article_id, claim)
            raise
        mine.classification = classification
        return replace(outcome, prompt=prompt)

    async def ask_shadow(
        self, outcome: Outcome, active: ActiveModel, taxonomy: Taxonomy, *, seconds: float
    ) -> ShadowOutcome | None:
        """The active record's candidate on a stored result's prompt (categorizer.shadow); None if not asked."""
        if self._shadow is None or outcome.status != "categorized" or outcome.result is None or outcome.prompt is None:
            return None
        return await self._shadow.compare(active, outcome.result, outcome.prompt, taxonomy, seconds=seconds)

    async def _classify_and_keep_text(
        self, prompt: Prompt, model_id: str, taxonomy: Taxonomy, text: StoredText
    ) -> Classification:
        """The OpenAI call with the text write beside it; raises if either fails."""
        writing = asyncio.ensure_future(asyncio.to_thread(self._texts.put, text))
        try:
            classification = await self._classifier.classify(prompt, model_id, taxonomy)
        except BaseException:
            await asyncio.wait([writing])  # the call's error is the one that matters
            raise
        await writing
        return classification

    def _release(self, article_id: str, claim: Claim) -> None:
        # Best effort: an unreleased claim expires by itself, and the call's own error is what matters.
        with contextlib.suppress(Exception):
            self._store.release(article_id, claim)

    async def _skip(
        self, article: ArticleEvent, state: StoredState | None, text: StoredText, model_id: str
    ) -> Outcome | None:
        """Stale or unchanged: no call. None when a call is needed."""
        fingerprint = text.content_hash
        if state is None or state.revision is None:
            return None
        if state.revision > article.revision or (state.removed and state.revision == article.revision):
            return Outcome("stale")  # a tombstone wins a tie (docs/design.md invariant 10)
        if not state.unchanged(fingerprint, model_id):
            return None
        if state.revision == article.revision:
            return Outcome("unchanged")
        # A failed advance means the row changed since it was read (a concurrent revision was
        # written): classify, and let the conditional write keep whichever revision is newer.
        await asyncio.to_thread(self._texts.put, text)  # the row will name this revision
        advanced = await asyncio.to_thread(
            self._store.advance_revision, article.article_id, article.revision, fingerprint, model_id
        )
        return Outcome("unchanged") if advanced else None

    async def _wait_for_claim(self, article_id: str, fingerprint: str, model_id: str) -> StoredState | None:
        """The row once no live claim covers this content and model, or after the wait bound."""
        deadline = time.monotonic() + self._claim_wait_seconds
        while True:
            state = await asyncio.to_thread(self._store.state, article_id)
            claim = state.claim if state is not None else None
            if claim is None or not claim.covers(fingerprint, model_id, time.time()) or time.monotonic() > deadline:
                return state
            if state is not None and state.revision is not None and state.unchanged(fingerprint, model_id):
                return state
            await asyncio.sleep(_CLAIM_POLL_SECONDS)

    def _check_row_fits(self, text: StoredText, active: ActiveModel, taxonomy: Taxonomy) -> None:
        """The row this record would write fits DynamoDB's item limit, with the largest predictions the
        taxonomy allows: checked before the call, so an article whose row cannot be stored is
        dead-lettered once instead of paying for a call on every receive. The model's fields are
        bounded so that it always fits; this keeps it so if a field grows. The row's own attributes
        (url and canonical_url, the path) are counted as build_result writes them."""

        def prediction(category: Category) -> Prediction:
            return Prediction(label=category.label, category_id=category.id, name=category.name, probability=1.0)

        # The best prediction also names the row's path (tier 1 → leaf), the others only themselves.
        others = [prediction(taxonomy.widest_category)] * (max(1, self._classifier.top_k) - 1)
        decoded = Decoded(predictions=[prediction(taxonomy.deepest_category), *others], coverage=1.0)
        largest = Classification(decoded, active.model_id, 2**53, 2**53, 1e9, 0.0, 0.0)
        result = build_result(
            text, active.model_id, taxonomy, largest, self._low_confidence_threshold, "live", self._review_sample_share
        )
        size = item_bytes(result_item(result))
        if size > DYNAMODB_MAX_ITEM_BYTES:
            raise PermanentError(
                "item_too_large", f"its row would take up to {size} bytes; DynamoDB stores {DYNAMODB_MAX_ITEM_BYTES}"
            )

    async def _store_result(
        self,
        text: StoredText,
        active: ActiveModel,
        taxonomy: Taxonomy,
        classification: Classification,
        *,
        shared: bool,
    ) -> Outcome:
        result = build_result(
            text,
            active.model_id,
            taxonomy,
            classification,
            self._low_confidence_threshold,
            "live",
            self._review_sample_share,
        )
        written = await asyncio.to_thread(self._store.put_if_not_older, result)
        if shared:  # no call of its own: its cost was counted where the call was made
            return Outcome("unchanged" if written else "stale", result if written else None)
        return Outcome("categorized" if written else "stale", result, classification)


def build_result(
    text: StoredText,
    model_id: str,
    taxonomy: Taxonomy,
    classification: Classification,
    low_confidence_threshold: float,
    source: ResultSource,
    review_sample_share: float,
) -> CategorizationResult:
    """The row for one answer, whichever path asked (docs/design.md invariant 11), queued for review
    when categorizer.review.queue says so."""
    best = classification.decoded.predictions[0]
    reason = review_reason(
        text.article_id,
        text.revision,
        best.probability,
        threshold=low_confidence_threshold,
        sample_share=review_sample_share,
    )
    categorized_at = datetime.now(UTC)
    return CategorizationResult(
        article_id=text.article_id,
        revision=text.revision,
        content_hash=text.content_hash,
        model_id=model_id,
        taxonomy_version=taxonomy.version,
        category_id=best.category_id,
        category_name=best.name,
        path=[PathNode(id=tier.id, name=tier.name) for tier in taxonomy.path(best.category_id)],
        label=best.label,
        probability=best.probability,
        coverage=classification.decoded.coverage,
        needs_review=best.probability < low_confidence_threshold,
        top_k=classification.decoded.predictions,
        prompt_tokens=classification.prompt_tokens,
        completion_tokens=classification.completion_tokens,
        cost_usd=classification.cost_usd,
        truncated=text.truncated,
        url=text.url,
        canonical_url=canonical_url(text.url),
        title=text.title[:300],
        site=text.site,
        language=text.language,
        source=source,
        categorized_at=categorized_at,
        review_queue=REVIEW_PENDING if reason else None,
        review_queued_at=queue_timestamp(categorized_at) if reason else None,
        review_reason=reason,
    )
