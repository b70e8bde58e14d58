"""Shadow traffic's cost: livedoor articles through CategorizeFunction with a candidate at a share.

CategorizeFunction's real handler on SQS batches of livedoor articles, moto's in-process AWS,
and an OpenAI answering every request (active and candidate) with a one-token completion whose
usage reports the request's own prompt tokens (the client's o200k_base count of the messages),
so costs follow the real articles' lengths at the deployed INPUT_TOKEN_BUDGET. The figures are
read back from what the function produced: the rows' `cost_usd` and `shadow.cost_usd`, and
the EMF metrics it printed (ShadowRequests, ShadowCostMicroUSD, EstimatedCostMicroUSD).

    .venv/bin/python -m bench.shadow --data PATH [--articles 2000] [--share 0.1]

Writes bench/results/shadow.json and prints it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.overhead import BATCH_SIZE, BENCH_ENV, DATA, REPO, RESULTS, livedoor_articles

ACTIVE = "ft:gpt-4o-mini-2024-07-18:bench::active"
CANDIDATE = "ft:gpt-4o-mini-2024-07-18:bench::candidate"


def measure(n_articles: int, share: float, data: Path) -> dict[str, Any]:
    os.environ.update(BENCH_ENV)
    from datetime import UTC, datetime

    import boto3
    import httpx2
    from moto import mock_aws

    from categorizer.active_model import write_active_model
    from categorizer.models import ActiveModel, ShadowConfig
    from categorizer.prompt import estimate_prompt_tokens
    from local.lambda_shapes import LambdaContext, load_module_from_file, sqs_event
    from local.openai_server.chat import chat_completion_json

    articles = livedoor_articles(data, n_articles)

    def answer(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        label = "3" if body["model"] == ACTIVE else "7"  # the candidate disagrees: both answers are stored
        completion = chat_completion_json(
            body["model"], [(label, 0.8), ("12", 0.2)], prompt_tokens=estimate_prompt_tokens(body["messages"])
        )
        return httpx2.Response(200, json=completion)

    with mock_aws():
        table = boto3.resource("dynamodb").create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "article_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "article_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dlq_url = boto3.client("sqs").create_queue(QueueName="dlq")["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket="texts")
        secret = boto3.client("secretsmanager").create_secret(Name="openai", SecretString="sk-bench")["ARN"]
        record = ActiveModel(
            model_id=ACTIVE,
            taxonomy_version="iab-3.1",
            shadow=ShadowConfig(model_id=CANDIDATE, share=share, started_at=datetime.now(UTC)),
        )
        write_active_model(boto3.client("ssm"), "/bench/active-model", record)
        os.environ.update(
            {
                "RESULTS_TABLE_NAME": "results",
                "DLQ_URL": dlq_url,
                "TEXT_BUCKET": "texts",
                "OPENAI_API_KEY_SECRET_ARN": secret,
                "ACTIVE_MODEL_PARAMETER": "/bench/active-model",
                "POWERTOOLS_METRICS_DISABLED": "false",
            }
        )
        printed = io.StringIO()
        stdout, sys.stdout = sys.stdout, printed
        try:
            app = load_module_from_file(REPO / "functions" / "categorize" / "app.py", "categorize")
            app.service = app.build_service(openai_transport=httpx2.MockTransport(answer))  # type: ignore[attr-defined]
            for start in range(0, len(articles), BATCH_SIZE):
                batch = articles[start : start + BATCH_SIZE]
                failures = app.lambda_handler(sqs_event(*batch), LambdaContext())["batchItemFailures"]
                assert not failures, failures
        finally:
            sys.stdout = stdout
        page = table.scan()
        items: list[dict[str, Any]] = [dict(item) for item in page["Items"]]
        while "LastEvaluatedKey" in page:  # moto pages at 1 MB like DynamoDB
            page = table.scan(ExclusiveStartKey=page["LastEvaluatedKey"])
            items += [dict(item) for item in page["Items"]]
    emf: dict[str, float] = {}
    for line in printed.getvalue().splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for name in ("ShadowRequests", "ShadowFailed", "ShadowCostMicroUSD", "EstimatedCostMicroUSD"):
                values = blob.get(name, [])
                emf[name] = emf.get(name, 0.0) + sum(values if isinstance(values, list) else [values])
    shadowed = [item for item in items if "shadow" in item]
    per_thousand = 1000 / len(items)
    active_cost = sum(float(item["cost_usd"]) for item in items)
    shadow_cost = sum(float(item["shadow"]["cost_usd"]) for item in shadowed)
    return {
        "articles": len(items),
        "share": share,
        "shadowed": len(shadowed),
        "shadowed_fraction": round(len(shadowed) / len(items), 4),
        "shadow_failed": int(emf.get("ShadowFailed", 0)),
        "mean_prompt_tokens": round(sum(int(item["prompt_tokens"]) for item in items) / len(items), 1),
        "active_cost_usd_per_1000_articles": round(active_cost * per_thousand, 5),
        "shadow_cost_usd_per_1000_articles": round(shadow_cost * per_thousand, 5),
        "shadow_cost_share_of_active": round(shadow_cost / active_cost, 4),
        # The same figures as the dashboard sees them (EMF), to check the metric path against the rows.
        "emf_shadow_requests": int(emf.get("ShadowRequests", 0)),
        "emf_shadow_cost_usd_per_1000_articles": round(emf.get("ShadowCostMicroUSD", 0) / 1e6 * per_thousand, 5),
        "emf_active_cost_usd_per_1000_articles": round(emf.get("EstimatedCostMicroUSD", 0) / 1e6 * per_thousand, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--data", type=Path, default=DATA, help="livedoor JSONL.gz (read by path)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = measure(args.articles, args.share, args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shadow.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
