"""Worst-case time to turn an article body into text, at the body size limit (issue: hostile input).

Each case is a body of exactly MAX_BODY_CHARS characters built from one construct repeated:
unterminated attributes and comments, tags without `>`, deep nesting, entity runs, and
realistic article HTML. It times ArticleEvent validation (HTML detection + extraction +
normalisation), as ingest and the categorize function run it, on one core, and for
comparison the stdlib html.parser on the quadratic cases at smaller sizes. Then the handlers:
ingest's `handle_webhook` on a request at MAX_REQUEST_BYTES filled with these bodies (the
work per request is bounded by request bytes × per-byte cost), and CategorizeFunction's
handler on SQS batches mixing them with valid articles (moto, a canned OpenAI answer): the valid
ones must be stored and the hostile ones dead-lettered with reasons.

    python -m bench.parse [--repeat 3]        # or: make bench-parse
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from categorizer.models import MAX_BODY_CHARS, ArticleEvent

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


def _repeat(unit: str, size: int = MAX_BODY_CHARS) -> str:
    return (unit * (size // len(unit) + 1))[:size]


CASES: dict[str, Callable[[int], str]] = {
    "unterminated_attribute": lambda n: _repeat('<a b="', n),
    "unterminated_comment": lambda n: _repeat("<!--", n),
    "tag_without_gt": lambda n: "<" + "a" * (n - 1),
    "many_lt_no_gt": lambda n: _repeat("<a ", n),
    "deep_nesting": lambda n: _repeat("<div>", n),
    "deep_nesting_with_text": lambda n: _repeat("<div>x", n),
    "unclosed_paragraphs": lambda n: _repeat("<p>word ", n),
    "entity_run": lambda n: _repeat("&amp;", n),
    "cdata_run": lambda n: _repeat("<![CDATA[", n),
    "script_unterminated": lambda n: "<script>" + _repeat("var a = '<p>';", n - 8),
    "article_html": lambda n: _repeat("<p>Markets rose on <b>Tuesday</b> &amp; bonds fell.</p>\n", n),
    "article_japanese": lambda n: _repeat("<p>日本語の記事本文です。株価は上昇した。</p>", n),
    "plain_text": lambda n: _repeat("Plain text without any markup at all. ", n),
}


def _validate(body: str) -> str:
    try:
        event = ArticleEvent.model_validate(
            {"article_id": "p", "url": "https://x.example/p", "title": "t", "body": body, "version": 1}
        )
        return f"accepted ({len(event.text)} characters of text)"
    except ValidationError:
        return "rejected"


def _time(function: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best


def _stdlib(body: str) -> None:
    parser = HTMLParser(convert_charrefs=True)
    parser.feed(body)
    parser.close()


def _ingest_request(html: bool) -> dict[str, object]:
    """handle_webhook on one request of hostile bodies, as many as fit in MAX_REQUEST_BYTES."""
    from categorizer.config import IngestSettings
    from categorizer.ingest import ArticleQueue, WebhookLimits, WebhookRequest, handle_webhook, signature_headers

    class AcceptingSQS:
        def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> dict[str, Any]:
            return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    max_bytes = IngestSettings.model_fields["max_request_bytes"].default
    names = [name for name in CASES if name not in {"article_html", "article_japanese", "plain_text"}]
    items: list[dict[str, object]] = []
    size = 2
    while True:
        name = names[len(items) % len(names)]
        item = {
            "article_id": f"h-{len(items)}",
            "url": "https://x.example/h",
            "title": "t",
            "body": CASES[name](MAX_BODY_CHARS),
            "version": 1,
            "body_format": "html" if html else "auto",
        }
        item_bytes = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if size + item_bytes > max_bytes or len(items) == 100:
            break
        items.append(item)
        size += item_bytes
    body = json.dumps(items, ensure_ascii=False).encode()
    url = "https://api.example/articles"
    headers = {"content-type": "application/json", **signature_headers(b"bench", body, url)}
    limits = WebhookLimits(max_request_bytes=max_bytes, max_batch_items=100, signature_tolerance_seconds=300)
    queue = ArticleQueue(AcceptingSQS(), "https://sqs.example/q")  # type: ignore[arg-type]
    started, wall = time.process_time(), time.perf_counter()
    response = handle_webhook(WebhookRequest(headers, body), secrets=lambda: [b"bench"], queue=queue, limits=limits)
    return {
        "request_bytes": len(body),
        "articles": len(items),
        "body_format": "html" if html else "auto",
        "status": response.status,
        "cpu_seconds": round(time.process_time() - started, 3),
        "wall_seconds": round(time.perf_counter() - wall, 3),
    }


def _categorize_batches(batches: int) -> dict[str, object]:
    """CategorizeFunction's handler on batches of 10: 5 valid articles, 5 hostile HTML bodies without text."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "article-categorizer",
        "POWERTOOLS_METRICS_NAMESPACE": "ArticleCategorizer",
    }.items():
        os.environ.setdefault(name, value)
    import boto3
    import httpx2
    from moto import mock_aws

    from categorizer.active_model import write_active_model
    from categorizer.models import ActiveModel
    from local.lambda_shapes import LambdaContext, load_module_from_file, sqs_event
    from local.openai_server.chat import chat_completion_json

    model_id = "ft:gpt-4o-mini-2024-07-18:bench::parse"
    hostile_names = ["unterminated_attribute", "unterminated_comment", "many_lt_no_gt", "cdata_run", "tag_without_gt"]
    with mock_aws():
        boto3.resource("dynamodb").create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "article_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "article_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        secret = boto3.client("secretsmanager").create_secret(Name="openai", SecretString="sk-bench")["ARN"]
        write_active_model(
            boto3.client("ssm"), "/bench/active", ActiveModel(model_id=model_id, taxonomy_version="iab-3.1")
        )
        os.environ.update(
            {
                "RESULTS_TABLE_NAME": "results",
                "DLQ_URL": dlq_url,
                "OPENAI_API_KEY_SECRET_ARN": secret,
                "ACTIVE_MODEL_PARAMETER": "/bench/active",
            }
        )
        devnull = open(os.devnull, "w")  # noqa: SIM115 (the handler's log lines, kept off the terminal)
        stdout, sys.stdout = sys.stdout, devnull
        try:
            app = load_module_from_file(REPO / "functions" / "categorize" / "app.py", "categorize")
            answer = json.dumps(chat_completion_json(model_id, [("3", 0.8), ("7", 0.2)], prompt_tokens=500)).encode()
            transport = httpx2.MockTransport(
                lambda request: httpx2.Response(200, content=answer, headers={"content-type": "application/json"})
            )
            app.service = app.build_service(openai_transport=transport)  # type: ignore[attr-defined]
            cpu = wall = 0.0
            failures = 0
            for b in range(batches):
                valid = [
                    {
                        "article_id": f"v-{b}-{n}",
                        "url": "https://x.example/v",
                        "title": "Chips",
                        "body": f"Text {n}.",
                        "version": 1,
                    }
                    for n in range(5)
                ]
                hostile = [
                    {
                        "article_id": f"x-{b}-{n}",
                        "url": "https://x.example/x",
                        "title": "t",
                        "body": CASES[name](MAX_BODY_CHARS),
                        "body_format": "html",
                        "version": 1,
                    }
                    for n, name in enumerate(hostile_names)
                ]
                event = sqs_event(*[m for pair in zip(valid, hostile, strict=True) for m in pair])
                started, wall0 = time.process_time(), time.perf_counter()
                failures += len(app.lambda_handler(event, LambdaContext())["batchItemFailures"])
                cpu += time.process_time() - started
                wall += time.perf_counter() - wall0
        finally:
            sys.stdout = stdout
            devnull.close()
        rows = boto3.client("dynamodb").scan(TableName="results", Select="COUNT")["Count"]
        reasons: dict[str, int] = {}
        while messages := sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages"):
            for message in messages:
                reason = message["MessageAttributes"]["reason"]["StringValue"]
                reasons[reason] = reasons.get(reason, 0) + 1
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return {
        "batches": batches,
        "records_per_batch": 10,
        "valid_stored": rows,
        "hostile_dead_lettered_by_reason": reasons,
        "batch_item_failures": failures,
        "cpu_seconds_per_batch": round(cpu / batches, 3),
        "wall_seconds_per_batch": round(wall / batches, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5, help="mixed SQS batches through CategorizeFunction")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    _validate("<p>warm up</p>")
    seconds: dict[str, float] = {}
    cases: dict[str, dict[str, object]] = {}
    for name, build in CASES.items():
        body = build(MAX_BODY_CHARS)
        seconds[name] = round(_time(functools.partial(_validate, body), args.repeat), 4)
        cases[name] = {"seconds": seconds[name], "outcome": _validate(body)}
    stdlib = {
        f"{name}@{size}": round(_time(functools.partial(_stdlib, CASES[name](size)), 1), 3)
        for name in ("unterminated_attribute", "script_unterminated")
        for size in (12_000, 24_000, 48_000)
    }
    worst = max(seconds, key=seconds.__getitem__)
    result = {
        "body_chars": MAX_BODY_CHARS,
        "cpu_seconds_by_case": cases,
        "worst_case": worst,
        "worst_seconds": seconds[worst],
        "target_seconds": 0.5,
        "stdlib_html_parser_seconds": stdlib,
        "ingest_request_at_the_size_limit": [_ingest_request(html=False), _ingest_request(html=True)],
        "categorize_batches_mixed": _categorize_batches(args.batches),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parse.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
