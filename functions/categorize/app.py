"""CategorizeFunction: an SQS batch of article events → one category each in ResultsTable.

Records of a batch run concurrently (Powertools async batch processor). A record that can
never succeed goes to the DLQ with its reason and counts as done; a transient failure is
reported as a batch item failure until its last receive, then dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import httpx2
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import ValidationError

from categorizer.active_model import read_active_model
from categorizer.classifier import OpenAIClassifier
from categorizer.config import CategorizeSettings
from categorizer.dlq import DeadLetterQueue
from categorizer.errors import PermanentError, redact
from categorizer.limiter import RateLimiter
from categorizer.models import (
    ActiveModel,
    ArticleEvent,
    UnpublishEvent,
    describe_validation_error,
    is_article_id,
    parse_queue_message,
)
from categorizer.openai_client import OpenAIClientProvider
from categorizer.pricing import Prices
from categorizer.service import BatchScope, CategorizeService, Outcome
from categorizer.shadow import ShadowLimits, ShadowOutcome, ShadowTraffic
from categorizer.store import ResultStore
from categorizer.taxonomy import bundled_taxonomy
from categorizer.textstore import TextStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Time kept back from each record's deadline to dead-letter or report it before Lambda's timeout.
DEADLINE_MARGIN_SECONDS = 3.0
# A record's validation (JSON, HTML to text, normalisation) takes at most ~0.03 s of CPU at the
# size limits (`make bench-parse`); one that runs this long is dead-lettered as validation_timeout.
VALIDATION_SECONDS = 10.0
# Bodies up to this size are validated on the event loop: a few ms at worst (hostile HTML), and a
# hand-off to a worker thread costs more CPU than a typical article's validation (`make
# bench-overhead`). Longer ones are validated in a thread, under VALIDATION_SECONDS.
INLINE_VALIDATION_CHARS = 16_384

T = TypeVar("T")

logger = Logger()
# The function's AWS calls all go through botocore, and it makes no other http.client calls: only
# botocore is patched. patch_all would import and patch every library X-Ray supports that is
# installed (requests, sqlite3, httplib, ...), ~20-30 ms of init for no subsegment more
# (`make bench-coldstart`). OpenAI's calls go through httpx2, which X-Ray does not patch either way.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()

settings = CategorizeSettings.from_env()
limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute, instances=settings.instances)
shadow_limits = ShadowLimits(settings.requests_per_minute, settings.tokens_per_minute)
# botocore validates each request against the service model on the client side, ~10% of the
# handler's CPU (`make bench-overhead`); these requests are built here only, with fixed shapes, and
# DynamoDB and S3 validate them again.
_HOT_PATH_AWS_CONFIG = Config(parameter_validation=False)


# boto3's default session is not thread-safe, and records make clients and resources from worker
# threads after init: every one is made under this lock (two threads loading service models at
# once fail with "I/O operation on closed file").
_SESSION_LOCK = threading.Lock()


def _on_first_use(create: Callable[[], T]) -> Callable[[], T]:
    """`create()` once, when first asked for, from whichever thread asks first.

    Not at init: the first botocore client loads the SDK's endpoint data and its service model
    (S3's: ~100 ms of CPU, `make bench-coldstart`), and an invocation whose records are all
    unchanged, stale or invalid needs no text write and no dead letter.
    """
    made: list[T] = []

    def get() -> T:
        with _SESSION_LOCK:
            if not made:
                made.append(create())
            return made[0]

    return get


def _made_under_session_lock(create: Callable[[], T]) -> Callable[[], T]:
    """`create()` each time asked (the results table: one resource per worker thread), locked."""

    def make() -> T:
        with _SESSION_LOCK:
            return create()

    return make


# Clients are thread-safe (resources are not): one serves the records' text writes.
s3_client: Callable[[], S3Client] = _on_first_use(lambda: boto3.client("s3", config=_HOT_PATH_AWS_CONFIG))
dead_letters = _on_first_use(lambda: DeadLetterQueue(boto3.client("sqs"), settings.dlq_url))


async def _observe_openai_response(response: httpx2.Response) -> None:
    limiter.observe(response.headers, response.status_code)
    shadow_limits.observe(response.headers, response.status_code)  # the account's state, for the candidate too
    # Every response, retries included: the denominator of the 429-rate alarm (docs/operations.md).
    metrics.add_metric(name="OpenAIRequests", unit=MetricUnit.Count, value=1)
    if response.status_code == 429:
        metrics.add_metric(name="OpenAIThrottles", unit=MetricUnit.Count, value=1)


async def _observe_shadow_response(response: httpx2.Response) -> None:
    # Its own 429s pause only the candidate's share, never the active path (categorizer.shadow).
    shadow_limits.observe(response.headers, response.status_code)


def build_service(openai_transport: httpx2.AsyncBaseTransport | None = None) -> CategorizeService:
    """The domain service with its adapters; tests and benchmarks pass an HTTP transport."""
    store = ResultStore(
        _made_under_session_lock(
            lambda: boto3.resource("dynamodb", config=_HOT_PATH_AWS_CONFIG).Table(settings.results_table_name)
        )
    )
    prices = Prices.from_env()
    # A lost shadow sample costs nothing; a retry would spend the candidate's share twice.
    shadow_settings = settings.model_copy(
        update={"openai_max_retries": 0, "openai_timeout_seconds": settings.shadow_timeout_seconds}
    )
    shadow = ShadowTraffic(
        OpenAIClassifier(
            OpenAIClientProvider(shadow_settings, on_response=_observe_shadow_response, transport=openai_transport),
            top_k=settings.top_k,
            label_logit_bias=settings.label_logit_bias,
            prices=prices,
            token_counting=settings.token_counting,
        ),
        shadow_limits,
        store,
    )
    return CategorizeService(
        store,
        OpenAIClassifier(
            OpenAIClientProvider(settings, on_response=_observe_openai_response, transport=openai_transport),
            top_k=settings.top_k,
            label_logit_bias=settings.label_logit_bias,
            prices=prices,
            limiter=limiter,
            token_counting=settings.token_counting,
        ),
        TextStore(s3_client, settings.text_bucket),
        input_token_budget=settings.input_token_budget,
        low_confidence_threshold=settings.low_confidence_threshold,
        review_sample_share=settings.review_sample_share,
        claim_seconds=settings.claim_seconds,
        claim_wait_seconds=settings.claim_wait_seconds,
        shadow=shadow,
    )


service = build_service()
# A batch whose every record failed is reported record by record like any other, not raised:
# raising makes it a function error whose message (the records' exceptions, unredacted) Lambda logs.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _log_keys(record: SQSRecord) -> dict[str, object]:
    """Per-record keys: records run concurrently, so they cannot live in the logger's shared state."""
    keys: dict[str, object] = {"message_id": record.message_id}
    correlation = record.message_attributes["correlation_id"]  # None when absent
    if correlation is not None and correlation.string_value:
        keys["correlation_id"] = correlation.string_value  # the webhook request that queued it
    return keys


async def _dead_letter(record: SQSRecord, reason: str, detail: str, receive_count: int) -> None:
    # boto3 blocks: off the event loop (the client too, made on the first dead letter), so the
    # batch's other records keep going.
    await asyncio.to_thread(
        lambda: dead_letters().send(
            record.body,
            reason=reason,
            detail=detail,
            source="categorize",
            source_message_id=record.message_id,
            receive_count=receive_count,
        )
    )
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
    # The same count with a reason dimension (the dashboard's "dead letters by reason"). EMF gives
    # every metric of one blob the same dimensions, so this one goes out as its own blob.
    with single_metric(
        name="DeadLettered", unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as by_reason:
        by_reason.add_dimension(name="reason", value=reason)
    logger.warning("dead-lettered", extra={**_log_keys(record), "reason": reason, "detail": redact(detail)})


def _record_outcome(record: SQSRecord, article: ArticleEvent | UnpublishEvent, outcome: Outcome) -> None:
    log: dict[str, object] = {
        **_log_keys(record),
        "article_id": article.article_id,
        "revision": article.revision,
        "status": outcome.status,
    }
    if outcome.status == "stale":
        metrics.add_metric(name="StaleSkipped", unit=MetricUnit.Count, value=1)
    elif outcome.status == "removed":
        metrics.add_metric(name="ArticlesRemoved", unit=MetricUnit.Count, value=1)
    elif outcome.status == "unchanged":
        metrics.add_metric(name="UnchangedSkipped", unit=MetricUnit.Count, value=1)
    if outcome.result is not None and outcome.classification is not None:
        result, call = outcome.result, outcome.classification
        metrics.add_metric(name="ArticlesCategorized", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PromptTokens", unit=MetricUnit.Count, value=call.prompt_tokens)
        metrics.add_metric(name="CompletionTokens", unit=MetricUnit.Count, value=call.completion_tokens)
        metrics.add_metric(name="EstimatedCostMicroUSD", unit=MetricUnit.Count, value=call.cost_usd * 1e6)
        metrics.add_metric(name="OpenAILatency", unit=MetricUnit.Milliseconds, value=call.latency_ms)
        metrics.add_metric(name="Confidence", unit=MetricUnit.NoUnit, value=result.probability)
        metrics.add_metric(name="Coverage", unit=MetricUnit.NoUnit, value=result.coverage)
        # How long the call queued for this instance's share of the OpenAI limits: a wait that
        # grows while OpenAILatency does not says the share, not OpenAI, holds the rate back
        # (docs/design.md invariant 7; docs/capacity.md).
        metrics.add_metric(name="LimiterWait", unit=MetricUnit.Milliseconds, value=call.limiter_wait_ms)
        if result.needs_review:
            metrics.add_metric(name="LowConfidence", unit=MetricUnit.Count, value=1)
        log |= {
            "category_id": result.category_id,
            "probability": round(result.probability, 4),
            "coverage": round(result.coverage, 4),
            "needs_review": result.needs_review,
            "prompt_tokens": call.prompt_tokens,
        }
    logger.info("article processed", extra=log)


async def _transient_failure(record: SQSRecord, error: Exception, receive_count: int) -> None:
    """Dead-lettered on the last receive, with the error as its reason's detail; raised (retried) before."""
    if receive_count >= settings.max_receive_count:
        await _dead_letter(record, "retries_exhausted", f"{type(error).__name__}: {error}", receive_count)
        return
    logger.warning(
        "transient failure; the record will be retried",
        extra={**_log_keys(record), "receive_count": receive_count, "error": redact(repr(error))},
    )
    raise error


async def record_handler(record: SQSRecord, lambda_context: LambdaContext, scope: BatchScope) -> None:
    receive_count = int(record.attributes.approximate_receive_count or "1")
    # Stop before Lambda's own timeout: a timed-out invocation fails the whole batch, and SQS would
    # then dead-letter the last receive without a reason. As a TimeoutError it is an ordinary
    # transient failure instead. Validation of a long body (HTML parsing included) runs under the
    # same deadline, in a thread, so one record's body never holds up its neighbours on the loop.
    budget = max(lambda_context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS, 0.1)
    deadline = asyncio.get_running_loop().time() + budget
    validation_bound = min(VALIDATION_SECONDS, budget)
    try:
        if len(record.body) <= INLINE_VALIDATION_CHARS:
            article = parse_queue_message(record.body)
        else:
            async with asyncio.timeout(validation_bound):
                article = await asyncio.to_thread(parse_queue_message, record.body)
    except ValidationError as error:
        await _dead_letter(record, "validation_error", describe_validation_error(error), receive_count)
        return
    except TimeoutError as error:
        if validation_bound == VALIDATION_SECONDS:  # the whole bound was available: the body itself is the cause
            detail = f"validating the message took longer than {VALIDATION_SECONDS:.0f} s"
            await _dead_letter(record, "validation_timeout", detail, receive_count)
            return
        await _transient_failure(record, error, receive_count)  # the invocation itself ran out of time
        return
    try:
        async with asyncio.timeout_at(deadline):
            if isinstance(article, UnpublishEvent):
                outcome = await service.unpublish(article)
            else:
                active = scope.active if scope.active is not None else await asyncio.to_thread(_read_active_model)
                outcome = await service.categorize(article, active, bundled_taxonomy(active.taxonomy_version), scope)
    except PermanentError as error:
        await _dead_letter(record, error.reason, error.detail, receive_count)
        return
    except Exception as error:
        await _transient_failure(record, error, receive_count)
        return
    _record_outcome(record, article, outcome)
    if isinstance(article, UnpublishEvent):
        return  # a tombstone has no answer for a candidate to compare
    # After the result is stored and counted, outside the record's try: the candidate can only log
    # and count, never fail or retry the record. Bounded to end before the record's deadline.
    seconds = min(settings.shadow_timeout_seconds, deadline - asyncio.get_running_loop().time())
    shadowed = await service.ask_shadow(outcome, active, bundled_taxonomy(active.taxonomy_version), seconds=seconds)
    if shadowed is not None:
        _record_shadow(record, article, shadowed)


def _record_shadow(record: SQSRecord, article: ArticleEvent, shadowed: ShadowOutcome) -> None:
    """Shadow metrics (docs/operations.md#shadow-traffic): calls, agreement, cost, failures by reason."""
    metrics.add_metric(name="ShadowRequests", unit=MetricUnit.Count, value=1)
    log: dict[str, object] = {
        **_log_keys(record),
        "article_id": article.article_id,
        "revision": article.revision,
        "shadow_model_id": shadowed.model_id,
        "shadow_status": shadowed.status,
    }
    if shadowed.answer is not None:  # paid for, stored or not
        answer = shadowed.answer
        metrics.add_metric(name="ShadowPromptTokens", unit=MetricUnit.Count, value=answer.prompt_tokens)
        metrics.add_metric(name="ShadowCostMicroUSD", unit=MetricUnit.Count, value=answer.cost_usd * 1e6)
        log |= {"shadow_category_id": answer.category_id, "shadow_probability": round(answer.probability, 4)}
    if shadowed.status == "compared":
        metrics.add_metric(name="ShadowCompared", unit=MetricUnit.Count, value=1)
        if shadowed.agreed:
            metrics.add_metric(name="ShadowAgreed", unit=MetricUnit.Count, value=1)
    elif shadowed.status == "stale":
        metrics.add_metric(name="ShadowStale", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="ShadowFailed", unit=MetricUnit.Count, value=1)
        log["shadow_failure"] = shadowed.reason
        logger.warning("shadow call failed; the stored result stands", extra=log)
        return
    logger.info("shadow compared", extra=log)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    if not event.get("Records"):  # Powertools rejects an empty batch as an unknown event type
        return {"batchItemFailures": []}
    return async_process_partial_response(
        event=event,
        record_handler=functools.partial(record_handler, scope=_batch_scope(event["Records"])),
        processor=processor,
        context=context,
    )


def _read_active_model() -> ActiveModel:
    return read_active_model(settings.active_model_parameter, settings.config_cache_seconds)


def _batch_scope(records: list[dict[str, Any]]) -> BatchScope:
    """The batch's rows in one BatchGetItem (keyed by the article_id attribute ingest sets on each
    message) and the active model, read once for all its records.

    A failed read costs only the shortcut: each record then reads its own row, or the model.
    """
    ids = [
        value
        for record in records
        if is_article_id(value := record.get("messageAttributes", {}).get("article_id", {}).get("stringValue"))
    ]
    try:
        scope = service.batch_scope(ids)
    except Exception as error:
        logger.warning("batch read failed; records read their rows one by one", extra={"error": redact(repr(error))})
        scope = BatchScope()
    try:
        scope.active = _read_active_model()
    except Exception as error:  # no model yet, SSM throttled: each categorize record tries, and fails, on its own
        logger.warning("active model read failed", extra={"error": redact(repr(error))})
    return scope
