"""Fixtures for the categorize function: moto AWS, a scripted HTTP-level OpenAI, the handler."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import uuid
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

REPO = Path(__file__).resolve().parents[3]
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:acme::unit1"
TAXONOMY_VERSION = "iab-3.1"

Answer = list[tuple[str, float]]  # (token, probability) of the one completion token


def completion_json(model: str, answer: Answer, prompt_tokens: int = 42) -> dict[str, Any]:
    top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in answer]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer[0][0]},
                "logprobs": {"content": [{**top[0], "top_logprobs": top}]},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
    }


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
        return httpx2.Response(200, json=completion_json(body["model"], self.answer(body)))

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
    module_name = f"categorize_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, REPO / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


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


def sqs_event(*bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        records.append(
            {
                "messageId": f"m-{index}-{uuid.uuid4().hex[:6]}",
                "receiptHandle": f"rh-{index}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1764000000000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764000000001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:article-queue",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


@dataclass
class FakeContext:
    function_name: str = "CategorizeFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:CategorizeFunction"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
