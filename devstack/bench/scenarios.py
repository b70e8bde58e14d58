"""`make bench-scenarios`: throughput where users live — backlogs, bursts, a cold start, a token-bound account.

Reuses `bench.throughput` (the OpenAI server in its own process, the planner-sized offline
stack, the paced webhook publisher, the figures and the first implementation) for three
accounts, each on its own server and stack, with the first implementation driven against the
same server after the stack's scenarios:

* requests: R RPM (default 1,800: 2 cores drive it with a 2 × R publisher; `make bench` runs
  3,000 at 1 × R), a large TPM, the demo corpus. Scenarios in order on one stack:
  cold start (60 s of R queued before the pollers start, cold instances), backlog (2 × R for
  180 s), burst (10 × R for 30 s, then 0.3 × R for 60 s), steady (0.8 × R for 150 s:
  publish → result latency);
* tokens: tier 2 scaled by --tier-scale for 2 cores (default 0.4: RPM 2,000, TPM 800,000),
  livedoor's real articles (read by path, --data) at the 1,024-token budget, the server counting
  tiktoken tokens: token-bound at TPM / ~850 (≈ 940 requests/min at 0.4). Backlog at 2 × that;
* tokens-as-openai: the same account, the server counting like OpenAI's limiter (characters / 4
  + max_tokens: categorizer.limiter.tokens_from_characters). For Japanese that is about a third
  of tiktoken's count, so the account is requests-bound (its RPM: 2,000/min at 0.4); the planner plans in that
  unit (`--token-counting characters`) and the stack's limiters count in it (TokenCounting).
  Backlog at 2 × the requests limit.

Per scenario: achieved share of the binding limit (requests or tokens, as the server counts
them) over the steady window (from `warmup` after the start until the queue drained, or until
publishing ended when load < R), 429s over the whole scenario, lost (the `make chaos` audit),
publish → result p50/p95. JSON and one PNG per account (requests/s and tokens/s against the
limits) in bench/results/. --quick divides every duration by 4 (a smoke run: windows < 120 s).

    .venv/bin/python -m bench.scenarios [--quick] [--accounts requests,tokens,tokens-as-openai]
        [--data ../shared/data/livedoor-dev.jsonl.gz] [--rpm 1800] [--tier-scale 0.4] [--tag run1]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2

from bench.chaos import audit, say
from bench.livedoor_finetune import DEFAULT_DATA, strip_tags
from bench.throughput import (
    AVG_INPUT_TOKENS,
    LARGE_TPM,
    OFFLINE_OVERHEAD_MS,
    RESULTS,
    Profile,
    _admin,
    cores_used,
    cpu_snapshot,
    generate_articles,
    openai_server,
    percentiles,
    publish_offsets,
    publish_paced,
    result_rows,
    run_baseline,
    totals,
    window_figures,
)
from categorizer.classifier import MAX_TOKENS
from categorizer.limiter import TokenCounting
from categorizer.prompt import build_prompt
from local.demo_run import ensure_active_model
from local.openai_server.chat import ChatRequest, rate_limit_tokens
from local.stack import OfflineStack, StackOptions
from tools.capacity import CapacityInputs, CapacityPlan, plan_capacity

# The server's burst window: the one `make bench` uses (60·k s for its k = 1/4).
BUCKET_SECONDS = 15.0
# The first implementation against each account: 2 chunks of 8,000·k rows, a sleep of 60·k s.
BASELINE = Profile(articles=0, warmup_seconds=0.0, baseline_scale=1 / 8, baseline_chunks=2)
TIER2 = (5000, 2_000_000)  # gpt-4o-mini, usage tier 2: RPM, TPM


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    phases: tuple[tuple[float, float], ...]  # (seconds, offered load as a multiple of the binding rate)
    cold_start: bool = False  # everything queued before the pollers start
    warmup_seconds: float = 10.0


@dataclasses.dataclass(frozen=True)
class Account:
    name: str
    rpm: int
    tpm: int
    token_counting: TokenCounting
    livedoor: bool
    scenarios: tuple[Scenario, ...]


def accounts(rpm: int, tier_scale: float) -> dict[str, Account]:
    backlog = Scenario("backlog", ((180.0, 2.0),))
    tier2 = (round(TIER2[0] * tier_scale), round(TIER2[1] * tier_scale))
    return {
        "requests": Account(
            "requests",
            rpm,
            LARGE_TPM,
            "tiktoken",
            livedoor=False,
            scenarios=(
                Scenario("cold-start", ((60.0, 1.0),), cold_start=True),
                backlog,
                Scenario("burst", ((30.0, 10.0), (60.0, 0.3))),
                Scenario("steady-0.8R", ((150.0, 0.8),)),
            ),
        ),
        "tokens": Account("tokens", *tier2, "tiktoken", livedoor=True, scenarios=(backlog,)),
        "tokens-as-openai": Account("tokens-as-openai", *tier2, "characters", livedoor=True, scenarios=(backlog,)),
    }


def livedoor_source(path: Path) -> Callable[[int, str], list[dict[str, Any]]]:
    """`count` livedoor articles (cycled, each with its own id), as CMS events."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        # 31 of livedoor's titles are empty once their tags are stripped: ingest would reject the
        # whole webhook batch of such an article (400, all or nothing), lowering the offered load.
        corpus = [row for row in map(json.loads, lines) if strip_tags(row["title"]).strip()]

    def articles(count: int, prefix: str) -> list[dict[str, Any]]:
        events = []
        for index in range(count):
            row = corpus[index % len(corpus)]
            article_id = f"{prefix}-{index:06d}"
            events.append(
                {
                    "article_id": article_id,
                    "url": f"https://bench.example/{article_id}",
                    "title": strip_tags(row["title"]),
                    "body": row["body"],
                    "language": "ja",
                    "version": 1,
                }
            )
        return events

    return articles


