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
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from categorizer.classifier import Classification, OpenAIClassifier
from categorizer.models import ActiveModel, ArticleEvent, CategorizationResult, UnpublishEvent
from categorizer.prompt import Prompt, build_prompt
from categorizer.store import Claim, ResultStore, StoredState
from categorizer.taxonomy import Taxonomy

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


@dataclass
class _InFlight:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    classification: Classification | None = None


class BatchScope:
    """What the records of one invocation share: their rows read up front, and calls in flight."""

    def __init__(self, states: Mapping[str, StoredState | None] | None = None) -> None:
        self.states = dict(states or {})
        self.in_flight: dict[tuple[str, str, str], _InFlight] = {}


class CategorizeService:
    def __init__(
        self,
        store: ResultStore,
        classifier: OpenAIClassifier,
        *,
        input_token_budget: int,
        low_confidence_threshold: float,
        claim_seconds: float,
        claim_wait_seconds: float,
    ) -> None:
        self._store = store
        self._classifier = classifier
        self._input_token_budget = input_token_budget
        self._low_confidence_threshold = low_confidence_threshold
        self._claim_seconds = claim_seconds
        self._claim_wait_seconds = claim_wait_seconds

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
        prompt = build_prompt(article.title, article.text, self._input_token_budget)
        key = (article.article_id, prompt.fingerprint, active.model_id)
        earlier = scope.in_flight.get(key)
        if earlier is not None:
            # The same article, content and model earlier in this batch: share its call.
            await earlier.done.wait()
            if earlier.classification is not None:
                return await self._store_result(article, active, taxonomy, prompt, earlier.classification, shared=True)
        mine = scope.in_flight.setdefault(key, _InFlight())
        try:
            return await self._categorize(article, active, taxonomy, prompt, scope, mine)
        finally:
            mine.done.set()

    async def _categorize(
        self,
        article: ArticleEvent,
        active: ActiveModel,
        taxonomy: Taxonomy,
        prompt: Prompt,
        scope: BatchScope,
        mine: _InFlight,
    ) -> Outcome:
        # boto3 is synchronous: its calls run in threads so the batch's records overlap.
        if article.article_id in scope.states:
            state = scope.states.pop(article.article_id)  # read once; later looks read afresh
        else:
            state = await asyncio.to_thread(self._store.state, article.article_id)
        for _ in range(_CLAIM_ATTEMPTS):
            skipped = await self._skip(article, state, prompt.fingerprint, active.model_id)
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
            classification = await self._classifier.classify(prompt, active.model_id, taxonomy)
            outcome = await self._store_result(article, active, taxonomy, prompt, classification, shared=False)
        except BaseException:
            # The retry must not wait for its own claim (the write replaces the claim on success).
            await asyncio.to_thread(self._release, article.article_id, claim)
            raise
        mine.classification = classification
        return outcome

    def _release(self, article_id: str, claim: Claim) -> None:
        # Best effort: an unreleased claim expires by itself, and the call's own error is what matters.
        with contextlib.suppress(Exception):
            self._store.release(article_id, claim)

    async def _skip(
        self, article: ArticleEvent, state: StoredState | None, fingerprint: str, model_id: str
    ) -> Outcome | None:
        """Stale or unchanged: no call. None when a call is needed."""
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

    async def _store_result(
        self,
        article: ArticleEvent,
        active: ActiveModel,
        taxonomy: Taxonomy,
        prompt: Prompt,
        classification: Classification,
        *,
        shared: bool,
    ) -> Outcome:
        best = classification.decoded.predictions[0]
        result = CategorizationResult(
            article_id=article.article_id,
            revision=article.revision,
            content_hash=prompt.fingerprint,
            model_id=active.model_id,
            taxonomy_version=taxonomy.version,
            category_id=best.category_id,
            category_name=best.name,
            label=best.label,
            probability=best.probability,
            coverage=classification.decoded.coverage,
            needs_review=best.probability < self._low_confidence_threshold,
            top_k=classification.decoded.predictions,
            prompt_tokens=classification.prompt_tokens,
            completion_tokens=classification.completion_tokens,
            cost_usd=classification.cost_usd,
            truncated=prompt.truncated,
            url=article.url,
            canonical_url=article.canonical_url,
            title=article.title[:300],
            site=article.site,
            language=article.language,
        )
        written = await asyncio.to_thread(self._store.put_if_not_older, result)
        if shared:  # no call of its own: its cost was counted where the call was made
            return Outcome("unchanged" if written else "stale", result if written else None)
        return Outcome("categorized" if written else "stale", result, classification)
