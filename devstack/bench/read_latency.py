"""`make bench-read`: the read API handler's latency offline, for one lookup and for a batch of 100.

ReadFunction's handler (functions/read/app.py) runs in this process against the offline stack's
moto server, with ResultsTable as template.yaml declares it, holding `--rows` results. Each
request is a Lambda HTTP API event; the time is the handler's (resolve, DynamoDB calls over
loopback HTTP to moto, serialisation), not API Gateway's or the network's. Prints p50/p99 in
JSON for GET /articles/{id}, GET /categories?url=, and POST /categories/batch-get with 100 ids
and with 100 URLs.

    .venv/bin/python -m bench.read_latency [--rows 1000] [--requests 300] [--batches 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from categorizer.models import CategorizationResult, PathNode, Prediction
from categorizer.store import ResultStore
from categorizer.urls import canonical_url
from local.cfn import load_template
from local.lambda_shapes import load_module_from_file
from local.motoserver import MotoServer

REPO = Path(__file__).resolve().parents[2]


def _result(n: int) -> CategorizationResult:
    url = f"https://news.example/{n // 100}/article-{n}"
    return CategorizationResult(
        article_id=f"a-{n}",
        revision=1,
        content_hash="h",
        model_id="ft:gpt-4o-mini:bench",
        taxonomy_version="demo-2",
        category_id="food",
        category_name="Food",
        path=[PathNode(id="lifestyle", name="Lifestyle"), PathNode(id="food", name="Food")],
        label="6",
        probability=0.9,
        coverage=0.98,
        needs_review=False,
        top_k=[Prediction(label="6", category_id="food", name="Food", probability=0.9)] * 5,
        prompt_tokens=300,
        completion_tokens=1,
        cost_usd=0.0001,
        truncated=False,
        url=url,
        canonical_url=canonical_url(url),
        title=f"Article {n}",
    )


def _event(method: str, path: str, query: str = "", body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default", "requestId": "r"},
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


class _Context:
    function_name = "ReadFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ReadFunction"
    aws_request_id = "bench"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "n": len(ordered),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300, help="requests per single-key route")
    parser.add_argument("--batches", type=int, default=30, help="requests per batch-get case (100 keys each)")
    args = parser.parse_args(argv)
    rng = random.Random(11)
    moto = MotoServer()
    endpoint = moto.start()
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_NAMESPACE="Bench",
            POWERTOOLS_LOG_LEVEL="WARNING",
            POWERTOOLS_METRICS_DISABLED="true",
        )
        # ResultsTable's keys and the by-URL index as template.yaml declares them.
        declared = load_template(REPO / "template.yaml")["Resources"]["ResultsTable"]["Properties"]
        table_name = "bench-results"
        table = boto3.resource("dynamodb").create_table(
            TableName=table_name,
            KeySchema=declared["KeySchema"],
            AttributeDefinitions=declared["AttributeDefinitions"],
            GlobalSecondaryIndexes=declared["GlobalSecondaryIndexes"],
            BillingMode="PAY_PER_REQUEST",
        )
        store = ResultStore(lambda: table)
        for n in range(args.rows):
            store.put_if_not_older(_result(n))
        os.environ.update(RESULTS_TABLE_NAME=table_name, READ_CACHE_MAX_AGE_SECONDS="60")
        app = load_module_from_file(REPO / "functions" / "read" / "app.py", "read_app")

        def timed(make: Callable[[], dict[str, Any]], count: int) -> dict[str, float]:
            samples: list[float] = []
            for _ in range(count):
                event = make()
                began = time.perf_counter()
                response = app.lambda_handler(event, _Context())
                samples.append((time.perf_counter() - began) * 1000)
                assert response["statusCode"] == 200, response
            return _percentiles(samples)

        def one_id() -> dict[str, Any]:
            return _event("GET", f"/articles/a-{rng.randrange(args.rows)}")

        def one_url() -> dict[str, Any]:
            n = rng.randrange(args.rows)
            return _event("GET", "/categories", f"url=https://news.example/{n // 100}/article-{n}")

        def hundred_ids() -> dict[str, Any]:
            ids = [f"a-{n}" for n in rng.sample(range(args.rows), 100)]
            return _event("POST", "/categories/batch-get", body={"article_ids": ids})

        def hundred_urls() -> dict[str, Any]:
            urls = [f"https://news.example/{n // 100}/article-{n}" for n in rng.sample(range(args.rows), 100)]
            return _event("POST", "/categories/batch-get", body={"urls": urls})

        summary = {
            "rows": args.rows,
            "get_article": timed(one_id, args.requests),
            "get_categories_by_url": timed(one_url, args.requests),
            "batch_get_100_ids": timed(hundred_ids, args.batches),
            "batch_get_100_urls": timed(hundred_urls, args.batches),
        }
    finally:
        moto.stop()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