def mean_tokens(
    source: Callable[[int, str], list[dict[str, Any]]], budget: int, counting: TokenCounting
) -> tuple[float, float]:
    """(mean tiktoken prompt, what the planner is told; mean TPM cost as the server counts it)."""
    prompts = [build_prompt(a["title"], a["body"], budget) for a in source(2000, "plan")]
    requests = [ChatRequest(model="m", messages=list(p.messages), max_tokens=MAX_TOKENS) for p in prompts]
    server = [rate_limit_tokens(request, counting) for request in requests]
    return statistics.fmean(p.prompt_tokens for p in prompts), statistics.fmean(server)


def plan_for(account: Account, args: argparse.Namespace, avg_input_tokens: float) -> CapacityPlan:
    """The planner's output in the unit the account counts (`avg_input_tokens` in it)."""
    return plan_capacity(
        CapacityInputs(
            rpm=account.rpm,
            tpm=account.tpm,
            latency_ms=args.latency_ms,
            batch_size=args.batch_size,
            avg_input_tokens=avg_input_tokens,
            token_counting=account.token_counting,
            overhead_ms=OFFLINE_OVERHEAD_MS,
        )
    )


def run_scenario(
    stack: OfflineStack,
    scenario: Scenario,
    account: Account,
    source: Callable[[int, str], list[dict[str, Any]]],
    args: argparse.Namespace,
    base_url: str,
    server_pid: int,
    scale: float,
    binding_rpm: float,
) -> dict[str, Any]:
    binding_per_second = binding_rpm / 60
    phases = [(seconds * scale, load * binding_per_second) for seconds, load in scenario.phases]
    offsets = publish_offsets(phases)
    if scenario.cold_start:
        offsets = [0.0] * len(offsets)
    articles = source(len(offsets), f"{account.name}-{scenario.name}-{int(time.time())}")
    _admin(base_url, "reset-stats", "POST")
    say(
        f"[{account.name}/{scenario.name}] publishing {len(articles):,} articles over {sum(p[0] for p in phases):.0f} s"
    )
    if not scenario.cold_start and not stack.pollers:
        # Running before the first article is published: a stack's first scenario that is not a
        # cold start (the token accounts' backlog) would otherwise queue everything unprocessed.
        stack.start_pollers(warm=True)
    t0 = time.time()
    cpu_before = cpu_snapshot(server_pid)
    published, accepted, statuses = publish_paced(stack, articles, offsets, args.publish_batch)
    publish_ended = time.time()
    if scenario.cold_start:
        t0 = time.time()  # the scenario starts when the pollers do, with a full queue
        stack.start_pollers(warm=False)
    drained = stack.wait_until_drained(args.drain_timeout)
    drained_at = time.time()
    cpu = cores_used(cpu_before, cpu_snapshot(server_pid), drained_at - t0)
    server = _admin(base_url, "stats")
    audited = audit(stack, accepted)
    rows = {str(r["article_id"]): r for r in result_rows(stack) if str(r["article_id"]) in published}
    latencies = [
        datetime.fromisoformat(str(row["categorized_at"])).timestamp() - published[article_id]
        for article_id, row in rows.items()
    ]
    offered = max(load for _, load in scenario.phases)
    # Steady: the queue held work until it drained (load ≥ 1), or publishing at a rate below the limit.
    window_end = drained_at - 2 if offered >= 1 or scenario.cold_start else publish_ended
    figures = window_figures(server["timeline"], (t0 + scenario.warmup_seconds, window_end), account.rpm, account.tpm)
    whole = totals(server)
    say(
        f"[{account.name}/{scenario.name}] {figures['achieved_ratio']:.3f} of the binding limit, "
        f"429s {whole['share_429']:.2%}, lost {audited['lost']}, p95 {percentiles(latencies)['p95']} s"
    )
    return {
        "phases_seconds_x_load": [[seconds * scale, load] for seconds, load in scenario.phases],
        "cold_start": scenario.cold_start,
        "articles_published": len(published),
        "articles_accepted": len(accepted),
        "ingest_statuses": statuses,
        "drained": drained,
        "seconds_publishing": round(publish_ended - t0, 1) if not scenario.cold_start else 0.0,
        "seconds_to_drain": round(drained_at - t0, 1),
        **figures,
        "whole_run": whole,
        "latency_seconds": percentiles(latencies),
        "rows": audited["rows"],
        "dead_lettered": audited["dead_lettered"],
        "lost": audited["lost"],
        "lost_examples": audited["lost_examples"],
        "lost_where": audited.get("lost_where", {}),
        "cores_used": cpu,
        "timeline": server["timeline"],
        "t0": t0,
    }


