"""CMS webhook ingestion: verify the signature, map and validate the payload, enqueue.

The HTTP contract (docs/ingest.md) lives here so it tests without API Gateway or Lambda:
`handle_webhook` turns a raw request into a status code and a JSON body.

Guarantees:
- 202 lists exactly the articles that are in the queue; nothing else is ever called accepted.
- 400 (invalid JSON or any invalid item) enqueues nothing: a batch is all or nothing, so
  the CMS fixes and resends the whole request. Resending is harmless (docs/design.md invariants 5 and 6).
- 503 after SQS kept failing some entries: the body lists the queued and the failed ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from categorizer.models import ArticleEvent, validation_problems

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_PREFIX = "sha256="
ADAPTER_PARAMETER = "format"

# SQS: at most 10 entries and 1 MiB (message bodies and attributes) per SendMessageBatch.
SQS_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 1024 * 1024
# Per message, below the 1 MiB SQS limit with room for the attributes.
MAX_MESSAGE_BYTES = 1024 * 1024 - 4096
# The characters SQS accepts in a message body (anything else fails the whole entry).
_NOT_SQS_SAFE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


# ---------------------------------------------------------------- signature


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `timestamp` + "." + the raw body."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers a sender adds (the publish CLI, tests)."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def webhook_secrets(secret_value: str) -> list[bytes]:
    """The secret holds the shared secret itself, or JSON {"webhook_secret", "previous_webhook_secret"}.

    The previous secret keeps senders working while a rotation rolls out.
    """
    text = secret_value.strip()
    if not text.startswith("{"):
        secrets = [text]
    else:
        document = json.loads(text)
        secrets = [document.get("webhook_secret"), document.get("previous_webhook_secret")]
    usable = [s.encode("utf-8") for s in secrets if isinstance(s, str) and s]
    if not usable:
        raise ValueError("the webhook secret is empty")
    return usable


def verify_signature(
    secrets: Sequence[bytes],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int,
) -> str | None:
    """None when the request is authentic; otherwise why not (for logs only, never for the caller)."""
    if not timestamp or not signature:
        return "missing_signature_headers"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed_timestamp"
    if abs(now - int(timestamp)) > tolerance_seconds:
        return "timestamp_outside_tolerance"
    presented = signature.strip().encode("utf-8", "replace")
    # Every secret is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"), presented) for secret in secrets]
    return None if any(matches) else "signature_mismatch"


# ---------------------------------------------------------------- payload mapping

Adapter = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def generic_adapter(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The generic shape is the ArticleEvent itself (docs/ingest.md)."""
    return item


