"""IngestFunction under test: its queue and webhook secret in moto, signed HTTP API events, calls."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from categorizer.ingest import signature_headers
from tests.support.lambda_env import LambdaContext, http_api_event, load_function

SECRET = "whsec-unit-0123456789abcdef"
PREVIOUS_SECRET = "whsec-unit-previous-secret"
INGEST_URL = "https://api.example/articles"


def ingest_url(query: dict[str, str] | None = None) -> str:
    """The URL a sender posts to (and signs): POST /articles with `query`."""
    return f"{INGEST_URL}?{urlencode(query)}" if query else INGEST_URL


@dataclass
class IngestStack:
    sqs: Any
    queue_url: str
    secret_arn: str

    def queued(self) -> list[dict[str, Any]]:
        """Every message in the queue (the queue is drained)."""
        bodies: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def create_ingest_stack(monkeypatch: pytest.MonkeyPatch) -> IngestStack:
    """The article queue and the webhook secret (current and previous), and the function's environment.

    Call it inside `mock_aws`.
    """
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="article-queue")["QueueUrl"]
    secret_value = json.dumps({"webhook_secret": SECRET, "previous_webhook_secret": PREVIOUS_SECRET})
    secret_arn = boto3.client("secretsmanager").create_secret(Name="webhook", SecretString=secret_value)["ARN"]
    for name, value in {
        "ARTICLE_QUEUE_URL": queue_url,
        "WEBHOOK_SECRET_ARN": secret_arn,
        "SECRET_CACHE_SECONDS": "0",
        "MAX_REQUEST_BYTES": "1048576",
        "MAX_BATCH_ITEMS": "20",
    }.items():
        monkeypatch.setenv(name, value)
    return IngestStack(sqs, queue_url, secret_arn)


def load_ingest() -> ModuleType:
    """A cold start of the handler."""
    parameters.clear_caches()
    return load_function("ingest")


def signed_headers(
    body: bytes, *, url: str = INGEST_URL, secret: str = SECRET, now: float | None = None
) -> dict[str, str]:
    return {"content-type": "application/json", **signature_headers(secret.encode(), body, url, now=now)}


def http_event(
    body: bytes,
    headers: dict[str, str],
    *,
    query: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for POST /articles."""
    return http_api_event(
        "POST",
        "/articles",
        raw_query=urlencode(query or {}),
        query=query,
        headers=headers,
        body=base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8"),
        base64_encoded=base64_encoded,
    )


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def call(app: ModuleType, event: dict[str, Any]) -> HttpResult:
    response = app.lambda_handler(event, LambdaContext("IngestFunction"))
    return HttpResult(response["statusCode"], json.loads(response["body"]), response.get("headers", {}))


def post(app: ModuleType, payload: Any, *, query: dict[str, str] | None = None, **kwargs: Any) -> HttpResult:
    """Sign `payload` (JSON unless bytes) with the current secret and POST it to the handler."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return call(app, http_event(body, signed_headers(body, url=ingest_url(query)), query=query, **kwargs))