def run_account(account: Account, args: argparse.Namespace, scale: float) -> dict[str, Any]:
    source = livedoor_source(args.data) if account.livedoor else generate_articles
    avg_tokens, server_tokens = (
        mean_tokens(source, args.input_token_budget, account.token_counting)
        if account.livedoor
        else (AVG_INPUT_TOKENS, AVG_INPUT_TOKENS + 1)
    )
    # The planner is told the prompt as the account counts it (server_tokens includes max_tokens).
    plan = plan_for(account, args, server_tokens - MAX_TOKENS)
    # The binding limit as the server counts: offered loads are multiples of it.
    binding_rpm = min(account.rpm, account.tpm / server_tokens)
    say(
        f"[{account.name}] RPM {account.rpm:,}, TPM {account.tpm:,} counted as {account.token_counting}; plan: "
        f"{plan.bound}-bound at {plan.limit_rpm:,.0f}/min, ReservedConcurrency {plan.reserved_concurrency}, "
        f"{plan.instance_requests_per_minute}/min and {plan.instance_tokens_per_minute:,} tokens/min per instance; "
        f"as the server counts ({server_tokens:,.0f} tokens a request): {binding_rpm:,.0f}/min"
    )
    server_args = argparse.Namespace(rpm=account.rpm, latency_ms=args.latency_ms, jitter_ms=0.0)
    options = StackOptions(
        start_openai=False,
        queue_visibility_timeout=60,
        function_env_overrides={},
        parameter_overrides={
            "BatchSize": str(plan.inputs.batch_size),
            "ReservedConcurrency": str(plan.reserved_concurrency),
            "InstanceRequestsPerMinute": str(plan.instance_requests_per_minute),
            "InstanceTokensPerMinute": str(plan.instance_tokens_per_minute),
            "TokenCounting": plan.inputs.token_counting,
        },
    )
    results: dict[str, Any] = {}
    with openai_server(server_args, BUCKET_SECONDS, account.tpm, account.token_counting) as (base_url, pid):
        options.function_env_overrides["OPENAI_BASE_URL"] = base_url
        with OfflineStack.start(options, progress=lambda line: say(f"  {line}")) as stack:
            ensure_active_model(stack)
            stack.serve_http_apis()
            for scenario in account.scenarios:
                results[scenario.name] = run_scenario(
                    stack, scenario, account, source, args, base_url, pid, scale, binding_rpm
                )
        models = httpx2.get(f"{base_url}/models", headers={"Authorization": "Bearer x"}, timeout=10.0).json()
        model_id = next(m["id"] for m in models["data"] if m["id"].startswith("ft:"))
        baseline_args = argparse.Namespace(rpm=account.rpm, input_token_budget=args.input_token_budget)
        baseline = run_baseline(baseline_args, BASELINE, base_url, model_id, source, account.tpm)
    return {
        "limits": {"rpm": account.rpm, "tpm": account.tpm, "token_counting": account.token_counting},
        "plan": {
            "bound": plan.bound,
            "limit_rpm": round(plan.limit_rpm, 1),
            "avg_input_tokens_tiktoken": round(avg_tokens, 1),
            "avg_tokens_as_the_server_counts": round(server_tokens, 1),
            "binding_rpm_as_the_server_counts": round(binding_rpm, 1),
            "reserved_concurrency": plan.reserved_concurrency,
            "instance_requests_per_minute": plan.instance_requests_per_minute,
            "instance_tokens_per_minute": plan.instance_tokens_per_minute,
        },
        "scenarios": results,
        "first_implementation": baseline,
    }


