"""`python -m tools capacity` (docs/design.md invariant 7): formula edges, CLI, and the samconfig profiles."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from tools.capacity import (
    GPT_4O_MINI_BATCH_QUEUE_TOKENS,
    GPT_4O_MINI_TIERS,
    CapacityInputs,
    main,
    plan_batch,
    plan_capacity,
)

REPO = Path(__file__).resolve().parents[2]


def _inputs(**overrides: float) -> CapacityInputs:
    values: dict[str, float] = {
        "rpm": 3000,
        "tpm": 10_000_000,
        "latency_ms": 300,
        "batch_size": 10,
        "avg_input_tokens": 500,
        "overhead_ms": 50,
        "headroom": 0.97,
    }
    return CapacityInputs.model_validate(values | overrides)


def test_rpm_bound_follows_littles_law() -> None:
    # GIVEN plenty of tokens, 6,000 RPM, 500 ms per invocation and 10 records per batch
    plan = plan_capacity(_inputs(rpm=6000, latency_ms=450))
    # THEN the request limit binds and concurrency = 100 rps × 0.5 s / 10 = 5
    assert plan.bound == "requests"
    assert plan.limit_rpm == 6000
    assert plan.concurrency_needed == pytest.approx(5.0)
    assert plan.maximum_concurrency == 5
    assert plan.budget_rpm == pytest.approx(0.97 * 6000)
    assert plan.instance_requests_per_minute == math.floor(0.97 * 6000 / 5)


def test_tpm_bound_when_tokens_run_out_first() -> None:
    # GIVEN 1,000 tokens per request and a TPM that allows only 200 requests per minute
    plan = plan_capacity(_inputs(rpm=5000, tpm=200_000, avg_input_tokens=999))
    # THEN tokens bind, and the request budget is the token-bound rate
    assert plan.bound == "tokens"
    assert plan.tokens_per_request == 1000
    assert plan.limit_rpm == pytest.approx(200)
    assert plan.budget_rpm == pytest.approx(194)
    assert plan.instance_tokens_per_minute == math.floor(0.97 * 200_000 / plan.reserved_concurrency)
    assert plan.instance_tokens_per_minute >= plan.tokens_per_request


def test_minimum_maximum_concurrency_is_two() -> None:
    # GIVEN a load one instance could carry
    plan = plan_capacity(_inputs(rpm=60, latency_ms=100))
    # THEN Lambda's SQS minimum of 2 applies and the budget is split over both
    assert plan.concurrency_needed < 1
    assert plan.maximum_concurrency == 2
    assert plan.instance_requests_per_minute == math.floor(0.97 * 60 / 2)


def test_maximum_concurrency_caps_at_one_thousand_with_a_warning() -> None:
    plan = plan_capacity(_inputs(rpm=1_000_000, tpm=1e12, latency_ms=2000, batch_size=1))
    assert plan.maximum_concurrency == 1000
    assert any("batch size" in warning for warning in plan.warnings)


def test_reserved_concurrency_never_below_maximum_and_budgets_never_exceed_the_account() -> None:
    for rpm, tpm in [*GPT_4O_MINI_TIERS.values(), (3000, 1e9), (60, 1e9)]:
        for batch_size in (1, 5, 10, 50):
            plan = plan_capacity(_inputs(rpm=rpm, tpm=tpm, batch_size=batch_size))
            assert plan.maximum_concurrency <= plan.reserved_concurrency
            assert 2 <= plan.maximum_concurrency <= 1000
            assert plan.instance_requests_per_minute * plan.reserved_concurrency <= 0.97 * rpm + 1e-6
            assert plan.instance_tokens_per_minute * plan.reserved_concurrency <= 0.97 * tpm + 1e-6


def test_concurrency_can_carry_the_full_limit() -> None:
    # GIVEN the planned fleet, WHEN every instance runs full batches back to back
    plan = plan_capacity(_inputs(rpm=3000, latency_ms=300))
    fleet_rpm = plan.maximum_concurrency * plan.inputs.batch_size / plan.invocation_seconds * 60
    # THEN it can send at least the limit, so the limiters (not a lack of instances) hold the rate
    assert fleet_rpm >= plan.limit_rpm


@pytest.mark.parametrize("field", ["rpm", "tpm", "avg_input_tokens"])
def test_rejects_non_positive_limits(field: str) -> None:
    with pytest.raises(ValidationError):
        _inputs(**{field: 0})


def test_cli_prints_the_deploy_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tier", "tier2", "--latency-ms", "400", "--batch-size", "10", "--avg-input-tokens", "535"]) == 0
    out = capsys.readouterr().out
    assert "binding limit           tokens" in out
    assert (
        "sam deploy --parameter-overrides BatchSize=10 ReservedConcurrency=3 "
        "InstanceRequestsPerMinute=1206 InstanceTokensPerMinute=646666" in out
    )


def test_cli_needs_limits() -> None:
    with pytest.raises(SystemExit):
        main(["--latency-ms", "400", "--batch-size", "10", "--avg-input-tokens", "535"])


@pytest.mark.parametrize("tier", sorted(GPT_4O_MINI_TIERS))
def test_samconfig_profile_matches_the_planner(tier: str) -> None:
    # GIVEN the inputs samconfig.toml documents, THEN each tier's overrides are the planner's output
    profiles = tomllib.loads((REPO / "samconfig.toml").read_text())
    rpm, tpm = GPT_4O_MINI_TIERS[tier]
    plan = plan_capacity(CapacityInputs(rpm=rpm, tpm=tpm, latency_ms=400, batch_size=10, avg_input_tokens=1045))
    deploy = profiles[tier]["deploy"]["parameters"]
    assert deploy["parameter_overrides"] == plan.parameter_overrides()
    assert "OpenAIApiKeySecretArn" not in deploy["parameter_overrides"]


def test_batch_plan_fits_one_shard_in_the_queue_and_runs_as_many_as_fit() -> None:
    # GIVEN tier 1's 2M enqueued tokens and ~1,045-token prompts, WHEN planned
    small = plan_batch(GPT_4O_MINI_BATCH_QUEUE_TOKENS["tier1"], 1045)
    # THEN a shard is cut to what the queue holds, one at a time
    assert (small.requests_per_shard, small.max_concurrency) == (1913, 1)
    assert small.requests_per_shard * 1045 <= 2_000_000
    # AND with tier 4's 1B tokens full 50,000-request shards run 19 at once
    large = plan_batch(GPT_4O_MINI_BATCH_QUEUE_TOKENS["tier4"], 1045)
    assert (large.requests_per_shard, large.max_concurrency) == (50_000, 19)
    assert large.parameter_overrides() == "BackfillShardRequests=50000 BackfillMaxConcurrency=19"
