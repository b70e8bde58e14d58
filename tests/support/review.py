"""The review queue under test: ResultsTable as template.yaml defines it (its GSI included) in moto,
the text store and pipeline buckets, rows written through the categorize write path, API events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from categorizer.active_model import write_active_model
from categorizer.classifier import Classification
from categorizer.decoding import Decoded
from categorizer.models import ActiveModel, Prediction
from categorizer.service import build_result
from categorizer.store import ResultStore
from categorizer.taxonomy import bundled_taxonomy
from categorizer.textstore import StoredText, TextStore
from tests.support.lambda_env import LambdaContext, http_api_event, load_function
from tests.support.results_table import create_results_table

TABLE = "results"
TEXT_BUCKET = "article-texts"
PIPELINE_BUCKET = "pipeline"
ACTIVE_MODEL_PARAMETER = "/test/active-model"
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:acme::review1"
TAXONOMY = bundled_taxonomy("demo-2")
THRESHOLD = 0.5
REVIEWER = "editor@news.example"
OPERATOR_ARN = "arn:aws:iam::123456789012:user/operator"


@dataclass
class ReviewStack:
    table: Any
    s3: Any

    def row(self, article_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.table.get_item(Key={"article_id": article_id})["Item"]
        return item

    def label_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=PIPELINE_BUCKET, Prefix="labels/")
        return [entry["Key"] for entry in listing.get("Contents", [])]

    def label_lines(self) -> list[dict[str, Any]]:
        lines = []
        for key in self.label_keys():
            body = self.s3.get_object(Bucket=PIPELINE_BUCKET, Key=key)["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines()]
        return lines

    def categorize(
        self,
        article_id: str,
        probability: float,
        *,
        revision: int = 1,
        sample_share: float = 0.0,
        categories: tuple[str, ...] = ("technology", "business"),
    ) -> None:
        """Write a result as the categorize function does: the text first, then the row."""
        text = StoredText(
            article_id=article_id,
            revision=revision,
            content_hash=f"hash-{article_id}-{revision}",
            title=f"Title of {article_id}",
            body=f"What the model read of {article_id} at revision {revision}.",
            truncated=False,
            input_token_budget=1024,
            url=f"https://news.example/{quote(article_id, safe='')}",
        )
        TextStore(lambda: self.s3, TEXT_BUCKET).put(text)
        first, second = (TAXONOMY.by_id[c] for c in categories)
        predictions = [
            Prediction(label=first.label, category_id=first.id, name=first.name, probability=probability),
            Prediction(label=second.label, category_id=second.id, name=second.name, probability=1 - probability),
        ]
        classification = Classification(Decoded(predictions=predictions, coverage=0.99), MODEL_ID, 100, 1, 1.0, 0, 0)
        result = build_result(text, MODEL_ID, TAXONOMY, classification, THRESHOLD, "live", sample_share)
        assert ResultStore(lambda: self.table).put_if_not_older(result)


def create_review_stack(monkeypatch: pytest.MonkeyPatch) -> ReviewStack:
    """ReviewFunction's resources and environment (call inside mock_aws)."""
    table = create_results_table(TABLE)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=TEXT_BUCKET)
    s3.create_bucket(Bucket=PIPELINE_BUCKET)
    write_active_model(
        boto3.client("ssm"), ACTIVE_MODEL_PARAMETER, ActiveModel(model_id=MODEL_ID, taxonomy_version="demo-2")
    )
    for name, value in {
        "RESULTS_TABLE_NAME": TABLE,
        "TEXT_BUCKET": TEXT_BUCKET,
        "PIPELINE_BUCKET": PIPELINE_BUCKET,
        "ACTIVE_MODEL_PARAMETER": ACTIVE_MODEL_PARAMETER,
        "CONFIG_CACHE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    return ReviewStack(table, s3)


def load_review() -> ModuleType:
    return load_function("review")


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    iam_arn: str | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as API Gateway sends it after its authorizer let it through."""
    authorizer: dict[str, Any] = {}
    if claims is not None:
        authorizer["jwt"] = {"claims": claims, "scopes": None}
    if iam_arn is not None:
        authorizer["iam"] = {"userArn": iam_arn, "accountId": "123456789012", "callerId": "AIDAOPERATOR"}
    return http_api_event(
        method,
        path,
        raw_query="&".join(f"{k}={v}" for k, v in (query or {}).items()),
        query=query,
        body=None if body is None else (body if isinstance(body, str) else json.dumps(body)),
        authorizer=authorizer,
    )


def call(app: ModuleType, event: dict[str, Any]) -> tuple[int, Any]:
    response = app.lambda_handler(event, LambdaContext(function_name="ReviewFunction"))
    body = response.get("body") or ""
    content_type = response.get("headers", {}).get("Content-Type", "")
    return int(response["statusCode"]), json.loads(body) if "json" in content_type and body else body
