"""`python -m tools backfill start|status|list`: the Batch API backfill's operator CLI (docs/backfill.md).

    start   start a run (--prefix S3URI | --all), print its estimate, then follow it: requests
            done and failed per batch, and an ETA
    status  one run: its plan, its batches' totals, or its error
    list    recent runs and their status

AWS comes from boto3's defaults, so the same commands work against an account and against the
offline stack (AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import ValidationError

from categorizer.backfill.models import BackfillConfig
from tools.finetune import Emit, history

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def describe_plan(plan: dict[str, Any]) -> str:
    return (
        f"estimate: {plan['requests']:,} requests, {plan['prompt_tokens']:,} prompt tokens, "
        f"${plan['estimated_cost_usd']:.4f} at batch prices (live ${plan['live_cost_usd']:.4f}; guard "
        f"${plan['cost_guard_usd']:.2f}); skipped {plan['skipped'] or 0}; invalid lines {plan['invalid']} "
        f"{plan['invalid_by_reason'] or ''}; {len(plan['shards'])} shard(s)"
    )


def follow(sfn: SFNClient, execution_arn: str, emit: Emit, poll_seconds: float = 2.0) -> dict[str, Any]:
    """Print the estimate, each batch's progress with an ETA, and each shard's totals until the end."""
    seen = 0
    started = time.monotonic()
    # Each batch's first check (time, requests done): its ETA is from its own pace, not the run's.
    batch_seen: dict[str, tuple[float, int]] = {}
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        events = list(history(sfn, execution_arn))
        for event in events[seen:]:
            if event["type"] != "TaskStateExited":
                continue
            details = event["stateExitedEventDetails"]
            output = json.loads(details["output"])
            elapsed = time.monotonic() - started
            if details["name"] == "Plan":
                emit(describe_plan(output["plan"]))
            elif details["name"] == "CheckBatch":
                batch = output["batch"]
                counts = batch["request_counts"]
                done = counts.get("completed", 0) + counts.get("failed", 0)
                total = counts.get("total", 0) or output["shard"]["requests"]
                at = event["timestamp"].timestamp()
                first_at, first_done = batch_seen.setdefault(batch["batch_id"], (at, done))
                pace = (done - first_done) / (at - first_at) if at > first_at else 0.0
                eta = f"ETA {(total - done) / pace:.0f}s" if pace > 0 and done < total else ""
                emit(
                    f"[{elapsed:7.1f}s] shard {output['shard']['shard']} round {output['shard']['round']} "
                    f"{batch['batch_id']} {batch['status']}: {counts.get('completed', 0)} done, "
                    f"{counts.get('failed', 0)} failed of {total} {eta}"
                )
            elif details["name"] == "CollectBatch":
                totals = output["collected"]["totals"]
                emit(
                    f"[{elapsed:7.1f}s] shard {output['shard']['shard']} collected: {totals['written']} written, "
                    f"{totals['stale']} kept newer, {totals['dead_lettered']} dead-lettered "
                    f"{totals['dlq_by_reason'] or ''}, {totals['resubmitted']} resubmitted"
                )
        seen = len(events)
        if described["status"] in _TERMINAL:
            return dict(described)
        time.sleep(poll_seconds)


def summary(described: dict[str, Any]) -> dict[str, Any]:
    """A finished run's plan and its shards' totals summed (the execution output)."""
    output = json.loads(described.get("output") or "{}")
    shards = output.get("shards") or []
    return {
        "status": described["status"],
        "plan": {k: v for k, v in (output.get("plan") or {}).items() if k != "shards"},
        "written": sum(s["written"] for s in shards),
        "stale": sum(s["stale"] for s in shards),
        "dead_lettered": sum(s["dead_lettered"] for s in shards),
        "cost_usd": round(sum(s["cost_usd"] for s in shards), 6),
        "batches": [b for s in shards for b in s["batches"]],
        "error": described.get("error"),
        "cause": described.get("cause"),
    }


def _arn(args: argparse.Namespace) -> str:
    if not args.state_machine_arn:
        raise SystemExit("error: --state-machine-arn is required (or set BACKFILL_STATE_MACHINE_ARN)")
    return str(args.state_machine_arn)


def main(argv: list[str] | None = None, emit: Emit = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-machine-arn",
        default=os.environ.get("BACKFILL_STATE_MACHINE_ARN"),
        help="(or BACKFILL_STATE_MACHINE_ARN)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a run, print its estimate and follow it")
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--prefix", help="s3://<pipeline bucket>/archive/… of ArticleEvent JSONL")
    source.add_argument("--all", action="store_true", help="every article in the text store, with the active model")
    start.add_argument("--max-cost-usd", type=float, help="lower the deployed guard for this run")
    start.add_argument("--dry-run", action="store_true", help="plan and estimate only; nothing uploaded")
    start.add_argument("--poll-seconds", type=int, help="wait between batch checks (default 60)")
    start.add_argument("--name", help="execution name (default: backfill-<UTC time>)")
    start.add_argument("--no-follow", action="store_true")
    status = commands.add_parser("status", help="one run's plan and totals")
    status.add_argument("name", help="execution name")
    listing = commands.add_parser("list", help="recent runs")
    listing.add_argument("--max", type=int, default=20)
    args = parser.parse_args(argv)
    arn = _arn(args)
    sfn = boto3.client("stepfunctions")
    if args.command == "start":
        document: dict[str, Any] = {"prefix": args.prefix} if args.prefix else {"all": True}
        for name in ("max_cost_usd", "poll_seconds"):
            if getattr(args, name) is not None:
                document[name] = getattr(args, name)
        if args.dry_run:
            document["dry_run"] = True
        try:
            BackfillConfig.model_validate(document)
        except ValidationError as error:
            raise SystemExit(f"error: invalid run input: {error}") from None
        name = args.name or time.strftime("backfill-%Y%m%dT%H%M%SZ", time.gmtime())
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(document))
        emit(f"started {execution['executionArn']}")
        if args.no_follow:
            return 0
        result = follow(sfn, execution["executionArn"], emit, poll_seconds=min(2.0, max(0.2, args.poll_seconds or 2)))
        emit(json.dumps(summary(result), default=str))
        return 0 if result["status"] == "SUCCEEDED" else 1
    if args.command == "status":
        execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{args.name}"
        emit(json.dumps(summary(dict(sfn.describe_execution(executionArn=execution_arn))), default=str, indent=2))
        return 0
    for run in sfn.list_executions(stateMachineArn=arn, maxResults=args.max)["executions"]:
        stop = run.get("stopDate")
        emit(f"{run['name']}\t{run['status']}\t{run['startDate'].isoformat()}\t{stop.isoformat() if stop else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
