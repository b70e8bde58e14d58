"""ReadFunction under test: ResultsTable in moto, stored results, HTTP API requests to the handler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from categorizer.models import CategorizationResult, PathNode, Prediction
from categorizer.urls import canonical_url
from tests.support.lambda_env import LambdaContext, http_api_event, load_function
from tests.support.results_table import create_results_table

EPOCH = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def create_read_stack(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The table and ReadFunction's environment; call it inside `mock_aws`. Returns the table."""
    table = create_results_table("results")
    monkeypatch.setenv("RESULTS_TABLE_NAME", "results")
    monkeypatch.setenv("READ_CACHE_MAX_AGE_SECONDS", "120")
    return table


def load_read() -> ModuleType:
    return load_function("read")


def result(
    article_id: str = "a-1", *, revision: int = 1, url: str | None = None, minutes: int = 0, **overrides: Any
) -> CategorizationResult:
    """A stored result; `minutes` after EPOCH is its categorized_at."""
    page = url or f"https://news.example/{article_id}"
    fields: dict[str, Any] = {
        "article_id": article_id,
        "revision": revision,
        "content_hash": "h",
        "model_id": "ft:gpt-4o-mini:acme::m1",
        "taxonomy_version": "demo-2",
        "category_id": "technology",
        "category_name": "Technology",
        "path": [
            PathNode(id="science-technology", name="Science & Technology"),
            PathNode(id="technology", name="Technology"),
        ],
        "label": "0",
        "probability": 0.9,
        "coverage": 0.99,
        "needs_review": False,
        "top_k": [
            Prediction(label="0", category_id="technology", name="Technology", probability=0.9),
            Prediction(label="2", category_id="business", name="Business", probability=0.1),
        ],
        "prompt_tokens": 40,
        "completion_tokens": 1,
        "cost_usd": 0.00001,
        "truncated": False,
        "url": page,
        "canonical_url": canonical_url(page),
        "title": "A title",
        "categorized_at": EPOCH + timedelta(minutes=minutes),
    }
    fields.update(overrides)
    return CategorizationResult(**fields)


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]


def request(
    app: ModuleType,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> HttpResult:
    """Send an HTTP API (payload 2.0) request to the handler; `path` is sent as given (raw)."""
    raw_query = urlencode(query or {}, quote_via=quote)
    route = "GET /articles/{article_id}" if path.startswith("/articles/") else f"{method} {path}"
    event = http_api_event(
        method,
        path,
        route=route,
        raw_query=raw_query,
        query=query,
        headers={"content-type": "application/json", **(headers or {})},
        body=None if body is None else (body if isinstance(body, str) else json.dumps(body)),
    )
    response = app.lambda_handler(event, LambdaContext("ReadFunction"))
    text = response.get("body") or ""
    return HttpResult(response["statusCode"], json.loads(text) if text else None, response.get("headers", {}))


def iam_signed_headers(url: str, method: str = "GET", secret: str = "offline") -> dict[str, str]:
    """SigV4 headers for an AWS_IAM route of the offline gateway (its only key is offline/offline)."""
    request = AWSRequest(method=method, url=url, data=b"", headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("offline", secret), "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers.items())
