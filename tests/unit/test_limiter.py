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


class SimulatedAccount:
    """An OpenAI account's two buckets (15 s of refill, like `make bench`'s server), shared by a
    fleet: it counts each request's tokens as `server_ratio` × what the client charged its
    limiter, logs every admission, and answers with OpenAI's x-ratelimit headers, or a 429 when
    the request does not fit."""

    def __init__(self, clock: FakeClock, rpm: float, tpm: float, server_ratio: float) -> None:
        self.clock, self.server_ratio = clock, server_ratio
        self.limits = {"requests": rpm, "tokens": tpm}
        self.levels = {kind: limit / 4 for kind, limit in self.limits.items()}
        self.updated = clock.now
        self.admitted = {"requests": 0.0, "tokens": 0.0}
        # (time, instance, tokens as the server counted them) per admitted request.
        self.log: list[tuple[float, int, float]] = []
        self.refused = 0

    def admit(self, client_tokens: int, instance: int) -> tuple[dict[str, str], int]:
        elapsed, self.updated = self.clock.now - self.updated, self.clock.now
        for kind, limit in self.limits.items():
            self.levels[kind] = min(limit / 4, self.levels[kind] + elapsed * limit / 60)
        cost = {"requests": 1.0, "tokens": client_tokens * self.server_ratio}
        fits = all(self.levels[kind] >= cost[kind] for kind in cost)
        if fits:
            for kind in cost:
                self.levels[kind] -= cost[kind]
                self.admitted[kind] += cost[kind]
            self.log.append((self.clock.now, instance, cost["tokens"]))
        else:
            self.refused += 1
        headers = {"retry-after-ms": "100"} if not fits else {}
        for kind, limit in self.limits.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(int(limit))
            headers[f"x-ratelimit-remaining-{kind}"] = str(int(self.levels[kind]))
            headers[f"x-ratelimit-reset-{kind}"] = f"{(limit / 4 - self.levels[kind]) * 60 / limit:.3f}s"
        return headers, 200 if fits else 429

    def most_in_any_window(self, seconds: float, instance: int | None = None) -> dict[str, float]:
        """The most requests and server-counted tokens admitted in any `seconds` (of one instance)."""
        entries = [(t, tokens) for t, who, tokens in self.log if instance is None or who == instance]
        most = {"requests": 0.0, "tokens": 0.0}
        first, tokens_in_window = 0, 0.0
        for last, (now, tokens) in enumerate(entries):
            tokens_in_window += tokens
            while entries[first][0] <= now - seconds:
                tokens_in_window -= entries[first][1]
                first += 1
            most["requests"] = max(most["requests"], last - first + 1)
            most["tokens"] = max(most["tokens"], tokens_in_window)
        return most


# Three instances with the planner's shares of a 6,000 RPM / 360,000 TPM account for 100-token
# requests (tokens bind at 3,600/min; 0.97 headroom): 1,164 requests and 116,400 tokens each.
FLEET = 3
INSTANCE_RPM, INSTANCE_TPM = 1164, 116_400


def _run_fleet(
    account: SimulatedAccount, clock: FakeClock, *, instances: int = FLEET, late_start: float = 0.0
) -> dict[str, float]:
    """Three limiters told the fleet's size, ten records each in flight (300 ms calls), for 240
    virtual seconds (the last instance idle for its first `late_start`); returns the share of each
    of the account's limits admitted over the last 120 s."""
    limiters = [
        RateLimiter(INSTANCE_RPM, INSTANCE_TPM, instances=instances, clock=clock, sleep=clock.sleep)
        for _ in range(FLEET)
    ]
    end = clock.now + 240
    measured_from = clock.now + 120
    admitted_before: dict[str, float] = {}

    async def record_loop(index: int, limiter: RateLimiter) -> None:
        if index == FLEET - 1:
            await clock.sleep(late_start)
        while clock.now < end:
            await limiter.acquire(100)
            if clock.now >= measured_from and not admitted_before:
                admitted_before.update(account.admitted)
            headers, status = account.admit(100, index)
            await clock.sleep(0.3)
            limiter.observe(headers, status)

    async def run() -> None:
        await asyncio.gather(*(record_loop(i, limiter) for i, limiter in enumerate(limiters) for _ in range(10)))

    clock.run(run())
    return {
        kind: (account.admitted[kind] - admitted_before[kind]) / 120 * 60 / account.limits[kind]
        for kind in account.limits
    }


