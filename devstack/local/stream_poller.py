"""A DynamoDB stream event source mapping that behaves like Lambda's (moto has streams, no mapping).

Per mapping, one poller reads each shard of the stream from its starting position, in order,
and invokes the function with batches of up to BatchSize records in Lambda's DynamoDB event
shape. Settling follows Lambda's rules for stream sources:

- a partial batch response (ReportBatchItemFailures) checkpoints before the lowest failed
  sequence number: that record and the ones after it are sent again;
- a function error retries the batch; with BisectBatchOnFunctionError the batch is split in
  two and each half retried on its own (retries not counted while bisecting);
- after MaximumRetryAttempts the failed records are skipped and an on-failure record (shard,
  sequence range, reason — not the data, as Lambda does) goes to the SQS destination.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from local.provision import StreamEventSource
from local.runtime import FunctionError, FunctionPool, Invocation

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

_IDLE_SECONDS = 0.2  # Lambda polls each shard about four times a second


@dataclass
class StreamStats:
    invocations: int = 0
    records: int = 0
    function_errors: int = 0
    retried: int = 0  # records sent again after a failure
    sent_to_destination: int = 0
    batch_sizes: list[int] = field(default_factory=list)


def lambda_stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it over (ApproximateCreationDateTime in epoch seconds)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def first_failed_index(invocation: Invocation, batch: list[dict[str, Any]], report_failures: bool) -> int | None:
    """Where the batch must be sent again from (None: all done), by Lambda's stream rules."""
    if invocation.error:
        return 0
    payload = invocation.payload
    if not report_failures or not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return None
    sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
    failed = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in payload["batchItemFailures"]]
    if any(identifier not in sequence for identifier in failed):
        return 0  # an invalid response fails the whole batch
    return min(sequence.index(identifier) for identifier in failed)


class StreamPoller:
    """Runs one stream event source mapping until stopped (one thread; shards in turn)."""

    def __init__(
        self,
        source: StreamEventSource,
        pool: FunctionPool,
        streams_factory: Any,
        sqs_factory: Any,
        region: str,
    ) -> None:
        self.source = source
        self.pool = pool
        self.stats = StreamStats()
        self._streams_factory = streams_factory
        self._sqs_factory = sqs_factory
        self._region = region
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._idle_since: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.source.function_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def caught_up_since(self, moment: float) -> bool:
        """A read of every shard that began at or after `moment` (time.monotonic) found nothing new."""
        with self._lock:
            return self._idle_since is not None and self._idle_since >= moment

    def _run(self) -> None:
        streams: DynamoDBStreamsClient = self._streams_factory()
        iterators: dict[str, str | None] = {}
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                found = self._poll_shards(streams, iterators)
            except Exception:
                logger.exception("stream poller for %s failed; retrying", self.source.function_id)
                found = True  # not known to be caught up
            if not found:
                with self._lock:
                    self._idle_since = began
                time.sleep(_IDLE_SECONDS)

    def _poll_shards(self, streams: DynamoDBStreamsClient, iterators: dict[str, str | None]) -> bool:
        shards = streams.describe_stream(StreamArn=self.source.stream_arn)["StreamDescription"].get("Shards", [])
        found = False
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in iterators:
                iterators[shard_id] = streams.get_shard_iterator(
                    StreamArn=self.source.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="TRIM_HORIZON" if self.source.starting_position == "TRIM_HORIZON" else "LATEST",
                )["ShardIterator"]
            iterator = iterators[shard_id]
            if iterator is None:
                continue
            response = streams.get_records(ShardIterator=iterator, Limit=self.source.batch_size)
            iterators[shard_id] = response.get("NextShardIterator")
            records = [
                lambda_stream_record(dict(r), self.source.stream_arn, self._region) for r in response.get("Records", [])
            ]
            if records:
                found = True
                self._deliver(shard_id, records)
        return found

    def _invoke(self, batch: list[dict[str, Any]]) -> Invocation:
        try:
            invocation = self.pool.invoke({"Records": batch})
        except FunctionError as error:
            invocation = Invocation("-", {"errorType": "Runtime.InitError", "errorMessage": str(error)}, True, 0)
        self.stats.invocations += 1
        self.stats.records += len(batch)
        self.stats.batch_sizes.append(len(batch))
        self.stats.function_errors += int(invocation.error)
        return invocation

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Settle a batch: retry from the checkpoint, bisect on function errors, then give up."""
        pending = [records]
        attempts = 0
        while pending and not self._stop.is_set():
            batch = pending.pop(0)
            invocation = self._invoke(batch)
            start = first_failed_index(invocation, batch, self.source.report_batch_item_failures)
            if start is None:
                attempts = 0
                continue
            rest = batch[start:]
            self.stats.retried += len(rest)
            if invocation.error and self.source.bisect_on_error and len(rest) > 1:
                middle = len(rest) // 2
                pending[:0] = [rest[:middle], rest[middle:]]
                continue
            attempts += 1
            retries = self.source.maximum_retry_attempts
            if retries != -1 and attempts > retries:
                self._send_to_destination(shard_id, rest, invocation)
                attempts = 0
                continue
            pending.insert(0, rest)

    def _send_to_destination(self, shard_id: str, batch: list[dict[str, Any]], invocation: Invocation) -> None:
        self.stats.sent_to_destination += len(batch)
        if self.source.on_failure_arn is None:
            logger.error("%s: %d stream records skipped after retries", self.source.function_id, len(batch))
            return
        sqs: SQSClient = self._sqs_factory()
        queue_url = sqs.get_queue_url(QueueName=self.source.on_failure_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.source.function_id},
            "responseContext": {"functionError": "Unhandled" if invocation.error else ""},
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence[0],
                "endSequenceNumber": sequence[-1],
                "batchSize": len(batch),
                "streamArn": self.source.stream_arn,
            },
        }
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
