"""`make chaos`: the offline stack under OpenAI faults, then an audit that nothing was lost.

1. start the offline stack (template.yaml in moto, the OpenAI-compatible server, pollers, the
   ingest HTTP API) and activate a model fine-tuned on the demo corpus;
2. turn on the server's faults: a share of 5xx errors, latency spikes, and a requests-per-minute
   limit that answers 429 with retry-after;
3. publish N livedoor articles through the signed webhook, then an older version of some of them
   (out of order) and a newer version of others, then unpublish some and re-send an older
   publish of those (it must not resurrect them);
4. wait until the queue and the results stream are drained and audit: every accepted (article,
   revision) is in ResultsTable (that revision or a newer one) or in the DLQ with a reason; no
   row holds an older revision than one that was accepted and not dead-lettered (a stale
   overwrite); no unpublished article is live again (`resurrected`); and the change events a
   subscriber received (results bus → rule → SQS) match the final rows (`events_missing`) with
   none for a stale or unchanged write (`events_spurious`);
5. then the operator's recovery (`--no-redrive` skips it): faults off, the `retries_exhausted`
   dead letters redriven with the DLQ tool, drained and audited again.

The client-side limiter is off and retries are few (MaxReceiveCount 2, one SDK retry), so the
server's 429s and errors really exhaust some records: the run exercises the dead-letter path.

Prints a JSON summary; exits 1 when anything is lost or overwritten by an older revision.

    .venv/bin/python bench/chaos.py [--articles 2000] [--error-rate 0.2] [--data PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
from pydantic import ValidationError

from categorizer.ingest import webhook_secrets
from categorizer.models import parse_queue_message
from local.demo_run import ensure_active_model
from local.poller import MessageTrace
from local.stack import OfflineStack, StackOptions
from local.subscriber import Subscriber
from tools.dlq import receive_all, redrive, release
from tools.publish import PublishSummary, publish

REPO = Path(__file__).resolve().parents[2]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
BATCH = 50


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_articles(path: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` livedoor articles as CMS events (version 2; older/newer ones are derived)."""
    articles: list[dict[str, Any]] = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            articles.append(
                {
                    "article_id": row["id"],
                    "url": row["url"],
                    "title": row["title"],
                    "body": row["body"],
                    "language": "ja",
                    "version": 2,
                }
            )
            if len(articles) == count:
                break
    return articles