@pytest.mark.parametrize(
    ("server_ratio", "bound"),
    [
        # the server counts what the limiter charges (TOKEN_COUNTING is the account's), or half
        # as much again: tokens bind
        (1.0, "tokens"),
        (1.5, "tokens"),
    ],
)
def test_a_fleet_calibrates_to_the_binding_limit_as_the_server_counts(server_ratio: float, bound: str) -> None:
    # GIVEN the account counting `server_ratio` × what the limiters charge, and the fleet
    clock = FakeClock()
    account = SimulatedAccount(clock, rpm=6000, tpm=360_000, server_ratio=server_ratio)
    # WHEN they run flat out for four virtual minutes, reading the account's headers
    achieved = _run_fleet(account, clock)
    # THEN over the last two minutes the account is kept at its binding limit as the server
    # counts it (the planner's 0.97 is taken up), with almost no 429s
    assert 0.98 <= achieved[bound] <= 1.01
    assert max(achieved.values()) == achieved[bound]
    assert account.refused <= 0.005 * account.admitted["requests"]


@pytest.mark.parametrize("server_ratio", [1.0, 0.35])
def test_no_instance_takes_more_than_its_part_of_the_account_however_the_others_behave(server_ratio: float) -> None:
    # GIVEN the fleet against the account counting what the limiters charge (1.0) or a third of it
    # (0.35: the limiters count tiktoken tokens, the server Japanese characters / 4), one instance
    # idle for the first two minutes while the other two could use its part, then flat out
    clock = FakeClock()
    account = SimulatedAccount(clock, rpm=6000, tpm=360_000, server_ratio=server_ratio)
    # WHEN they run for four virtual minutes
    achieved = _run_fleet(account, clock, late_start=120)
    # THEN in no 10-s window does an instance take more than a third of the account's limits, nor
    # the fleet more than the limits (a bucket starts with one second of its rate: + 1 s)
    for kind, limit in account.limits.items():
        allowed = limit / 60 * (10 + 1)
        assert account.most_in_any_window(10)[kind] <= allowed
        for instance in range(FLEET):
            assert account.most_in_any_window(10, instance)[kind] <= allowed / FLEET
    # AND 429s stay within 0.5% of the requests
    assert account.refused <= 0.005 * account.admitted["requests"]
    # AND an account counting a third of the charge is left partly unused rather than overrun
    if server_ratio == 1.0:
        assert achieved["tokens"] >= 0.98
    else:
        assert achieved["tokens"] == pytest.approx(0.35, abs=0.02)


def test_without_the_fleet_s_size_an_instance_never_exceeds_its_planned_share() -> None:
    # GIVEN a fleet not told how many instances share the account, and a server counting a third
    # of the charge (the account has room to spare)
    clock = FakeClock()
    account = SimulatedAccount(clock, rpm=6000, tpm=360_000, server_ratio=0.35)
    # WHEN it runs flat out
    _run_fleet(account, clock, instances=0)
    # THEN no instance charges more than its planned share (in 10 s: 10 s of it plus a second's burst)
    for instance in range(FLEET):
        assert account.most_in_any_window(10, instance)["tokens"] <= INSTANCE_TPM / 60 * 11 * 0.35 + 1e-6


def test_a_healthy_bank_does_not_loosen_an_instance_that_never_waits() -> None:
    # GIVEN an instance of 600 requests/min whose callers never wait on it, and an account
    # reporting a full bank on every response
    clock = FakeClock()
    limiter = _limiter(clock, rpm=600, tpm=0)
    healthy = {"x-ratelimit-limit-requests": "6000", "x-ratelimit-remaining-requests": "6000"}

    async def light_load() -> None:
        for _ in range(200):
            await limiter.acquire(1)
            limiter.observe(healthy)
            await clock.sleep(1.0)

    clock.run(light_load())

    # WHEN a burst of 30 arrives
    async def burst() -> list[float]:
        return [await limiter.acquire(1) for _ in range(30)]

    waits = clock.run(burst())
    # THEN it is paced at the configured 10/s as before: the share grows only while it binds
    assert waits[:10] == [0.0] * 10
    assert all(w == pytest.approx(0.1) for w in waits[10:])


def test_cost_scales_stay_within_their_bounds() -> None:
    # GIVEN an instance of 60 requests/min, WHEN for 40 s the account reports a bank of half a
    # second that the fleet keeps spending (it should be refilling)
    clock = FakeClock()
    limiter = _limiter(clock, rpm=60, tpm=0)
    for _ in range(21):
        limiter.observe({"x-ratelimit-limit-requests": "6000", "x-ratelimit-remaining-requests": "50"})
        clock.now += 2.0

    async def run() -> list[float]:
        return [await limiter.acquire(1) for _ in range(4)]

    # THEN a request costs it at most 4 of its slots: one request per 4 s
    assert clock.run(run()) == pytest.approx([3.0, 4.0, 4.0, 4.0])
