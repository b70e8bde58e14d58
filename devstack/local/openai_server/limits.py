"""Requests- and tokens-per-minute limits as OpenAI applies them, plus the server's counters."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


def format_duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format (Go durations): "20ms", "1.5s", "6m0s"."""
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, secs = divmod(millis / 1000, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


@dataclass
class TokenBucket:
    """Refills continuously at limit/60 per second up to `capacity`."""

    limit_per_minute: int
    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.limit_per_minute / 60.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` fits (the whole capacity if it never can)."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    def time_to_full(self) -> float:
        return (self.capacity - self.level) / self.rate


@dataclass(frozen=True)
class Admission:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    exhausted: str = ""  # "requests" or "tokens"
    limit: int = 0


class RateLimiter:
    def __init__(self, rpm: int, tpm: int, bucket_seconds: float) -> None:
        now = time.monotonic()
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        for name, limit in (("requests", rpm), ("tokens", tpm)):
            if limit:
                capacity = max(1.0, limit * bucket_seconds / 60.0)
                self._buckets[name] = TokenBucket(limit, capacity, capacity, now)

    def admit(self, tokens: int) -> Admission:
        needs = {"requests": 1.0, "tokens": float(tokens)}
        with self._lock:
            now = time.monotonic()
            waits: dict[str, float] = {}
            for name, bucket in self._buckets.items():
                bucket.refill(now)
                if bucket.level < needs[name] or needs[name] > bucket.capacity:
                    waits[name] = bucket.wait_for(needs[name])
            if not waits:
                for name, bucket in self._buckets.items():
                    bucket.level -= needs[name]
            headers = self._headers()
        if not waits:
            return Admission(True, headers)
        exhausted = max(waits, key=lambda name: waits[name])
        return Admission(False, headers, waits[exhausted], exhausted, self._buckets[exhausted].limit_per_minute)

    def _headers(self) -> dict[str, str]:
        headers = {}
        for name, bucket in self._buckets.items():
            headers[f"x-ratelimit-limit-{name}"] = str(bucket.limit_per_minute)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.time_to_full())
        return headers


@dataclass
class Stats:
    """Chat completion counters and a per-second timeline of requests admitted and refused (429).

    Only chat completions count: the limits and faults apply to them, and the benchmarks
    plot them; fine-tuning calls (uploads, polling) would blur the figures.
    """

    started_at: float = field(default_factory=time.time)
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    timeline: dict[int, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self.counters[name] += value

    def response(self, status: int) -> None:
        self.count(requests=1, **{f"status_{status // 100}xx": 1}, **({"status_429": 1} if status == 429 else {}))

    def admission(self, allowed: bool, tokens: int) -> None:
        with self._lock:
            second = self.timeline.setdefault(
                int(time.time()), {"accepted": 0, "rate_limited": 0, "accepted_tokens": 0}
            )
            if allowed:
                second["accepted"] += 1
                second["accepted_tokens"] += tokens
            else:
                second["rate_limited"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            names = (
                "requests", "status_2xx", "status_4xx", "status_429", "status_5xx",
                "prompt_tokens", "completion_tokens", "total_tokens",
                "injected_errors", "latency_spikes", "slow_responses",
            )  # fmt: skip
            return {
                "started_at": self.started_at,
                **{name: self.counters.get(name, 0) for name in names},
                "timeline": [{"second": second, **self.timeline[second]} for second in sorted(self.timeline)],
            }
