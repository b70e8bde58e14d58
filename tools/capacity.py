"""`python -m tools capacity`: Lambda concurrency and per-instance budgets from the OpenAI limits.

An operator command run before a deploy, never in a Lambda (so it stays out of the layer).

docs/design.md invariant 7. Little's law for one SQS-fed function whose records of a batch run
concurrently (one OpenAI call each), so an invocation lasts about one call, not B of them:

    tokens_per_request = avg_input_tokens + max_output_tokens        (what OpenAI's TPM counts)
    limit_rpm          = min(RPM, TPM / tokens_per_request)           (the binding limit)
    budget_rpm         = headroom × limit_rpm                         (what the limiters allow)
    invocation_s       = latency_s + overhead_s
    concurrency        = ceil(limit_rpm / 60 × invocation_s / batch_size)
    MaximumConcurrency = min(1000, max(2, concurrency))               (Lambda's SQS bounds)
    ReservedConcurrency = MaximumConcurrency                          (one template parameter: never below it)
    per-instance RPM   = budget_rpm / ReservedConcurrency
    per-instance TPM   = headroom × TPM / ReservedConcurrency

Concurrency is sized for the full limit, not the budget: the fleet can always keep the
budget busy (about 1/headroom of slack against latency jitter) and the client-side limiters,
not a shortage of instances, hold the rate. Dividing by ReservedConcurrency, the hard cap on
environments running at once, keeps the sum of all instance budgets within the account's.

    python -m tools capacity --rpm 5000 --tpm 2000000 --latency-ms 400 \
        --batch-size 10 --avg-input-tokens 1045        (or --tier tier2 instead of the limits)
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Lambda's bounds for ScalingConfig.MaximumConcurrency on an SQS event source.
MIN_MAXIMUM_CONCURRENCY = 2
MAX_MAXIMUM_CONCURRENCY = 1000
# Keep 3% of each limit free: the token estimate before a call and OpenAI's own count differ
# by a few tokens, and other clients of the same organisation may spend a little.
DEFAULT_HEADROOM = 0.97
# DynamoDB read + conditional write, SQS and Powertools around the OpenAI call (measured by
# `make bench-overhead`, rounded up).
DEFAULT_OVERHEAD_MS = 50.0
# gpt-4o-mini limits per OpenAI usage tier, (RPM, TPM), from OpenAI's gpt-4o-mini model page
# as published in 2025; an organisation's Settings → Limits page is authoritative.
GPT_4O_MINI_TIERS: dict[str, tuple[float, float]] = {
    "tier1": (500, 200_000),
    "tier2": (5_000, 2_000_000),
    "tier3": (5_000, 4_000_000),
    "tier4": (10_000, 10_000_000),
    "tier5": (30_000, 150_000_000),
}

# The Batch API's own pool: prompt tokens enqueued at once per model (gpt-4o-mini, per tier, as
# OpenAI's limits page listed them in 2025; the Settings → Limits page is authoritative), and
# its per-batch bounds (docs/backfill.md).
GPT_4O_MINI_BATCH_QUEUE_TOKENS: dict[str, int] = {
    "tier1": 2_000_000,
    "tier2": 20_000_000,
    "tier3": 40_000_000,
    "tier4": 1_000_000_000,
    "tier5": 15_000_000_000,
}
BATCH_MAX_REQUESTS = 50_000


class BatchPlan(BaseModel):
    """BackfillStateMachine's shard size and Map concurrency for an enqueued-token limit.

    requests_per_shard = min(50,000, queue_tokens / avg_input_tokens)   (one shard must fit the queue)
    max_concurrency    = max(1, queue_tokens // (requests_per_shard × avg_input_tokens))
    """

    model_config = ConfigDict(frozen=True)

    queue_tokens: int
    avg_input_tokens: float
    requests_per_shard: int
    max_concurrency: int

    def parameter_overrides(self) -> str:
        return f"BackfillShardRequests={self.requests_per_shard} BackfillMaxConcurrency={self.max_concurrency}"


def plan_batch(queue_tokens: int, avg_input_tokens: float) -> BatchPlan:
    requests = max(1, min(BATCH_MAX_REQUESTS, math.floor(queue_tokens / avg_input_tokens)))
    concurrency = max(1, math.floor(queue_tokens / (requests * avg_input_tokens)))
    return BatchPlan(
        queue_tokens=queue_tokens,
        avg_input_tokens=avg_input_tokens,
        requests_per_shard=requests,
        max_concurrency=concurrency,
    )


class CapacityInputs(BaseModel):
    model_config = ConfigDict(frozen=True)

    rpm: float = Field(gt=0, description="Account requests per minute for the model")
    tpm: float = Field(gt=0, description="Account tokens per minute for the model")
    latency_ms: float = Field(ge=0, description="Expected OpenAI latency per request")
    batch_size: int = Field(ge=1, le=10_000, description="SQS records per invocation")
    avg_input_tokens: float = Field(gt=0, description="Average prompt tokens per request")
    max_output_tokens: int = Field(default=1, ge=1)
    overhead_ms: float = Field(default=DEFAULT_OVERHEAD_MS, ge=0, description="Per-invocation overhead")
    headroom: float = Field(default=DEFAULT_HEADROOM, gt=0, le=1)


class CapacityPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: CapacityInputs
    tokens_per_request: float
    bound: Literal["requests", "tokens"]
    limit_rpm: float
    budget_rpm: float
    invocation_seconds: float
    concurrency_needed: float
    maximum_concurrency: int
    reserved_concurrency: int
    instance_requests_per_minute: int
    instance_tokens_per_minute: int
    warnings: list[str]

    @property
    def articles_per_hour(self) -> float:
        return self.budget_rpm * 60

    def parameter_overrides(self) -> str:
        """The capacity part of `sam deploy --parameter-overrides` (the secret ARN is the user's)."""
        values = {
            "BatchSize": self.inputs.batch_size,
            # The template sets the event source's MaximumConcurrency to this same value.
            "ReservedConcurrency": self.reserved_concurrency,
            "InstanceRequestsPerMinute": self.instance_requests_per_minute,
            "InstanceTokensPerMinute": self.instance_tokens_per_minute,
        }
        return " ".join(f"{key}={value}" for key, value in values.items())


def plan_capacity(inputs: CapacityInputs) -> CapacityPlan:
    tokens_per_request = inputs.avg_input_tokens + inputs.max_output_tokens
    token_bound_rpm = inputs.tpm / tokens_per_request
    bound: Literal["requests", "tokens"] = "tokens" if token_bound_rpm < inputs.rpm else "requests"
    limit_rpm = min(inputs.rpm, token_bound_rpm)
    budget_rpm = inputs.headroom * limit_rpm
    invocation_seconds = (inputs.latency_ms + inputs.overhead_ms) / 1000
    needed = limit_rpm / 60 * invocation_seconds / inputs.batch_size
    warnings: list[str] = []
    maximum = max(MIN_MAXIMUM_CONCURRENCY, math.ceil(needed))
    if maximum > MAX_MAXIMUM_CONCURRENCY:
        warnings.append(
            f"{math.ceil(needed)} concurrent invocations needed but MaximumConcurrency stops at "
            f"{MAX_MAXIMUM_CONCURRENCY}: raise the batch size to reach the limit"
        )
        maximum = MAX_MAXIMUM_CONCURRENCY
    reserved = maximum
    # Floor, so the instances together never exceed the budget.
    instance_rpm = math.floor(budget_rpm / reserved)
    instance_tpm = math.floor(inputs.headroom * inputs.tpm / reserved)
    if instance_rpm < 1:
        warnings.append("the request budget per instance is under 1 per minute: lower the concurrency")
    if instance_tpm < tokens_per_request:
        warnings.append("one request needs more tokens than an instance gets per minute")
    return CapacityPlan(
        inputs=inputs,
        tokens_per_request=tokens_per_request,
        bound=bound,
        limit_rpm=limit_rpm,
        budget_rpm=budget_rpm,
        invocation_seconds=invocation_seconds,
        concurrency_needed=needed,
        maximum_concurrency=maximum,
        reserved_concurrency=reserved,
        instance_requests_per_minute=max(1, instance_rpm),
        instance_tokens_per_minute=max(1, instance_tpm),
        warnings=warnings,
    )


def render(plan: CapacityPlan) -> str:
    i = plan.inputs
    lines = [
        f"tokens per request      {plan.tokens_per_request:,.0f} ({i.avg_input_tokens:,.0f} in + "
        f"{i.max_output_tokens} out)",
        f"binding limit           {plan.bound}: {plan.limit_rpm:,.0f} requests/min "
        f"(RPM {i.rpm:,.0f}, TPM {i.tpm:,.0f} / tokens = {i.tpm / plan.tokens_per_request:,.0f})",
        f"budget (× {i.headroom})      {plan.budget_rpm:,.0f} requests/min = "
        f"{plan.articles_per_hour:,.0f} articles/hour",
        f"invocation duration     {plan.invocation_seconds * 1000:,.0f} ms "
        f"(latency {i.latency_ms:,.0f} + overhead {i.overhead_ms:,.0f}; {i.batch_size} records concurrent)",
        f"concurrency needed      {plan.concurrency_needed:,.2f}",
        f"MaximumConcurrency      {plan.maximum_concurrency}",
        f"ReservedConcurrency     {plan.reserved_concurrency}",
        f"per instance            {plan.instance_requests_per_minute:,} requests/min, "
        f"{plan.instance_tokens_per_minute:,} tokens/min",
        *(f"WARNING: {warning}" for warning in plan.warnings),
        "",
        f"sam deploy --parameter-overrides {plan.parameter_overrides()} "
        "OpenAIApiKeySecretArn=<your secret ARN> WebhookSecretArn=<your secret ARN>",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools capacity",
        description="Lambda concurrency and per-instance budgets from the OpenAI RPM/TPM limits.",
    )
    parser.add_argument("--tier", choices=sorted(GPT_4O_MINI_TIERS), help="gpt-4o-mini usage tier limits")
    parser.add_argument("--rpm", type=float, help="requests per minute (overrides --tier)")
    parser.add_argument("--tpm", type=float, help="tokens per minute (overrides --tier)")
    parser.add_argument("--latency-ms", type=float, required=True, help="expected OpenAI latency")
    parser.add_argument("--batch-size", type=int, required=True, help="SQS records per invocation")
    parser.add_argument("--avg-input-tokens", type=float, required=True, help="mean prompt tokens")
    parser.add_argument("--overhead-ms", type=float, default=DEFAULT_OVERHEAD_MS)
    parser.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM)
    parser.add_argument("--batch-queue-tokens", type=int, help="Batch API enqueued-token limit (overrides --tier's)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = parser.parse_args(argv)
    tier_rpm, tier_tpm = GPT_4O_MINI_TIERS[args.tier] if args.tier else (None, None)
    rpm, tpm = args.rpm or tier_rpm, args.tpm or tier_tpm
    if rpm is None or tpm is None:
        parser.error("give --tier, or both --rpm and --tpm")
    plan = plan_capacity(
        CapacityInputs(
            rpm=rpm,
            tpm=tpm,
            latency_ms=args.latency_ms,
            batch_size=args.batch_size,
            avg_input_tokens=args.avg_input_tokens,
            overhead_ms=args.overhead_ms,
            headroom=args.headroom,
        )
    )
    queue_tokens = args.batch_queue_tokens or (GPT_4O_MINI_BATCH_QUEUE_TOKENS[args.tier] if args.tier else None)
    batch = plan_batch(queue_tokens, args.avg_input_tokens) if queue_tokens else None
    if args.json:
        document = plan.model_dump(mode="json") | ({"batch": batch.model_dump(mode="json")} if batch else {})
        print(json.dumps(document, indent=2))
    else:
        print(render(plan))
        if batch:
            print(
                f"\nBatch API (backfill)    queue {batch.queue_tokens:,} tokens: {batch.requests_per_shard:,} "
                f"requests per shard, {batch.max_concurrency} shard(s) at once\n"
                f"sam deploy --parameter-overrides {batch.parameter_overrides()}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
