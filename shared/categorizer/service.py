"""Categorising one article: skip what needs no call, classify, store (docs/design.md invariants 5 and 6)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from categorizer.classifier import Classification, OpenAIClassifier
from categorizer.models import ActiveModel, ArticleEvent, CategorizationResult
from categorizer.prompt import build_prompt
from categorizer.store import ResultStore
from categorizer.taxonomy import Taxonomy

Status = Literal["categorized", "unchanged", "stale"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    result: CategorizationResult | None = None
    classification: Classification | None = None


class CategorizeService:
    def __init__(
        self,
        store: ResultStore,
        classifier: OpenAIClassifier,
        *,
        input_token_budget: int,
        low_confidence_threshold: float,
    ) -> None:
        self._store = store
        self._classifier = classifier
        self._input_token_budget = input_token_budget
        self._low_confidence_threshold = low_confidence_threshold

    async def categorize(self, article: ArticleEvent, active: ActiveModel, taxonomy: Taxonomy) -> Outcome:
        prompt = build_prompt(article.title, article.text, self._input_token_budget)
        fingerprint = prompt.fingerprint
        # boto3 is synchronous: run its calls in threads so the batch's records overlap.
        state = await asyncio.to_thread(self._store.state, article.article_id)
        if state is not None:
            if state.revision > article.revision:
                return Outcome("stale")
            unchanged = state.content_hash == fingerprint and state.model_id == active.model_id
            # A failed advance means the row changed since it was read (a concurrent revision was
            # written): classify, and let the conditional write keep whichever revision is newer.
            if unchanged and (
                state.revision == article.revision
                or await asyncio.to_thread(
                    self._store.advance_revision, article.article_id, article.revision, fingerprint, active.model_id
                )
            ):
                return Outcome("unchanged")

        classification = await self._classifier.classify(prompt, active.model_id, taxonomy)
        best = classification.decoded.predictions[0]
        result = CategorizationResult(
            article_id=article.article_id,
            revision=article.revision,
            content_hash=fingerprint,
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
            title=article.title[:300],
            site=article.site,
            language=article.language,
        )
        written = await asyncio.to_thread(self._store.put_if_not_older, result)
        return Outcome("categorized" if written else "stale", result, classification)
