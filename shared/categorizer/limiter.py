"""Client-side rate limiter: keep this instance within its share of the OpenAI limits.

Two continuously refilled buckets (requests and tokens) sized from the capacity planner's
per-instance budget (`python -m tools capacity`). A bucket holds at most `burst_seconds` of
its rate, so an idle instance cannot save up a minute of requests and spend it at once
(OpenAI enforces its per-minute limits over shorter windows too).

The buckets only know this instance. The account's state comes back on every response in
the `x-ratelimit-*` headers: when they say the next request would not fit, every caller
pauses until it would, so the fleet backs off before a 429 arrives; a 429 that does arrive
pauses all callers for its `retry-after-ms`.

The same headers calibrate what one request costs this instance's buckets. The planner's shares
leave headroom that an account may not need, and the account may count tokens a little
differently from the estimate the buckets are charged (TOKEN_COUNTING: tiktoken's count, or
OpenAI's limiter's estimate from characters, `tokens_from_characters`). One instance cannot
measure the server's count of its own requests (every instance's spending is in the same
`remaining`), but the whole fleet's can be read from the account's bank, in seconds of refill
(remaining × 60 / limit): over a window of `_WINDOW_SECONDS` the fleet spent
1 − Δbank / Δt of the limit. Each instance compares that with what the account should spend
(the limit, plus or minus the bank's distance from `_TARGET_BANK_SECONDS` over
`_BANK_HORIZON_SECONDS`) and multiplies its cost scale by the square root of their ratio when
it overspends, or underspends while it waits on its own bucket. A full bank (reset ≈ 0) hides
the spending: an instance that waits then lowers its scale by `_FULL_BANK_STEP`.

The sum over instances stays within the account by construction (issue 14): an instance's
allowance is its share ÷ its scale, and the scale never falls below share × instances ÷ the
account's limit (`x-ratelimit-limit-*`), so no instance ever takes more than 1/instances of the
account in the unit its buckets count, however the others behave; the planner's
ReservedConcurrency caps how many run at once. Raising the scale (backing off) is bounded
only by `_SCALE_BOUNDS`. For requests the bound is exact; for tokens it holds in the account's
unit when the account counts a request as no more than TOKEN_COUNTING's estimate. An account
that counts fewer is left partly unused rather than overrun; one that counts more is held by
the calibration (the scale rises, up to 4) and the header pauses, not by construction.

Written by hand because no limiter library reads OpenAI's headers. It holds no asyncio
primitives, so one instance survives across event loops (Lambda invocations outside the runtime).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Pause when a 429 carries no retry-after.
_DEFAULT_THROTTLE_PAUSE = 1.0
# Never trust a header to stop an instance longer than this.
_MAX_PAUSE = 60.0
# Calibration (module docstring). 5 s of bank leaves a 429 margin of hundreds of requests at any
# tier and fits the offline server's 15-s bucket (`make bench`) as well as OpenAI's 60-s one.
_TARGET_BANK_SECONDS = 5.0
_BANK_HORIZON_SECONDS = 10.0
# Spend at most 1.5 × the limit while the bank is large, at least half of it while it refills.
_SPEND_BOUNDS = (0.5, 1.5)
_WINDOW_SECONDS = 2.0
_SCALE_BOUNDS = (0.25, 4.0)
# A reset shorter than this means the account's bucket is full.
_FULL_RESET_SECONDS = 0.05
_FULL_BANK_STEP = 0.1
_KINDS = ("requests", "tokens")

# How an account counts a request against its TPM: "tiktoken" (the o200k_base prompt tokens that
# usage reports) or "characters" (OpenAI's limiter: an estimate from the request's characters).
TokenCounting = Literal["tiktoken", "characters"]
# OpenAI's rule of thumb: one token is about four characters of English text.
CHARACTERS_PER_TOKEN = 4


def tokens_from_characters(texts: list[str]) -> int:
    """OpenAI's limiter's estimate of a request's prompt: its characters / 4, without tokenising.

    Its rate-limits guide: "Your rate limit is calculated as the maximum of max_tokens and the
    estimated number of tokens based on the character count of your request"
    (platform.openai.com/docs/guides/rate-limits, error mitigation); users report a guess of
    about four characters a token, with max_tokens × n counted on top
    (community.openai.com/t/360359, /413769). For Japanese it is about a third of tiktoken's count.
    """
    return math.ceil(sum(len(text) for text in texts) / CHARACTERS_PER_TOKEN)


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
        instances: int = 0,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(requests_per_minute, burst_seconds, now) if requests_per_minute > 0 else None
        self._tokens = _Bucket(tokens_per_minute, burst_seconds, now) if tokens_per_minute > 0 else None
        # How many instances share the account (the planner's ReservedConcurrency); 0 = unknown.
        self._instances = instances
        self._paused_until = 0.0
        self._last_tokens = 1
        # What one request (one tiktoken token) costs the bucket, calibrated by observe().
        self._scale = dict.fromkeys(_KINDS, 1.0)
        self._waited_at = dict.fromkeys(_KINDS, -math.inf)
        # Per kind: (time, bank seconds, full) at the start of the current window.
        self._window: dict[str, tuple[float, float, bool]] = {}

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of `tokens` tokens fits; return the seconds waited.

        The reservation happens before the first await, so concurrent callers are served in
        arrival order. A pause that starts while a caller sleeps delays it too.
        """
        started = self._clock()
        self._last_tokens = max(1, tokens)
        wait = max(0.0, self._paused_until - started)
        for kind, bucket, amount in (("requests", self._requests, 1), ("tokens", self._tokens, tokens)):
            if bucket is None:
                continue
            own_wait = bucket.reserve(amount * self._scale[kind], started)
            if own_wait > 0:
                self._waited_at[kind] = started
            wait = max(wait, own_wait)
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
        else:
            self._pause_for_room(headers, now)
        for kind in _KINDS:
            self._calibrate(kind, headers, now)

    def _pause_for_room(self, headers: Mapping[str, str], now: float) -> None:
        """Pause everyone until the next request (the last one's size) fits the account."""
        for kind, need in (("requests", 1.0), ("tokens", self._last_tokens * self._scale["tokens"])):
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

    def _lowest_scale(self, kind: str, limit: float) -> float:
        """The scale at which this instance takes 1/instances of the account's `limit`, or its
        planned share when the number of instances is unknown (module docstring)."""
        bucket = self._requests if kind == "requests" else self._tokens
        if bucket is None or self._instances < 1:
            return 1.0
        return bucket.rate * 60 * self._instances / limit

    def _calibrate(self, kind: str, headers: Mapping[str, str], now: float) -> None:
        """At the end of each window, scale what a request of `kind` costs by the fleet's spending."""
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        if remaining is None or not limit:
            return
        # The cap binds first: scale × factor below it would let this instance overrun its share.
        lowest = self._lowest_scale(kind, limit)
        self._scale[kind] = max(self._scale[kind], lowest)
        bank = remaining * 60 / limit
        reset_value = headers.get(f"x-ratelimit-reset-{kind}")
        full = reset_value is not None and parse_reset(reset_value) < _FULL_RESET_SECONDS
        started = self._window.get(kind)
        if started is not None and now - started[0] < _WINDOW_SECONDS:
            return
        self._window[kind] = (now, bank, full)
        if started is None:
            return
        window_start, start_bank, start_full = started
        waited = self._waited_at[kind] >= window_start
        if full or start_full:
            factor = 1 - _FULL_BANK_STEP if waited else 1.0
        else:
            spent = max(0.05, 1 - (bank - start_bank) / (now - window_start))
            low, high = _SPEND_BOUNDS
            wanted = min(high, max(low, 1 + (bank - _TARGET_BANK_SECONDS) / _BANK_HORIZON_SECONDS))
            factor = math.sqrt(spent / wanted) if spent > wanted or waited else 1.0
        low, high = _SCALE_BOUNDS
        self._scale[kind] = max(lowest, min(high, max(low, self._scale[kind] * factor)))
