"""Rate limits, fault injection and the admin endpoints of the offline OpenAI-compatible server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread
from local.openai_server.limits import format_duration
from tests.emulator.support import configure, training_lines, upload, wait_for_job


@pytest.fixture
def tuned(tmp_path: Path) -> Iterator[tuple[ServerHandle, str]]:
    """GIVEN a server with a trained model and no limits (tests set them at runtime)."""
    with serve_in_thread(OpenAIServerConfig(state_dir=tmp_path, seed=3)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines()))
        model = wait_for_job(client, job.id).fine_tuned_model
        assert model
        yield server, model


def call(client: openai.OpenAI, model: str) -> object:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "football match"}], max_tokens=1
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0004, "1ms"), (0.9999, "1s"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s"), (61.25, "1m1.25s")],
)
def test_durations_use_openai_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_rpm_limit_sends_headers_then_429_with_retry_after(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    # GIVEN 60 RPM with a bucket of one second (capacity 1)
    configure(server, rpm=60, tpm=100_000, bucket_seconds=1)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    # WHEN two requests arrive at once
    first = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "football"}], max_tokens=1
    )
    # THEN the first passes with x-ratelimit headers and the second is refused
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert re.fullmatch(r"\d{3}ms|1s", first.headers["x-ratelimit-reset-requests"])
    with pytest.raises(openai.RateLimitError) as refused:
        call(client, model)
    assert refused.value.code == "rate_limit_exceeded"
    assert 500 <= int(refused.value.response.headers["retry-after-ms"]) <= 1000
    assert refused.value.response.headers["retry-after"] == "1"
    stats = httpx2.get(f"{server.root_url}/_admin/stats").json()
    assert stats["status_429"] == 1 and stats["status_2xx"] >= 1
    assert sum(s["rate_limited"] for s in stats["timeline"]) == 1


def test_sdk_retry_waits_the_advertised_delay(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    configure(server, rpm=60, bucket_seconds=1)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=2)
    call(client, model)
    # WHEN the bucket is empty, the SDK gets a 429 and retries after retry-after-ms
    started = time.monotonic()
    call(client, model)
    elapsed = time.monotonic() - started
    # THEN the call succeeds after about one second (the refill time of one request)
    assert 0.8 <= elapsed <= 1.6


def test_tpm_limit_refuses_with_token_type(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    configure(server, tpm=60, bucket_seconds=1)  # one token per second
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        call(client, model)
    assert isinstance(refused.value.body, dict) and refused.value.body["type"] == "tokens"
    assert "tokens per min (TPM)" in refused.value.message


@pytest.mark.parametrize("status", [500, 503])
def test_injected_errors_raise_server_errors(tuned: tuple[ServerHandle, str], status: int) -> None:
    server, model = tuned
    configure(server, error_rate=1.0, error_statuses=[status])
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.InternalServerError) as error:
        call(client, model)
    assert error.value.status_code == status
    stats = httpx2.get(f"{server.root_url}/_admin/stats").json()
    assert stats["injected_errors"] == 1 and stats["status_5xx"] == 1


def test_slow_responses_outlast_the_client_timeout(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    configure(server, slow_rate=1.0, slow_ms=800)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        call(client, model)


def test_latency_and_spikes_delay_answers(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    configure(server, latency_ms=100, jitter_ms=50, spike_rate=1.0, spike_ms=200)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    started = time.monotonic()
    call(client, model)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert httpx2.get(f"{server.root_url}/_admin/stats").json()["latency_spikes"] == 1


def test_admin_config_validates_and_stats_reset(tuned: tuple[ServerHandle, str]) -> None:
    server, model = tuned
    assert httpx2.post(f"{server.root_url}/_admin/config", json={"error_rate": 2}).status_code == 400
    assert httpx2.post(f"{server.root_url}/_admin/config", json={"port": 1}).status_code == 400
    assert configure(server, rpm=5)["rpm"] == 5
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    call(client, model)
    stats = httpx2.get(f"{server.root_url}/_admin/stats").json()
    assert stats["total_tokens"] == stats["prompt_tokens"] + stats["completion_tokens"] > 0
    assert stats["timeline"][-1]["accepted"] >= 1
    reset = httpx2.post(f"{server.root_url}/_admin/reset-stats").json()
    assert reset["requests"] == 0 and reset["timeline"] == []


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OpenAIServerConfig(host="0.0.0.0")


@pytest.mark.parametrize(
    ("counting", "expected"),
    # "日本語の記事です。" is 9 characters (ceil(9 / 4) = 3) and more tiktoken tokens than that.
    [("characters", 3 + 2), ("tiktoken", None)],
)
def test_token_counting_mode_sets_what_the_token_headers_subtract(
    tuned: tuple[ServerHandle, str], counting: str, expected: int | None
) -> None:
    server, model = tuned
    # GIVEN a token limit counted one way or the other
    configure(server, tpm=100_000, token_counting=counting)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    # WHEN one request of 9 characters asks for max_tokens=2
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "日本語の記事です。"}], max_tokens=2
    )
    # THEN remaining-tokens went down by the server's count of it: characters / 4 plus max_tokens,
    # or the tiktoken prompt (what usage reports, whatever the mode) plus max_tokens
    used = 100_000 - int(raw.headers["x-ratelimit-remaining-tokens"])
    usage = raw.parse().usage
    assert usage is not None
    assert used == (expected if expected is not None else usage.prompt_tokens + 2)
    assert usage.prompt_tokens > 5
    timeline = httpx2.get(f"{server.root_url}/_admin/stats").json()["timeline"]
    assert sum(s["accepted_tokens"] for s in timeline) == used
