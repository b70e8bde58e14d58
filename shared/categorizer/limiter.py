"""Client-side rate limiter: keep this instance within its share of the OpenAI limits.

Two continuously refilled buckets (requests and tokens) sized from the capacity planner's
per-instance budget (`python -m tools capacity`). A bucket holds at most `burst_seconds` of
its rate, so an idle instance cannot save up a minute of requests and spend it at once
(OpenAI enforces its per-minute limits over shorter windows too).

The buckets only know this instance. The account's state comes back on every response in
the `x-ratelimit-*` headers: when they say the next request would not fit, every caller
pauses until it would, so the fleet backs off before a 429 arrives; a 429 that does arrive
pauses all callers for its `retry-after-ms`. Written by hand because no limiter library reads
OpenAI's headers. It holds no asyncio primitives, so one instance survives across event
loops (Lambda invocations outside the runtime).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Pause when a 429 carries no retry-after.
_DEFAULT_THROTTLE_PAUSE = 1.0
# Never trust a header to stop an instance longer than this.
_MAX_PAUSE = 60.0


def parse_reset(value: str) -> float:
    """OpenAI's reset durations ("20ms", "1s", "6m0s", "1h2m3.5s", or bare seconds) in seconds."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(value))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (OpenAI's, precise) or `retry-after` in seconds."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return _number(headers.get("retry-after"))


class _Bucket:
    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0
        # Room for at least one request, however small the share.
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, amount: float, now: float) -> float:
        """Take `amount` (the level may go negative: a queue) and return how long to wait for it."""
        self.refill(now)
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float,
        tokens_per_minute: float,
        *,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(requests_per_minute, burst_seconds, now) if requests_per_minute > 0 else None
        self._tokens = _Bucket(tokens_per_minute, burst_seconds, now) if tokens_per_minute > 0 else None
        self._paused_until = 0.0
        self._last_tokens = 1

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of `tokens` tokens fits; return the seconds waited.

        The reservation happens before the first await, so concurrent callers are served in
        arrival order. A pause that starts while a caller sleeps delays it too.
        """
        started = self._clock()
        self._last_tokens = max(1, tokens)
        wait = max(0.0, self._paused_until - started)
        if self._requests is not None:
            wait = max(wait, self._requests.reserve(1, started))
        if self._tokens is not None:
            wait = max(wait, self._tokens.reserve(tokens, started))
        while wait > 0:
            await self._sleep(wait)
            wait = self._paused_until - self._clock()
        return self._clock() - started

    def observe(self, headers: Mapping[str, str], status_code: int = 200) -> None:
        """Read one OpenAI response: pause everyone when the account has no room left."""
        now = self._clock()
        if status_code == 429:
            pause = retry_after_seconds(headers)
            self._pause(now, _DEFAULT_THROTTLE_PAUSE if pause is None else pause)
            return
        for kind, need in (("requests", 1), ("tokens", self._last_tokens)):
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            reset_value = headers.get(f"x-ratelimit-reset-{kind}")
            if remaining is None or remaining >= need or not reset_value:
                continue
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            # The account refills at limit/60 per second, so `need` fits after its missing part
            # at that rate; `reset` (until the bucket is full again) only when the limit is unknown.
            pause = (need - remaining) * 60 / limit if limit else parse_reset(reset_value)
            self._pause(now, pause)

    def _pause(self, now: float, seconds: float) -> None:
        self._paused_until = max(self._paused_until, now + min(max(seconds, 0.0), _MAX_PAUSE))
