"""IngestFunction: `POST /articles` from the CMS → validated article events in ArticleQueue.

The HTTP contract (signature, payload shapes, status codes) is `categorizer.ingest`; this
handler only adapts API Gateway's HTTP API event to it. docs/ingest.md documents it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from categorizer.config import IngestSettings
from categorizer.ingest import (
    ArticleQueue,
    WebhookLimits,
    WebhookRequest,
    handle_webhook,
    webhook_secrets,
)

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = IngestSettings.from_env()
# botocore retries a SendMessageBatch call that fails as a whole (throttling, 5xx, connection
# errors), with jittered exponential backoff and a retry quota that stops retrying while most
# calls fail. "standard", not "adaptive": adaptive adds a client-side rate limiter per container
# that delays later calls after a throttle, where this synchronous webhook would rather answer
# 503 and let the CMS resend; API Gateway throttling already bounds the request rate. Entries
# failed inside a successful response are ArticleQueue's to retry (botocore does not look there).
# total_max_attempts counts the first call (botocore's `max_attempts` would count retries only).
sqs = boto3.client("sqs", config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
queue = ArticleQueue(sqs, settings.article_queue_url)
limits = WebhookLimits(
    max_request_bytes=settings.max_request_bytes,
    max_batch_items=settings.max_batch_items,
    signature_tolerance_seconds=settings.signature_tolerance_seconds,
)
app = APIGatewayHttpResolver()


def _secrets() -> Sequence[bytes]:
    value = parameters.get_secret(settings.webhook_secret_arn, max_age=settings.secret_cache_seconds)
    return webhook_secrets(str(value))


def _json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers,
    )


@app.post("/articles")
def post_articles() -> Response[str]:
    event = app.current_event
    raw = event.body or ""
    # API Gateway base64-encodes bodies it does not take for text (e.g. invalid UTF-8).
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8", "surrogatepass")
    request = WebhookRequest(
        headers=event.headers,
        body=body,
        method=event.http_method,
        path=event.raw_path,
        query=event.raw_query_string,
        correlation_id=logger.get_correlation_id(),
    )
    try:
        response = handle_webhook(request, secrets=_secrets, queue=queue, limits=limits)
    except (ClientError, BotoCoreError, parameters.exceptions.GetParameterError) as error:
        logger.exception("ingest dependency failed", extra={"error": type(error).__name__})
        return _json_response(503, {"message": "temporarily unavailable; resend later"}, {"Retry-After": "5"})
    logger.info("webhook handled", extra={"status": response.status, **response.log})
    metrics.add_metric(name=f"Ingest{response.status}", unit=MetricUnit.Count, value=1)
    if response.status == 202:
        metrics.add_metric(name="ArticlesQueued", unit=MetricUnit.Count, value=response.body["count"])
    return _json_response(response.status, response.body, response.headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
