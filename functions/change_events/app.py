"""ChangeEventsFunction: ResultsTable's stream → ArticleCategorized / ArticleCategoryChanged / ArticleRemoved.

What a row change means is `categorizer.change_events`; this handler reads the stream batch
with Powertools' batch utility and puts one event per meaningful change on the results bus.
A record whose event EventBridge refused is a batch item failure: Lambda retries the batch
from it (docs/design.md invariant 9, at least once), bisects a batch whose invocation fails,
and sends what never succeeds to the on-failure destination (template.yaml).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.change_events import change_event, put_events_entry
from categorizer.config import ChangeEventsSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = ChangeEventsSettings.from_env()
events = boto3.client("events")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


class PublishFailed(RuntimeError):
    """EventBridge did not take the event: the record is retried."""


def record_handler(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    if stream is None:
        return
    created = stream.approximate_creation_date_time
    changed_at = datetime.fromtimestamp(created, UTC) if created is not None else datetime.now(UTC)
    old = stream.old_image or None
    new = stream.new_image or None
    event = change_event(old, new, changed_at=changed_at)
    if event is None:
        metrics.add_metric(name="ChangeEventsSkipped", unit=MetricUnit.Count, value=1)
        return
    response = events.put_events(Entries=[put_events_entry(event, settings.event_bus_name, changed_at)])
    if response.get("FailedEntryCount"):
        [entry] = response["Entries"]
        raise PublishFailed(f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    metrics.add_metric(name="ChangeEventsPublished", unit=MetricUnit.Count, value=1)
    logger.info(
        "change event published",
        extra={"article_id": event.detail.article_id, "revision": event.detail.revision, "type": event.detail_type},
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
