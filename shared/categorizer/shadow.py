"""Shadow traffic: the active record's candidate model asked beside the active one on live articles.

When the active-model record names a candidate (`ActiveModel.shadow`: model id and share), the
categorize function asks it for a deterministic share of the articles it has just classified —
after the active answer is stored, so the candidate never delays or fails the stored result:
every failure (an HTTP error, a timeout, an unknown model, no room in its limiter share, a
failed write) only returns a failed `ShadowOutcome` that the handler logs and counts.

Selection: an article revision is shadowed when the first 8 bytes of
sha256("<article_id>\\n<revision>") as a fraction of 2**64 are below the share. So a retried
record asks again only for a revision already chosen, the choice does not depend on which
instance or batch sees it, and the selected fraction converges to the share.

Capacity (docs/design.md invariant 7): the candidate has its own limiter, sized at `share` times
this instance's budget (INSTANCE_REQUESTS_PER_MINUTE and INSTANCE_TOKENS_PER_MINUTE), so it
never draws on the active path's buckets; a call that cannot get its reservation within the
shadow timeout is dropped (`rate_limited`). It reads the active path's rate-limit headers too
(the account's state: it backs off when the account is full), while its own responses, 429s
included, pause only itself. The account then carries up to (1 + share) times the active
traffic: plan capacity with that factor (docs/capacity.md "Shadow traffic").
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import openai

from categorizer.classifier import OpenAIClassifier
from categorizer.errors import PermanentError
from categorizer.limiter import RateLimiter
from categorizer.models import ActiveModel, CategorizationResult, ShadowAnswer
from categorizer.prompt import Prompt
from categorizer.store import ResultStore
from categorizer.taxonomy import Taxonomy

ShadowStatus = Literal["compared", "stale", "failed"]
_SELECTION_SPACE = 2**64


def selected(article_id: str, revision: int, share: float) -> bool:
    """Whether this article revision belongs to the shadowed share (deterministic, uniform)."""
    digest = hashlib.sha256(f"{article_id}\n{revision}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * _SELECTION_SPACE


@dataclass(frozen=True)
class ShadowOutcome:
    status: ShadowStatus
    model_id: str
    # compared / stale: the candidate's answer (its cost is spent either way); failed: None.
    answer: ShadowAnswer | None = None
    reason: str | None = None  # failed: timeout, rate_limited, unknown_model, throttled, http_<status>, …
    latency_ms: float = 0.0

    @property
    def agreed(self) -> bool:
        return self.answer is not None and self.answer.category_id == self.answer.active_category_id


class ShadowLimits:
    """The candidate's own share of this instance's OpenAI budget, resized when the share changes."""

    def __init__(self, requests_per_minute: float, tokens_per_minute: float) -> None:
        self._requests_per_minute = requests_per_minute
        self._tokens_per_minute = tokens_per_minute
        self._share: float | None = None
        self._limiter: RateLimiter | None = None

    def for_share(self, share: float) -> RateLimiter:
        if self._limiter is None or self._share != share:
            self._limiter = RateLimiter(self._requests_per_minute * share, self._tokens_per_minute * share)
            self._share = share
        return self._limiter

    def observe(self, headers: Mapping[str, str], status_code: int = 200) -> None:
        if self._limiter is not None:
            self._limiter.observe(headers, status_code)


class ShadowTraffic:
    def __init__(self, classifier: OpenAIClassifier, limits: ShadowLimits, store: ResultStore) -> None:
        # The classifier has no limiter of its own: `compare` reserves from the shadow share.
        self._classifier = classifier
        self._limits = limits
        self._store = store

    async def compare(
        self, active: ActiveModel, result: CategorizationResult, prompt: Prompt, taxonomy: Taxonomy, *, seconds: float
    ) -> ShadowOutcome | None:
        """The candidate's answer on the prompt the active model read, stored on the row; None when not shadowed.

        Never raises (but cancellation): `seconds` bounds it, limiter wait included, and the
        caller keeps it inside the record's deadline.
        """
        config = active.shadow
        if config is None or config.model_id == active.model_id:
            return None
        if not selected(result.article_id, result.revision, config.share):
            return None
        started = time.perf_counter()
        reserved = False

        def failed(reason: str) -> ShadowOutcome:
            return ShadowOutcome("failed", config.model_id, reason=reason, latency_ms=_since(started))

        if seconds <= 0:
            return failed("no_time_left")  # the record's deadline is here
        try:
            async with asyncio.timeout(seconds):
                await self._limits.for_share(config.share).acquire(self._classifier.limiter_cost(prompt))
                reserved = True
                classification = await self._classifier.classify(prompt, config.model_id, taxonomy)
        except TimeoutError:
            return failed("timeout" if reserved else "rate_limited")
        except openai.APITimeoutError:
            return failed("timeout")
        except openai.NotFoundError:
            return failed("unknown_model")
        except openai.RateLimitError:
            return failed("throttled")
        except openai.APIStatusError as error:
            return failed(f"http_{error.status_code}")
        except openai.APIConnectionError:
            return failed("connection_error")
        except PermanentError as error:  # a 400 for the request, no logprobs, no valid label
            return failed(error.reason)
        except Exception as error:  # anything else still leaves the stored result alone
            return failed(f"error: {type(error).__name__}")
        best = classification.decoded.predictions[0]
        answer = ShadowAnswer(
            model_id=config.model_id,
            category_id=best.category_id,
            probability=best.probability,
            active_model_id=active.model_id,
            active_category_id=result.category_id,
            prompt_tokens=classification.prompt_tokens,
            completion_tokens=classification.completion_tokens,
            cost_usd=classification.cost_usd,
        )
        try:
            written = await asyncio.to_thread(
                self._store.put_shadow, result.article_id, result.revision, result.content_hash, answer
            )
        except Exception as error:  # the answer is paid for: report it (and its cost) as not stored
            return ShadowOutcome(
                "failed", config.model_id, answer, f"store_error: {type(error).__name__}", _since(started)
            )
        return ShadowOutcome("compared" if written else "stale", config.model_id, answer, latency_ms=_since(started))


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
