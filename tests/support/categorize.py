"""CategorizeFunction under test: its AWS resources in moto, its environment, article events."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest
from aws_lambda_powertools.utilities import parameters

from categorizer.active_model import write_active_model
from categorizer.models import ActiveModel
from tests.support.lambda_env import load_function
from tests.support.results_table import create_results_table

MODEL_ID = "ft:gpt-4o-mini-2024-07-18:acme::unit1"
TAXONOMY_VERSION = "iab-3.1"
ACTIVE_MODEL_PARAMETER = "/test/active-model"
OPENAI_KEY = "sk-unit-test-key"
TEXT_BUCKET = "article-texts"


@dataclass
class CategorizeStack:
    table: Any
    sqs: Any
    dlq_url: str
    ssm: Any

    def dlq_messages(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        )
        return list(response.get("Messages", []))

    def row(self, article_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key={"article_id": article_id}).get("Item")
        return item


def create_categorize_stack(monkeypatch: pytest.MonkeyPatch) -> CategorizeStack:
    """The table, DLQ, OpenAI key secret and active-model record, and the function's environment.

    Call it inside `mock_aws`.
    """
    table = create_results_table("results")
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
    secret_arn = boto3.client("secretsmanager").create_secret(Name="openai", SecretString=OPENAI_KEY)["ARN"]
    boto3.client("s3").create_bucket(Bucket=TEXT_BUCKET)
    ssm = boto3.client("ssm")
    write_active_model(ssm, ACTIVE_MODEL_PARAMETER, ActiveModel(model_id=MODEL_ID, taxonomy_version=TAXONOMY_VERSION))
    for name, value in {
        "RESULTS_TABLE_NAME": "results",
        "DLQ_URL": dlq_url,
        "TEXT_BUCKET": TEXT_BUCKET,
        "OPENAI_API_KEY_SECRET_ARN": secret_arn,
        "ACTIVE_MODEL_PARAMETER": ACTIVE_MODEL_PARAMETER,
        "CONFIG_CACHE_SECONDS": "0",
        "OPENAI_MAX_RETRIES": "2",
        "MAX_RECEIVE_COUNT": "3",
        "TOP_K": "5",
        "LOW_CONFIDENCE_THRESHOLD": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    return CategorizeStack(table, sqs, dlq_url, ssm)


def load_categorize(openai_transport: httpx2.AsyncBaseTransport) -> ModuleType:
    """A cold start of the handler whose OpenAI client sends through `openai_transport`."""
    parameters.clear_caches()
    app = load_function("categorize")
    app.service = app.build_service(openai_transport=openai_transport)  # type: ignore[attr-defined]
    return app


def article(article_id: str = "a-1", **overrides: Any) -> dict[str, Any]:
    """A valid article event; `overrides` replace or add fields."""
    event: dict[str, Any] = {
        "article_id": article_id,
        "url": f"https://news.example/{article_id}",
        "title": "Chip maker unveils a faster laptop processor",
        "body": "The company said the new processor doubles battery life for thin laptops.",
        "language": "en",
        "version": 1,
        "site": "news.example",
    }
    event.update(overrides)
    return event
