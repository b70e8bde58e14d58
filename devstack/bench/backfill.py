"""`make bench-backfill`: 5,000 livedoor articles through BackfillStateMachine on the offline stack.

1. start the offline stack and fine-tune a model (FineTuneStateMachine) on the livedoor articles
   that are NOT backfilled (split by a hash of the article id; titles lose their category-naming
   brackets, as in bench/livedoor_finetune.py; the livedoor categories are mapped onto the demo
   taxonomy, an arbitrary but fixed mapping: what is measured is batch against live, not accuracy);
2. upload the 5,000 others as ArticleEvent JSONL under the pipeline bucket's archive/ (into moto,
   never into the repo), with a few invalid lines that the plan must report;
3. clean run: BackfillStateMachine over that prefix; audit every valid line is a row or a dead
   letter with a reason (`lost` 0);
4. fault run (rows and dead letters cleared first): the first batch expires half done and 2 % of
   request lines answer 500; audit again;
5. live run (rows cleared again): the same articles through the signed webhook, the SQS poller and
   CategorizeFunction; the rows' prices and labels compared with the clean batch run's.

Prints one JSON document per run and writes them to bench/results/backfill.json; exits 1 when a
run lost an article or the batch path costs more than 0.55 of the live one.

    .venv/bin/python -m bench.backfill [--data PATH] [--articles 5000] [--no-live]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
from pydantic import ValidationError

from bench.chaos import configure_faults, send
from bench.livedoor_finetune import strip_tags
from categorizer.models import ArticleEvent
from categorizer.taxonomy import bundled_taxonomy
from local.demo_run import TAXONOMY_VERSION, fine_tune
from local.stack import OfflineStack, StackOptions
from tools.backfill import follow, summary
from tools.dlq import receive_all

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
ARCHIVE_KEY = "archive/bench/livedoor.jsonl"
# livedoor's nine sites onto the demo taxonomy's categories (fixed, not a claim about the sites).
CATEGORY_OF = {
    "dokujo-tsushin": "health",
    "it-life-hack": "technology",
    "kaden-channel": "science",
    "livedoor-homme": "business",
    "movie-enter": "entertainment",
    "peachy": "food",
    "smax": "technology",
    "sports-watch": "sports",
    "topic-news": "travel",
}
# Lines the webhook's validation refuses; the plan must count them with reasons.
INVALID_LINES = [
    "{not json",
    json.dumps({"article_id": "bench-invalid-1", "title": "no url, no body"}),
    json.dumps({"article_id": "", "url": "https://news.example/x", "title": "t", "body": "b"}),
]
POLL_SECONDS = 1
RATIO_LIMIT = 0.55


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rank(article_id: str) -> int:
    return int.from_bytes(hashlib.sha256(article_id.encode()).digest()[:8], "big")


def load_split(path: Path, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(backfilled, training): the `count` articles of lowest id hash, and the others with labels."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = sorted((json.loads(line) for line in lines), key=lambda row: _rank(row["id"]))
    events = [
        {
            "article_id": row["id"],
            "url": row["url"],
            "title": strip_tags(row["title"]) or row["title"],
            "body": row["body"],
            "language": "ja",
            "version": 1,
            "category_id": CATEGORY_OF[row["category"]],
        }
        for row in rows
    ]
    backfilled = [{k: v for k, v in e.items() if k != "category_id"} for e in events[:count]]
    return backfilled, events[count:]


def scan_rows(stack: OfflineStack, attributes: str = "article_id, #source, category_id, cost_usd") -> dict[str, Any]:
    """Article id → row (only the attributes the audit reads: moto is slow to serialise whole rows)."""
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("ResultsTable")
    )
    rows: dict[str, dict[str, Any]] = {}
    scan: dict[str, Any] = {"ConsistentRead": True, "ProjectionExpression": attributes}
    if "#source" in attributes:
        scan["ExpressionAttributeNames"] = {"#source": "source"}
    while True:
        page = table.scan(**scan)
        rows.update({str(item["article_id"]): item for item in page["Items"]})
        if "LastEvaluatedKey" not in page:
            return rows
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def clear(stack: OfflineStack) -> None:
    """Rows and dead letters gone, so the next run plans (and pays for) every article again."""
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("ResultsTable")
    )
    with table.batch_writer() as batch:
        for article_id in scan_rows(stack, "article_id"):
            batch.delete_item(Key={"article_id": article_id})
    stack.client("sqs").purge_queue(QueueUrl=stack.provisioned.ref("ArticleDLQ"))


def audit(stack: OfflineStack, expected: Sequence[str], source: str) -> dict[str, Any]:
    """Every expected article is a row written by `source` or a dead letter with a reason."""
    rows = scan_rows(stack)
    sqs = stack.client("sqs")
    letters = list(receive_all(sqs, stack.provisioned.ref("ArticleDLQ"), hold_seconds=300, wait_seconds=1))
    dead: set[str] = set()
    for letter in letters:
        try:
            dead.add(ArticleEvent.model_validate_json(letter.message["Body"]).article_id)
        except ValidationError:
            continue  # counted by reason below; no accepted article to match
    written = {a: row for a, row in rows.items() if row.get("source") == source}
    lost = sorted(a for a in expected if a not in written and a not in dead)
    cost = sum(float(row["cost_usd"]) for row in written.values())
    return {
        "rows": len(written),
        "dead_lettered": len(letters),
        "dlq_by_reason": dict(Counter(letter.reason for letter in letters)),
        "lost": len(lost),
        "lost_examples": lost[:10],
        "cost_usd": round(cost, 6),
        "cost_usd_per_1000": round(cost / max(len(written), 1) * 1000, 6),
        "labels": {a: str(row["category_id"]) for a, row in written.items()},
    }


def backfill_run(stack: OfflineStack, name: str, prefix: str, expected: Sequence[str]) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    started = time.monotonic()
    execution = sfn.start_execution(
        stateMachineArn=stack.provisioned.ref("BackfillStateMachine"),
        name=name,
        input=json.dumps({"prefix": prefix, "poll_seconds": POLL_SECONDS}),
    )
    described = follow(sfn, execution["executionArn"], lambda line: say(f"  {line}"), poll_seconds=1.0)
    seconds = time.monotonic() - started
    run = summary(described)
    if run["status"] != "SUCCEEDED":
        raise RuntimeError(f"{name} ended {run['status']}: {run['error']}: {run['cause']}")
    result = audit(stack, expected, "batch")
    plan = run["plan"]
    return {
        "status": run["status"],
        "planned_requests": plan["requests"],
        "invalid_lines": plan["invalid"],
        "invalid_by_reason": plan["invalid_by_reason"],
        "estimated_cost_usd": plan["estimated_cost_usd"],
        "batches": [{k: b[k] for k in ("round", "status", "requests")} for b in run["batches"]],
        **result,
        "wall_seconds": round(seconds, 1),
    }


def expire_first_batch(stack: OfflineStack, stop: threading.Event) -> None:
    """Turn the expiry fault off once one batch has expired, so exactly one expires half done."""
    assert stack.endpoints.openai_base_url is not None
    url = stack.endpoints.openai_base_url.removesuffix("/") + "/batches"
    headers = {"Authorization": f"Bearer {stack.openai_api_key}"}
    while not stop.wait(0.1):
        batches = httpx2.get(url, headers=headers, params={"limit": 100}, timeout=10.0).json()["data"]
        if any(b["status"] == "expired" for b in batches):
            configure_faults(stack.endpoints.openai_base_url, {"batch_expire_after_requests": None})
            return


def live_run(stack: OfflineStack, articles: Sequence[dict[str, Any]], drain_timeout: float) -> dict[str, Any]:
    stack.serve_http_apis()
    stack.start_pollers(warm=True)
    started = time.monotonic()
    published, accepted = send(stack, articles)
    drained = stack.wait_until_drained(drain_timeout)
    seconds = time.monotonic() - started
    stack.stop_pollers()
    result = audit(stack, [a["article_id"] for a in articles], "live")
    return {
        "accepted": len(accepted),
        "ingest_statuses": published.to_json()["statuses"],
        "drained": drained,
        **result,
        "wall_seconds": round(seconds, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    articles, training = load_split(args.data, args.articles)
    expected = [a["article_id"] for a in articles]
    options = StackOptions(state_dir=REPO / ".local-state" / "bench-backfill", queue_visibility_timeout=30)
    with OfflineStack.start(options, progress=lambda line: say(f"  {line}")) as stack:
        say(f"fine-tuning on the {len(training)} livedoor articles not backfilled")
        tuned = fine_tune(stack, training, bundled_taxonomy(TAXONOMY_VERSION), report=say)
        bucket = stack.provisioned.ref("PipelineBucket")
        archive = [json.dumps(a, ensure_ascii=False) for a in articles] + INVALID_LINES
        stack.client("s3").put_object(
            Bucket=bucket, Key=ARCHIVE_KEY, Body=("\n".join(archive) + "\n").encode(), ContentType="application/jsonl"
        )
        prefix = f"s3://{bucket}/{ARCHIVE_KEY.rsplit('/', 1)[0]}/"
        assert stack.endpoints.openai_base_url is not None
        stack.warm_state_machine_tasks("BackfillStateMachine")

        say(f"clean run: {len(articles)} articles (+{len(INVALID_LINES)} invalid lines) from {prefix}")
        clean = backfill_run(stack, "bench-clean", prefix, expected)

        clear(stack)
        half = clean["batches"][0]["requests"] // 2
        faults = {"batch_expire_after_requests": half, "batch_error_rate": args.batch_error_rate, "seed": 11}
        configure_faults(stack.endpoints.openai_base_url, faults)
        say(f"fault run: {faults} (the expiry only until the first batch expires)")
        stop = threading.Event()
        watcher = threading.Thread(target=expire_first_batch, args=(stack, stop), daemon=True)
        watcher.start()
        try:
            faulted = backfill_run(stack, "bench-faults", prefix, expected)
        finally:
            stop.set()
            watcher.join()
        configure_faults(stack.endpoints.openai_base_url, {"batch_expire_after_requests": None, "batch_error_rate": 0})
        faulted["faults"] = {
            "first_batch_expires_after_requests": half,
            "batch_error_rate": args.batch_error_rate,
        }

        live: dict[str, Any] | None = None
        if args.live:
            clear(stack)
            say(f"live run: the same {len(articles)} articles through the webhook and CategorizeFunction")
            live = live_run(stack, articles, args.drain_timeout)

    def shown(result: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in result.items() if k != "labels"}

    report: dict[str, Any] = {
        "articles": len(articles),
        "model": {"model_id": tuned.model_id, "trained_on": len(training), "validation_top1": tuned.metrics.top1},
        "batch": shown(clean),
        "fault_run": shown(faulted),
    }
    if live is not None:
        both = sorted(set(clean["labels"]) & set(live["labels"]))
        same = sum(clean["labels"][a] == live["labels"][a] for a in both)
        report["live"] = shown(live)
        report["cost_usd_per_1000"] = {"batch": clean["cost_usd_per_1000"], "live": live["cost_usd_per_1000"]}
        report["cost_ratio_batch_vs_live"] = round(clean["cost_usd_per_1000"] / live["cost_usd_per_1000"], 4)
        report["label_agreement"] = {"compared": len(both), "agreement": round(same / max(len(both), 1), 4)}
    report["seconds_total"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--batch-error-rate", type=float, default=0.02)
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    report = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backfill.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    ok = report["batch"]["lost"] == 0 and report["fault_run"]["lost"] == 0
    if "cost_ratio_batch_vs_live" in report:
        ok = ok and report["live"]["lost"] == 0 and report["cost_ratio_batch_vs_live"] <= RATIO_LIMIT
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
