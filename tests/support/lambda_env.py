"""What the Lambda Python runtime hands a handler, shaped for unit tests.

The context follows Powertools' testing guide (a dataclass with the attributes it reads), plus
the remaining-time clock CategorizeFunction budgets its records by. SQS records copy the
sample event the functions are invoked with (events/sqs-batch.json), so tests and
`sam local invoke` feed the handler the same shape.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tests.support.paths import REPO

SAMPLE_SQS_RECORD: dict[str, Any] = json.loads((REPO / "events" / "sqs-batch.json").read_text())["Records"][0]


@dataclass
class LambdaContext:
    """The context object; its clock runs down from `timeout_seconds` after it was made."""

    function_name: str = "CategorizeFunction"
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


def http_api_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    raw_query: str = "",
    query: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    base64_encoded: bool = False,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it once the route's
    authorizer (`authorizer`: what it let through) has passed it; `path` is sent as given (raw),
    `headers` replace the default JSON content type."""
    route_key = route or f"{method} {path}"
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example",
        "domainPrefix": "api",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "t"},
        "requestId": "req-1",
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if authorizer:
        context["authorizer"] = dict(authorizer)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"content-type": "application/json"} if headers is None else dict(headers),
        "requestContext": context,
        "isBase64Encoded": base64_encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


def sqs_event(*bodies: Mapping[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch event of these message bodies (a mapping is sent as JSON), all on one receive.

    A mapping's article_id also travels as the message attribute ingest sets.
    """
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        article_id = body.get("article_id") if not isinstance(body, str) else None
        attributes = (
            {
                "article_id": {
                    "stringValue": article_id,
                    "dataType": "String",
                    "stringListValues": [],
                    "binaryListValues": [],
                }
            }
            if isinstance(article_id, str)
            else {}
        )
        records.append(
            SAMPLE_SQS_RECORD
            | {
                "messageId": f"m-{index}-{uuid.uuid4().hex[:6]}",
                "receiptHandle": f"rh-{index}",
                "body": text,
                "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
                "attributes": SAMPLE_SQS_RECORD["attributes"] | {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": attributes,
            }
        )
    return {"Records": records}


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py afresh, as a new Lambda execution environment would.

    Dropping the previous import first gives each load its own module-level clients and state.
    """
    module_name = f"functions.{name}.app"
    sys.modules.pop(module_name, None)
    return importlib.import_module(module_name)
