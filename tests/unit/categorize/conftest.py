"""Fixtures for the categorize function: moto AWS, a scripted HTTP-level OpenAI, the handler."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest
from moto import mock_aws

from categorizer.active_model import write_active_model
from categorizer.models import ActiveModel
from local.lambda_shapes import load_module_from_file
from local.openai_server.chat import chat_completion_json

REPO = Path(__file__).resolve().parents[3]
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:acme::unit1"
TAXONOMY_VERSION = "iab-3.1"

Answer = list[tuple[str, float]]  # (token, probability) of the one completion token


@dataclass
class FakeOpenAI:
    """An HTTP-level stand-in for the chat completions endpoint.

    `answer` decides the default reply from the request; `script` queues responses for
    requests whose user message contains a marker (e.g. "FAIL-500").
    """

    answer: Callable[[dict[str, Any]], Answer] = lambda request: [("3", 0.80), ("7", 0.15), (" six", 0.03)]
    scripted: dict[str, list[httpx2.Response]] = field(default_factory=dict)
    always: dict[str, httpx2.Response] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        user = body["messages"][-1]["content"]
        for marker, response in self.always.items():
            if marker in user:
                return response
        for marker, queue in self.scripted.items():
            if marker in user and queue:
                return queue.pop(0)
        return httpx2.Response(200, json=chat_completion_json(body["model"], self.answer(body)))

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def calls_for(self, marker: str) -> int:
        return sum(marker in r["messages"][-1]["content"] for r in self.requests)


@dataclass
class Stack:
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


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "article_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "article_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
        secret_arn = boto3.client("secretsmanager").create_secret(Name="openai", SecretString="sk-unit-test-key")["ARN"]
        ssm = boto3.client("ssm")
        write_active_model(ssm, "/test/active-model", ActiveModel(model_id=MODEL_ID, taxonomy_version=TAXONOMY_VERSION))
        for name, value in {
            "RESULTS_TABLE_NAME": "results",
            "DLQ_URL": dlq_url,
            "OPENAI_API_KEY_SECRET_ARN": secret_arn,
            "ACTIVE_MODEL_PARAMETER": "/test/active-model",
            "CONFIG_CACHE_SECONDS": "0",
            "OPENAI_MAX_RETRIES": "2",
            "MAX_RECEIVE_COUNT": "3",
            "TOP_K": "5",
            "LOW_CONFIDENCE_THRESHOLD": "0.5",
        }.items():
            monkeypatch.setenv(name, value)
        yield Stack(table, sqs, dlq_url, ssm)


@pytest.fixture
def fake_openai() -> FakeOpenAI:
    return FakeOpenAI()


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py afresh, as a new Lambda execution environment would."""
    return load_module_from_file(REPO / "functions" / name / "app.py", name)


@pytest.fixture
def categorize(stack: Stack, fake_openai: FakeOpenAI) -> ModuleType:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    app = load_function("categorize")
    app.service = app.build_service(openai_transport=fake_openai.transport())  # type: ignore[attr-defined]
    return app


def article(article_id: str = "a-1", **overrides: Any) -> dict[str, Any]:
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