def derived_versions(
    articles: Sequence[dict[str, Any]], share: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(older, newer): version 1 of some articles sent after version 2, and version 3 of others."""
    step = max(1, round(1 / share))
    older = [{**a, "version": 1, "body": a["body"] + "\n(旧版)"} for a in articles[::step]]
    newer = [{**a, "version": 3, "body": a["body"] + "\n(更新)"} for a in articles[step // 2 :: step]]
    return older, newer


def unpublishes(articles: Sequence[dict[str, Any]], share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(unpublish at version 4, a late publish of version 2 sent after it) for a share of the articles."""
    step = max(1, round(1 / share))
    chosen = articles[step // 3 :: step]
    removed = [{"action": "unpublish", "article_id": a["article_id"], "version": 4} for a in chosen]
    return removed, [dict(a) for a in chosen]


def send(stack: OfflineStack, events: Sequence[dict[str, Any]]) -> tuple[PublishSummary, set[tuple[str, int]]]:
    """Publish through the webhook; returns the summary and the (article_id, revision) pairs accepted."""
    url = stack.http_api_urls["IngestApi"] + "/articles"
    secret_value = stack.client("secretsmanager").get_secret_value(
        SecretId=stack.provisioned.parameters["WebhookSecretArn"]
    )["SecretString"]
    accepted: set[tuple[str, int]] = set()

    def record(response: httpx2.Response) -> None:
        if response.status_code in (202, 503):
            response.read()
            for item in response.json().get("accepted", []):
                accepted.add((item["article_id"], item["revision"]))

    batches = (list(events[start : start + BATCH]) for start in range(0, len(events), BATCH))
    with httpx2.Client(timeout=60.0, event_hooks={"response": [record]}) as client:
        summary = publish(client, url, webhook_secrets(secret_value)[0], batches)
    return summary, accepted


def configure_faults(base_url: str, settings: dict[str, Any]) -> None:
    """Faults on, and the call counters restarted (fine-tuning made calls of its own)."""
    httpx2.post(_admin_url(base_url, "config"), json=settings, timeout=10.0).raise_for_status()
    httpx2.post(_admin_url(base_url, "reset-stats"), timeout=10.0).raise_for_status()


def locate_losses(lost: list[tuple[str, int]], traces: list[MessageTrace]) -> dict[tuple[str, int], str]:
    """Where each lost (article, revision) went missing, from the pollers' ledgers."""
    seen: dict[tuple[str, int], list[MessageTrace]] = {}
    for trace in traces:
        try:
            event = parse_queue_message(trace.body)
        except ValidationError:
            continue
        seen.setdefault((event.article_id, event.revision), []).append(trace)
    where: dict[tuple[str, int], str] = {}
    for key in lost:
        found = seen.get(key, [])
        if not found:
            where[key] = "never_received"
        elif any(trace.deleted for trace in found):
            where[key] = "deleted_without_row"
        else:
            where[key] = "received_not_deleted"
    return where


def events_audit(final: dict[str, dict[str, Any]], received: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Change events against the final rows (docs/design.md invariant 9).

    Missing: a row whose latest event does not say what the row says (a result's category; a
    tombstone's removal, when a result had been told). Spurious: an event for no change — a
    category "changed" to itself, or a second categorisation with an unchanged category and no
    removal between (a stale or unchanged write told). Repeats of one event are at-least-once
    delivery, not spurious.
    """
    by_article: dict[str, list[dict[str, Any]]] = {}
    for event in received:
        by_article.setdefault(event["detail"]["article_id"], []).append(event)
    order = {"ArticleCategorized": 0, "ArticleCategoryChanged": 1, "ArticleRemoved": 2}
    missing: list[str] = []
    spurious: list[str] = []
    for article_id, events in by_article.items():
        distinct = {(e["detail-type"], e["detail"]["revision"]): e for e in events}
        told = [distinct[key] for key in sorted(distinct, key=lambda k: (k[1], order[k[0]]))]
        previous: dict[str, Any] | None = None
        for event in told:
            detail = event["detail"]
            category = (detail["category"] or {}).get("id")
            if event["detail-type"] == "ArticleCategoryChanged" and detail["previous_category"]["id"] == category:
                spurious.append(f"{article_id}@{detail['revision']}")
            if (
                previous is not None
                and event["detail-type"] != "ArticleRemoved"
                and previous["detail-type"] != "ArticleRemoved"
                and (previous["detail"]["category"] or {}).get("id") == category
            ):
                spurious.append(f"{article_id}@{detail['revision']}")
            previous = event
    for article_id, row in final.items():
        events = by_article.get(article_id, [])
        latest = max(events, key=lambda e: (e["detail"]["revision"], order[e["detail-type"]]), default=None)
        if "removed_at" in row:
            if latest is not None and not (
                latest["detail-type"] == "ArticleRemoved" and latest["detail"]["revision"] == row["revision"]
            ):
                missing.append(article_id)
        elif (
            latest is None
            or latest["detail-type"] == "ArticleRemoved"
            or (latest["detail"]["category"]["id"] != row["category_id"])
        ):
            missing.append(article_id)
    return {
        "events_received": len(received),
        "events_missing": len(missing),
        "events_missing_examples": sorted(missing)[:10],
        "events_spurious": len(spurious),
        "events_spurious_examples": sorted(spurious)[:10],
    }


def audit(
    stack: OfflineStack,
    accepted: set[tuple[str, int]],
    unpublished: set[tuple[str, int]] | None = None,
    received: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("ResultsTable")
    )
    final: dict[str, dict[str, Any]] = {}
    scan: dict[str, Any] = {
        "ConsistentRead": True,
        "ProjectionExpression": "article_id, revision, removed_at, category_id",
    }
    while True:
        page = table.scan(**scan)
        # A row without a revision is a claim (a call under way when the run stopped), not a result.
        final.update({str(item["article_id"]): item for item in page["Items"] if "revision" in item})
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    rows = {article_id: int(str(item["revision"])) for article_id, item in final.items()}

    dlq_url = stack.provisioned.ref("ArticleDLQ")
    sqs = stack.client("sqs")
    letters = list(receive_all(sqs, dlq_url, hold_seconds=120, wait_seconds=1))
    release(sqs, dlq_url, letters)
    by_reason = Counter(letter.reason for letter in letters)
    dead: set[tuple[str, int]] = set()
    for letter in letters:
        try:
            event = parse_queue_message(letter.message["Body"])
        except ValidationError:
            continue  # not an accepted event (none is expected here); counted by reason above
        dead.add((event.article_id, event.revision))

    newest: dict[str, int] = {}
    for article_id, revision in accepted:
        newest[article_id] = max(revision, newest.get(article_id, -1))
    lost_keys = sorted(
        (article_id, revision)
        for article_id, revision in accepted
        if rows.get(article_id, -1) < revision and (article_id, revision) not in dead
    )
    lost = [f"{article_id}@{revision}" for article_id, revision in lost_keys]
    # A stale overwrite: the row is older than a revision that was accepted and not dead-lettered.
    stale = sorted(
        article_id
        for article_id, revision in newest.items()
        if article_id in rows and rows[article_id] < revision and (article_id, revision) not in dead
    )
    where = locate_losses(lost_keys, [trace for poller in stack.pollers for trace in poller.ledger.traces()])
    return {
        "rows": len(rows),
        "dead_lettered": sum(by_reason.values()),
        "dlq_by_reason": dict(by_reason),
        "dlq_without_reason": by_reason.get("no_reason_recorded", 0),
        "lost": len(lost),
        "lost_examples": lost[:10],
        # never_received: sent, never delivered by SQS; received_not_deleted: delivered, never settled
        # (and not in the DLQ); deleted_without_row: the function reported it done, yet no result.
        "lost_where": dict(Counter(where.values())),
        "lost_where_examples": {f"{a}@{r}": place for (a, r), place in sorted(where.items())[:10]},
        "stale_overwrites": len(stale),
        "stale_examples": stale[:10],
        # Unpublished (and the unpublish not dead-lettered), yet the row is a live result.
        "resurrected": sum(
            1
            for article_id, revision in (unpublished or set())
            if (article_id, revision) not in dead and article_id in final and "removed_at" not in final[article_id]
        ),
        **(events_audit(final, received) if received is not None else {}),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    articles = load_articles(args.data, args.articles)
    older, newer = derived_versions(articles, args.version_share)
    removals, late_publishes = unpublishes(articles, args.version_share)
    options = StackOptions(
        # Its own state and logs, so a demo or local-up running meanwhile is not disturbed.
        state_dir=REPO / ".local-state" / "chaos",
        queue_visibility_timeout=args.visibility_timeout,
        parameter_overrides={
            "MaxReceiveCount": str(args.max_receive_count),
            # The server's limit is the one under test: no client-side pacing.
            "InstanceRequestsPerMinute": "0",
            "InstanceTokensPerMinute": "0",
        },
        # Calls time out before a batch can outlast the visibility timeout (no early redelivery).
        function_env_overrides={"OPENAI_MAX_RETRIES": str(args.sdk_retries), "OPENAI_TIMEOUT_SECONDS": "3"},
    )
    with OfflineStack.start(options, progress=lambda line: say(f"  {line}")) as stack:
        say("activating a model (fine-tuned on the demo corpus)")
        ensure_active_model(stack)
        assert stack.endpoints.openai_base_url is not None
        faults = {
            "error_rate": args.error_rate,
            "error_statuses": [500, 503],
            "spike_rate": args.spike_rate,
            "spike_ms": args.spike_ms,
            "rpm": args.rpm,
            "bucket_seconds": 1.0,
            "seed": 5,
        }
        configure_faults(stack.endpoints.openai_base_url, faults)
        say(f"faults on: {faults}")
        stack.serve_http_apis()
        subscriber = Subscriber(stack)
        stack.start_pollers(warm=True)
        publish_started = time.monotonic()
        summaries: list[PublishSummary] = []
        accepted: set[tuple[str, int]] = set()
        unpublished: set[tuple[str, int]] = set()
        for label, events in (("current", articles), ("older", older), ("newer", newer)):
            summary, ids = send(stack, events)
            summaries.append(summary)
            accepted |= ids
            say(f"published {len(events)} {label} events: {summary.to_json()['statuses']}")
        # Unpublishes only once their articles are in: else the late publish could be queued first.
        stack.wait_until_drained(args.drain_timeout)
        for label, events in (("unpublish", removals), ("late older publish", late_publishes)):
            summary, ids = send(stack, events)
            summaries.append(summary)
            accepted |= ids
            if label == "unpublish":
                unpublished = ids
            say(f"sent {len(events)} {label} events: {summary.to_json()['statuses']}")
        drained = stack.wait_until_drained(args.drain_timeout)
        elapsed = time.monotonic() - publish_started
        calls = _openai_calls(stack.endpoints.openai_base_url)
        received = subscriber.received()
        result = audit(stack, accepted, unpublished, received)
        stats = [poller.stats for poller in stack.pollers]
        recovery = (
            recover(stack, accepted, unpublished, subscriber, received, args.drain_timeout) if args.redrive else None
        )

    distinct_articles = len({article_id for article_id, _ in accepted})
    return {
        "articles": len(articles),
        "events_sent": len(articles) + len(older) + len(newer) + len(removals) + len(late_publishes),
        "unpublishes_accepted": len(unpublished),
        "events_accepted": len(accepted),
        "events_not_accepted": sum(s.rejected + s.failed for s in summaries),
        "ingest_statuses": dict(sum((Counter(s.statuses) for s in summaries), Counter())),
        "faults": {k: v for k, v in faults.items() if k != "seed"},
        "drained": drained,
        **result,
        "openai_calls": calls,
        "openai_calls_per_article": round(calls["requests"] / max(distinct_articles, 1), 3),
        "openai_calls_per_accepted_event": round(calls["requests"] / max(len(accepted), 1), 3),
        "lambda_invocations": sum(s.invocations for s in stats),
        "records_returned_for_retry": sum(s.returned for s in stats),
        "seconds_to_drain": round(elapsed, 1),
        **({"after_faults_off_and_redrive": recovery} if recovery is not None else {}),
        "seconds_total": round(time.monotonic() - started, 1),
    }


def recover(
    stack: OfflineStack,
    accepted: set[tuple[str, int]],
    unpublished: set[tuple[str, int]],
    subscriber: Subscriber,
    received: list[dict[str, Any]],
    drain_timeout: float,
) -> dict[str, Any]:
    """The operator's path once the cause is gone: faults off, `tools dlq redrive`, audit again."""
    assert stack.endpoints.openai_base_url is not None
    configure_faults(stack.endpoints.openai_base_url, {"error_rate": 0.0, "spike_rate": 0.0, "rpm": 0})
    moved = redrive(
        stack.client("sqs"),
        stack.provisioned.ref("ArticleDLQ"),
        stack.provisioned.ref("ArticleQueue"),
        reasons={"retries_exhausted"},
    )
    say(f"faults off; redrove {sum(moved.values())} dead letters: {dict(moved)}")
    drained = stack.wait_until_drained(drain_timeout)
    everything = [*received, *subscriber.received()]
    return {"redriven": sum(moved.values()), "drained": drained, **audit(stack, accepted, unpublished, everything)}


def _admin_url(base_url: str, path: str) -> str:
    return base_url.removesuffix("/").removesuffix("/v1") + "/_admin/" + path


def _openai_calls(base_url: str) -> dict[str, int]:
    """Chat completion calls since the faults went on, by outcome (the server's counters)."""
    response = httpx2.get(_admin_url(base_url, "stats"), timeout=10.0)
    response.raise_for_status()
    stats = response.json()
    names = ("requests", "status_2xx", "status_429", "status_5xx", "status_4xx", "injected_errors", "latency_spikes")
    return {name: int(stats.get(name, 0)) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--version-share", type=float, default=0.1, help="share re-sent as older and as newer")
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--spike-rate", type=float, default=0.05)
    parser.add_argument("--spike-ms", type=float, default=1500.0)
    parser.add_argument("--rpm", type=int, default=1200, help="the server's requests-per-minute limit (429s)")
    parser.add_argument("--max-receive-count", type=int, default=2)
    parser.add_argument("--sdk-retries", type=int, default=1)
    parser.add_argument("--visibility-timeout", type=int, default=10)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument(
        "--redrive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then turn the faults off, redrive retries_exhausted dead letters and audit again",
    )
    args = parser.parse_args(argv)
    summary = run(args)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    audits = [summary, summary.get("after_faults_off_and_redrive") or summary]
    ok = all(
        a["drained"]
        and a["lost"] == 0
        and a["stale_overwrites"] == 0
        and a["resurrected"] == 0
        and a["events_missing"] == 0
        and a["events_spurious"] == 0
        for a in audits
    )
    return 0 if ok and all(a["dlq_without_reason"] == 0 for a in audits) else 1


if __name__ == "__main__":
    sys.exit(main())