def wordpress_adapter(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A WordPress post webhook (WP Webhooks `post_create`/`post_update`; REST API post objects)."""
    post = item.get("post")
    if not isinstance(post, Mapping):
        return _wordpress_rest_post(item)
    modified = post.get("post_modified_gmt")
    return {
        "article_id": f"wp-{post.get('ID', item.get('post_id'))}",
        "url": item.get("post_permalink") or post.get("guid"),
        "title": post.get("post_title"),
        "body": post.get("post_content"),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
        "site": item.get("site"),
    }


def _rendered(value: Any) -> Any:
    return value.get("rendered") if isinstance(value, Mapping) else value


def _wordpress_rest_post(item: Mapping[str, Any]) -> Mapping[str, Any]:
    modified = item.get("modified_gmt")
    return {
        "article_id": f"wp-{item.get('id')}",
        "url": item.get("link"),
        "title": _rendered(item.get("title")),
        "body": _rendered(item.get("content")),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
    }


ADAPTERS: dict[str, Adapter] = {"generic": generic_adapter, "wordpress": wordpress_adapter}


class PayloadError(ValueError):
    """The request body as a whole is unusable (not JSON, wrong shape, too many items)."""


def split_items(document: Any, max_items: int) -> list[Any]:
    """One article object, a JSON array of them, or {"articles": [...]}."""
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and "articles" in document:
        items = document["articles"]
        if not isinstance(items, list):
            raise PayloadError("'articles' must be a JSON array")
    elif isinstance(document, dict):
        items = [document]
    else:
        raise PayloadError("the body must be a JSON object or array")
    if not items:
        raise PayloadError("the batch holds no articles")
    if len(items) > max_items:
        raise PayloadError(f"the batch holds {len(items)} articles; the maximum is {max_items}")
    return items


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class ItemError:
    index: int
    article_id: str | None
    errors: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "article_id": self.article_id, "errors": self.errors}


@dataclass(frozen=True)
class ValidItem:
    index: int
    article: ArticleEvent
    message: str  # the SQS message body: the validated event as JSON


def _item_id(item: Any) -> str | None:
    value = item.get("article_id") if isinstance(item, Mapping) else None
    return value[:256] if isinstance(value, str) else None


def validate_item(index: int, item: Any, adapter: Adapter) -> ValidItem | ItemError:
    if not isinstance(item, Mapping):
        return ItemError(index, None, [{"field": "(item)", "reason": "must be a JSON object"}])
    mapped = adapter(item)
    try:
        article = ArticleEvent.model_validate(mapped)
    except ValidationError as error:
        return ItemError(index, _item_id(mapped), validation_problems(error))
    message = article.model_dump_json(exclude_none=True)
    unsafe = _NOT_SQS_SAFE.search(message)
    if unsafe:
        reason = f"contains U+{ord(unsafe.group()):04X}, which a queue message cannot carry"
        return ItemError(index, article.article_id, [{"field": "(event)", "reason": reason}])
    if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
        reason = f"the article exceeds {MAX_MESSAGE_BYTES} bytes as a queue message"
        return ItemError(index, article.article_id, [{"field": "(event)", "reason": reason}])
    return ValidItem(index, article, message)


# ---------------------------------------------------------------- enqueue


@dataclass
class EnqueueReport:
    queued: list[ValidItem] = field(default_factory=list)
    failed: list[tuple[ValidItem, str]] = field(default_factory=list)  # (item, error code)


def _chunks(items: Sequence[ValidItem]) -> list[list[ValidItem]]:
    chunks: list[list[ValidItem]] = []
    size = 0
    for item in items:
        item_size = len(item.message.encode("utf-8"))
        if not chunks or len(chunks[-1]) == SQS_BATCH_ENTRIES or size + item_size > SQS_MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


class ArticleQueue:
    """SendMessageBatch with retries of the entries that failed for a reason SQS may not repeat."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        max_attempts: int = 4,
        base_delay_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._max_attempts = max_attempts
        self._base_delay = base_delay_seconds
        self._sleep = sleep

    def enqueue(self, items: Sequence[ValidItem], correlation_id: str | None = None) -> EnqueueReport:
        report = EnqueueReport()
        for chunk in _chunks(items):
            self._send_chunk(chunk, report, correlation_id)
        return report

    def _send_chunk(self, chunk: list[ValidItem], report: EnqueueReport, correlation_id: str | None) -> None:
        pending = {str(item.index): item for item in chunk}
        last_error: dict[str, str] = {}
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self._base_delay * 2 ** (attempt - 1))
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[self._entry(key, item, correlation_id) for key, item in pending.items()],
                )
            except (ClientError, BotoCoreError) as error:
                code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else ""
                last_error = dict.fromkeys(pending, code or type(error).__name__)
                continue
            for success in response.get("Successful", []):
                report.queued.append(pending.pop(success["Id"]))
            for failure in response.get("Failed", []):
                if failure.get("SenderFault"):  # the entry itself is wrong: a retry cannot help
                    report.failed.append((pending.pop(failure["Id"]), failure.get("Code", "SenderFault")))
                else:
                    last_error[failure["Id"]] = failure.get("Code", "InternalError")
            if not pending:
                return
        report.failed.extend((item, last_error.get(key, "unknown")) for key, item in pending.items())

    @staticmethod
    def _entry(key: str, item: ValidItem, correlation_id: str | None) -> SendMessageBatchRequestEntryTypeDef:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "article_id": {"DataType": "String", "StringValue": item.article.article_id},
            "source": {"DataType": "String", "StringValue": "ingest"},
        }
        if correlation_id:  # the webhook request's id, so CategorizeFunction's logs link back to it
            attributes["correlation_id"] = {"DataType": "String", "StringValue": correlation_id}
        return {"Id": key, "MessageBody": item.message, "MessageAttributes": attributes}


# ---------------------------------------------------------------- the webhook


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
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
    headers = {name.lower(): value for name, value in request.headers.items()}
    problem = verify_signature(
        secrets(),
        headers.get(TIMESTAMP_HEADER.lower()),
        headers.get(SIGNATURE_HEADER.lower()),
        request.body,
        now=now(),
        tolerance_seconds=limits.signature_tolerance_seconds,
    )
    if problem is not None:
        return _error(401, "unauthorized", log={"auth_failure": problem})
    if not _content_type_ok(headers.get("content-type")):
        return _error(415, "send Content-Type: application/json (UTF-8)")
    adapter_name = request.query.get(ADAPTER_PARAMETER, "generic")
    adapter = ADAPTERS.get(adapter_name)
    if adapter is None:
        return _error(400, f"unknown payload format; use one of {sorted(ADAPTERS)}")
    try:
        items = split_items(json.loads(request.body.decode("utf-8")), limits.max_batch_items)
    except UnicodeDecodeError as error:
        return _error(400, f"the body is not valid UTF-8 (byte offset {error.start})")
    except json.JSONDecodeError as error:
        return _error(400, f"the body is not valid JSON: {error.msg} (line {error.lineno} column {error.colno})")
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
