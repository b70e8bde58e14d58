"""The HTTP contract of `POST /articles` (docs/ingest.md): a raw request → a status code and a JSON body.

It tests without API Gateway or Lambda. Guarantees:
- 202 lists exactly the articles that are in the queue; nothing else is ever called accepted.
- 400 (invalid JSON or any invalid item) enqueues nothing: a batch is all or nothing, so
  the CMS fixes and resends the whole request. Resending is harmless (docs/design.md invariants 5 and 6).
- 503 after SQS kept failing some entries: the body lists the queued and the failed ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from categorizer.ingest.adapters import ADAPTERS, PayloadError, load_json, split_items
from categorizer.ingest.enqueue import ArticleQueue
from categorizer.ingest.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignedRequest,
    query_parameters,
    verify_signature,
)
from categorizer.ingest.validation import ItemError, ValidItem, validate_item

ADAPTER_PARAMETER = "format"


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"
    path: str = "/articles"
    query: str = ""  # the raw query string, as signed
    correlation_id: str | None = None


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)  # what happened, safe to log


@dataclass(frozen=True)
class WebhookLimits:
    max_request_bytes: int
    max_batch_items: int
    signature_tolerance_seconds: int


def _error(status: int, message: str, *, log: dict[str, Any] | None = None, **extra: Any) -> WebhookResponse:
    return WebhookResponse(status, {"message": message, **extra}, log=log or {})


def _accepted_json(items: Sequence[ValidItem]) -> list[dict[str, Any]]:
    return [{"article_id": i.article.article_id, "revision": i.article.revision} for i in items]


def _content_type_ok(value: str | None) -> bool:
    if not value:
        return False
    media_type, *params = (part.strip().lower() for part in value.split(";"))
    charsets = [p.split("=", 1)[1].strip('"') for p in params if p.startswith("charset=")]
    return media_type == "application/json" and all(c == "utf-8" for c in charsets)


def handle_webhook(
    request: WebhookRequest,
    *,
    secrets: Callable[[], Sequence[bytes]],
    queue: ArticleQueue,
    limits: WebhookLimits,
    now: Callable[[], float] = time.time,
) -> WebhookResponse:
    if len(request.body) > limits.max_request_bytes:
        return _error(413, f"the request body exceeds {limits.max_request_bytes} bytes")
    try:
        parameters = query_parameters(request.query)
    except ValueError:
        return _error(400, "the query string is malformed")
    headers = {name.lower(): value for name, value in request.headers.items()}
    problem = verify_signature(
        secrets(),
        headers.get(TIMESTAMP_HEADER.lower()),
        headers.get(SIGNATURE_HEADER.lower()),
        SignedRequest(request.method, request.path, request.query, request.body),
        now=now(),
        tolerance_seconds=limits.signature_tolerance_seconds,
    )
    if problem is not None:
        return _error(401, "unauthorized", log={"auth_failure": problem})
    if not _content_type_ok(headers.get("content-type")):
        return _error(415, "send Content-Type: application/json (UTF-8)")
    names = [name for name, _ in parameters]
    if set(names) - {ADAPTER_PARAMETER} or len(set(names)) < len(names):
        return _error(400, f"the only query parameter is {ADAPTER_PARAMETER!r}, given at most once")
    adapter_name = dict(parameters).get(ADAPTER_PARAMETER, "generic")
    adapter = ADAPTERS.get(adapter_name)
    if adapter is None:
        return _error(400, f"unknown payload format; use one of {sorted(ADAPTERS)}")
    try:
        items = split_items(load_json(request.body), limits.max_batch_items)
    except PayloadError as error:
        return _error(400, str(error))

    results = [validate_item(index, item, adapter) for index, item in enumerate(items)]
    invalid = [r for r in results if isinstance(r, ItemError)]
    if invalid:
        return _error(
            400,
            f"{len(invalid)} of {len(items)} articles are invalid; nothing was queued",
            errors=[e.to_json() for e in invalid],
            log={"items": len(items), "invalid": len(invalid)},
        )
    valid = [r for r in results if isinstance(r, ValidItem)]
    # An identical event twice in one request is queued once.
    unique = list({item.message: item for item in reversed(valid)}.values())[::-1]
    report = queue.enqueue(unique, request.correlation_id)
    log = {"items": len(items), "queued": len(report.queued), "failed": len(report.failed)}
    if report.failed:
        return WebhookResponse(
            503,
            {
                "message": "some articles could not be queued; resend them",
                "accepted": _accepted_json(report.queued),
                "failed": [
                    {"index": i.index, "article_id": i.article.article_id, "reason": code} for i, code in report.failed
                ],
            },
            headers={"Retry-After": "5"},
            log=log,
        )
    return WebhookResponse(202, {"accepted": _accepted_json(report.queued), "count": len(report.queued)}, log=log)
