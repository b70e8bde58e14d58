"""Client-side rate limiter: keep this instance within its share of the OpenAI limits.

Two continuously refilled buckets (requests and tokens) sized from the capacity planner's
per-instance budget. Written by hand because it must also follow OpenAI's
`x-ratelimit-*` headers, which no limiter library reads. It holds no asyncio primitives,
so one instance survives across event loops (Lambda invocations outside the runtime).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str) -> float:
    """OpenAI's reset durations ("20ms", "1s", "6m0s", "1h2m3.5s") in seconds."""
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(value))


class _Bucket:
    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def reserve(self, amount: float, now: float) -> float:
        """Take `amount` (the level may go negative) and return how long to wait for it."""
        self.refill(now)
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float,
        tokens_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute > 0 else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute > 0 else None
        self._paused_until = 0.0

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of `tokens` tokens fits; return the seconds waited.

        The reservation happens before the await, so concurrent callers queue up in order.
        """
        now = self._clock()
        wait = max(0.0, self._paused_until - now)
        if self._requests is not None:
            wait = max(wait, self._requests.reserve(1, now))
        if self._tokens is not None:
            wait = max(wait, self._tokens.reserve(min(tokens, self._tokens.capacity), now))
        if wait > 0:
            await self._sleep(wait)
        return wait

    def observe(self, headers: Mapping[str, str]) -> None:
        """Back off before a 429: when the account says a limit is spent, pause until its reset."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = headers.get(f"x-ratelimit-reset-{kind}")
            if remaining is not None and reset and remaining.strip() == "0":
                self._paused_until = max(self._paused_until, self._clock() + parse_reset(reset))
