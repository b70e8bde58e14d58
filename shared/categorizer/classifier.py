"""The OpenAI adapter: one completion token with top_logprobs (docs/design.md invariant 3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from categorizer.decoding import Decoded, decode_top_logprobs
from categorizer.errors import PermanentError, redact
from categorizer.limiter import RateLimiter
from categorizer.pricing import Prices
from categorizer.prompt import Prompt
from categorizer.taxonomy import Taxonomy

# OpenAI answers these for the request itself: retrying the same request cannot help.
_PERMANENT_STATUS = frozenset({400, 413, 422})


@dataclass(frozen=True)
class Classification:
    decoded: Decoded
    model_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float


class OpenAIClassifier:
    def __init__(
        self,
        client: Callable[[], AsyncOpenAI],
        *,
        top_k: int,
        label_logit_bias: int,
        prices: Prices,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._client = client
        self._top_k = top_k
        self._label_logit_bias = label_logit_bias
        self._prices = prices
        self._limiter = limiter

    @property
    def top_k(self) -> int:
        """How many predictions a classification holds at most."""
        return self._top_k

    async def classify(self, prompt: Prompt, model_id: str, taxonomy: Taxonomy) -> Classification:
        if self._limiter is not None:
            await self._limiter.acquire(prompt.prompt_tokens + 1)
        logit_bias = taxonomy.logit_bias(self._label_logit_bias)
        started = time.perf_counter()
        try:
            completion = await self._client().chat.completions.create(
                model=model_id,
                messages=cast(list[ChatCompletionMessageParam], prompt.messages),
                max_tokens=1,
                temperature=0,
                logprobs=True,
                top_logprobs=self._top_k,
                # Sent as raw JSON: the SDK's typed transform of a 704-key dict costs ~2 ms
                # of CPU per request, a quarter of the handler's (make bench-overhead).
                extra_body={"logit_bias": logit_bias} if logit_bias else None,
            )
        except openai.APIStatusError as error:
            if error.status_code in _PERMANENT_STATUS:
                raise PermanentError("openai_rejected_request", redact(str(error))) from error
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        choice = completion.choices[0] if completion.choices else None
        content = choice.logprobs.content if choice and choice.logprobs else None
        if not content:
            raise PermanentError("no_logprobs", f"model {model_id} returned no logprobs")
        # One completion token, so index 0 holds the whole ranking.
        top = [(entry.token, entry.logprob) for entry in content[0].top_logprobs] or [
            (content[0].token, content[0].logprob)
        ]
        decoded = decode_top_logprobs(top, taxonomy)
        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage else prompt.prompt_tokens
        completion_tokens = usage.completion_tokens if usage else 1
        return Classification(
            decoded=decoded,
            model_id=model_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self._prices.inference_cost(model_id, prompt_tokens, completion_tokens),
            latency_ms=latency_ms,
        )
