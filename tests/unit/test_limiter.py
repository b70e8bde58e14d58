"""The client-side limiter, on a fake clock: refill, request vs token bound, header back-off, fairness."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from categorizer.limiter import RateLimiter, parse_reset, retry_after_seconds

T = TypeVar("T")


class FakeClock:
    """Virtual time: sleepers wake in time order, and time jumps only when everyone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + seconds, self._seq, future))
        await future

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        async def drive() -> T:
            task = asyncio.ensure_future(main)
            while True:
                for _ in range(20):  # let every runnable task reach its next sleep
                    await asyncio.sleep(0)
                if task.done():
                    return task.result()
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)

        return asyncio.run(drive())


def _limiter(clock: FakeClock, rpm: float, tpm: float, burst_seconds: float = 1.0) -> RateLimiter:
    return RateLimiter(rpm, tpm, burst_seconds=burst_seconds, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("", 0.0)],
)
def test_parse_reset(value: str, seconds: float) -> None:
    assert parse_reset(value) == pytest.approx(seconds)


def test_retry_after_prefers_milliseconds() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "1"}) == pytest.approx(0.25)
    assert retry_after_seconds({"retry-after": "2"}) == pytest.approx(2.0)
    assert retry_after_seconds({}) is None


def test_burst_then_steady_refill_at_the_request_rate() -> None:
    # GIVEN 600 requests/min (10/s) with a one-second burst
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=0)

    async def run() -> list[float]:
        return [await limiter.acquire(10) for _ in range(30)]

    waits = clock.run(run())
    # THEN the first 10 go at once and the next 20 take 2 seconds, one every 0.1 s
    assert waits[:10] == [0.0] * 10
    assert clock.now - 1000.0 == pytest.approx(2.0)
    assert all(w == pytest.approx(0.1) for w in waits[10:])


def test_idle_time_does_not_build_a_bigger_burst() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=0)
    clock.now += 3600  # an hour idle

    async def run() -> list[float]:
        return [await limiter.acquire(10) for _ in range(11)]

    waits = clock.run(run())
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1)


def test_tokens_bind_when_requests_are_large() -> None:
    # GIVEN plenty of requests but 6,000 tokens/min (100/s) and requests of 50 tokens
    clock = FakeClock()
    limiter = _limiter(clock, rpm=60_000, tpm=6_000)

    async def run() -> None:
        for _ in range(12):
            await limiter.acquire(50)

    clock.run(run())
    # THEN 2 fit the 100-token burst and the other 10 need 500 tokens: 5 seconds
    assert clock.now - 1000.0 == pytest.approx(5.0)


def test_a_request_larger_than_the_bucket_waits_for_its_tokens() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=0, tpm=6_000)  # 100 tokens/s, bucket of 100

    async def run() -> float:
        return await limiter.acquire(400)

    assert clock.run(run()) == pytest.approx(3.0)


def test_concurrent_callers_are_served_in_arrival_order() -> None:
    # GIVEN 60 requests/min (1/s), a burst of one and ten callers arriving together
    clock = FakeClock()
    limiter = _limiter(clock, rpm=60, tpm=0)
    finished: list[tuple[int, float]] = []

    async def caller(index: int) -> None:
        await limiter.acquire(1)
        finished.append((index, clock.now - 1000.0))

    async def run() -> None:
        await asyncio.gather(*(caller(i) for i in range(10)))

    clock.run(run())
    # THEN they go in order, one per second, and none is starved
    assert [index for index, _ in finished] == list(range(10))
    assert [at for _, at in finished] == pytest.approx([float(i) for i in range(10)])


def test_exhausted_account_headers_pause_every_caller() -> None:
    # GIVEN an instance with room of its own, WHEN the account (3,000 a minute: one request
    # per 20 ms) says no request is left and its bucket is full again in 60 s
    clock = FakeClock()
    limiter = _limiter(clock, rpm=6000, tpm=0)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": "3000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "60s",
        }
    )

    async def run() -> float:
        return await limiter.acquire(1)

    # THEN the next request waits for one request's refill, not the whole reset
    assert clock.run(run()) == pytest.approx(0.02)


def test_token_headers_pause_until_the_last_request_size_fits() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=0, tpm=1e9)

    async def run() -> float:
        await limiter.acquire(500)
        # the account has 100 of the 500 tokens a request needs and refills 600,000 a minute
        limiter.observe(
            {
                "x-ratelimit-limit-tokens": "600000",
                "x-ratelimit-remaining-tokens": "100",
                "x-ratelimit-reset-tokens": "10s",
            }
        )
        return await limiter.acquire(500)

    assert clock.run(run()) == pytest.approx(400 / 10_000)


def test_headers_with_room_left_do_not_pause() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=60_000)
    limiter.observe(
        {
            "x-ratelimit-remaining-requests": "5",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "90000",
            "x-ratelimit-reset-tokens": "1s",
        }
    )

    async def run() -> float:
        return await limiter.acquire(10)

    assert clock.run(run()) == 0.0


def test_a_429_pauses_for_retry_after_ms() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=0)
    limiter.observe({"retry-after-ms": "750"}, status_code=429)

    async def run() -> float:
        return await limiter.acquire(1)

    assert clock.run(run()) == pytest.approx(0.75)


def test_a_pause_that_starts_while_waiting_delays_the_waiter() -> None:
    # GIVEN a caller already queued for 1 s, WHEN a 429 with retry-after 5 s comes back meanwhile
    clock = FakeClock()
    limiter = _limiter(clock, rpm=60, tpm=0)

    async def run() -> float:
        await limiter.acquire(1)
        queued = asyncio.create_task(limiter.acquire(1))
        await asyncio.sleep(0)
        limiter.observe({"retry-after": "5"}, status_code=429)
        return await queued

    # THEN it waits until the pause ends (5 s), not just its 1 s slot
    assert clock.run(run()) == pytest.approx(5.0)


def test_header_pause_is_capped() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=0)
    # (no limit header: the reset is all there is to go by)
    limiter.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h"})

    async def run() -> float:
        return await limiter.acquire(1)

    assert clock.run(run()) == pytest.approx(60.0)


def test_zero_budget_turns_the_limiter_off() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rpm=0, tpm=0)

    async def run() -> list[float]:
        return [await limiter.acquire(10_000) for _ in range(1000)]

    assert set(clock.run(run())) == {0.0}