def plot(name: str, result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [*result["scenarios"].items(), ("first implementation", result["first_implementation"])]
    fig, axes = plt.subplots(len(runs), 2, figsize=(13, 2.6 * len(runs)), squeeze=False)
    limits = result["limits"]
    for row, (title, run) in zip(axes, runs, strict=True):
        by_second = {s["second"]: s for s in run["timeline"]}
        seconds = range(min(by_second), max(by_second) + 1) if by_second else range(0)
        xs = [second - run["t0"] for second in seconds]
        for ax, key, limit, unit in (
            (row[0], "accepted", limits["rpm"], "requests/s"),
            (row[1], "accepted_tokens", limits["tpm"], "tokens/s"),
        ):
            ax.plot(xs, [by_second.get(s, {}).get(key, 0) for s in seconds], color="tab:blue", label=f"accepted {unit}")
            if key == "accepted":
                limited = [by_second.get(s, {}).get("rate_limited", 0) for s in seconds]
                ax.plot(xs, limited, color="tab:red", label="429/s")
            if limit < LARGE_TPM:
                ax.axhline(limit / 60, color="black", linestyle="--", label=f"limit {limit / 60:,.0f}/s")
            ax.set_ylabel(unit)
            ax.legend(loc="upper right", fontsize=7)
        row[0].set_title(
            f"{name} / {title}: {run['achieved_ratio']:.1%} of the binding limit, "
            f"{run['whole_run']['share_429']:.2%} 429s, lost {run['lost']}",
            fontsize=9,
            loc="left",
        )
    for ax in axes[-1]:
        ax.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


SIDE_BY_SIDE_KEYS = ("achieved_ratio", "requests_ratio", "tokens_ratio", "window_seconds", "lost", "latency_seconds")


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    def brief(run: dict[str, Any]) -> dict[str, Any]:
        return {**{k: run[k] for k in SIDE_BY_SIDE_KEYS}, "share_429_whole_run": run["whole_run"]["share_429"]}

    return {
        "limits": result["limits"],
        "plan": result["plan"],
        "scenarios": {name: brief(run) for name, run in result["scenarios"].items()},
        "first_implementation": brief(result["first_implementation"]),
    }


def targets(results: dict[str, dict[str, Any]]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    for account, result in results.items():
        for name, run in result["scenarios"].items():
            met[f"{account}/{name}: lost 0"] = run["lost"] == 0
            met[f"{account}/{name}: 429s <= 0.5%"] = run["whole_run"]["share_429"] <= 0.005
            if name == "backlog":
                met[f"{account}/{name}: >= 0.98 of the binding limit"] = run["achieved_ratio"] >= 0.98
                met[f"{account}/{name}: steady window >= 120 s"] = run["window_seconds"] >= 120
            if name.startswith("steady"):
                met[f"{account}/{name}: p95 <= 2.5 s"] = (run["latency_seconds"]["p95"] or 1e9) <= 2.5
    return met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every duration ÷ 4 (a smoke run)")
    parser.add_argument("--accounts", default="requests,tokens,tokens-as-openai")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="livedoor-dev.jsonl.gz (read, never copied)")
    parser.add_argument("--rpm", type=int, default=1800, help="R of the requests-bound account")
    parser.add_argument("--tier-scale", type=float, default=0.4, help="tier 2's limits × this, for the token accounts")
    parser.add_argument("--tag", default="", help="added to the result files' names (keep several runs)")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--publish-batch", type=int, default=25)
    parser.add_argument("--input-token-budget", type=int, default=1024)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    table = accounts(args.rpm, args.tier_scale)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    results: dict[str, dict[str, Any]] = {}
    for name in args.accounts.split(","):
        results[name] = run_account(table[name], args, scale)
        plot(name, results[name], RESULTS / f"scenarios-{name}{suffix}.png")
    summary = {
        "settings": {
            "quick": args.quick,
            "rpm": args.rpm,
            "tier_scale": args.tier_scale,
            "latency_ms": args.latency_ms,
            "server_bucket_seconds": BUCKET_SECONDS,
        },
        "side_by_side": {name: summary_of(result) for name, result in results.items()},
        "targets_met": targets(results),
    }
    full = {
        **summary,
        "runs": {
            name: {
                **{k: v for k, v in result.items() if k not in ("scenarios", "first_implementation")},
                "scenarios": result["scenarios"],
                "first_implementation": result["first_implementation"],
            }
            for name, result in results.items()
        },
    }
    (RESULTS / f"scenarios{suffix}.json").write_text(
        json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if all(summary["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
