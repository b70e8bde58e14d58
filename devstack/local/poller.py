"""An SQS event source mapping that behaves like Lambda's (moto's does not batch or honour
partial batch responses).

Per mapping, `concurrency` pollers each gather a batch (up to BatchSize, waiting at most
MaximumBatchingWindowInSeconds once the first message arrived), invoke the function with
the Lambda SQS event shape and settle: delete what succeeded, leave the rest in flight so
it becomes visible again after the queue's visibility timeout. SQS (moto) counts receives
and moves a message to the DLQ after maxReceiveCount, as the redrive policy says.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.lambda_shapes import sqs_record
from local.provision import SqsEventSource
from local.runtime import FunctionError, FunctionPool, Invocation

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

# What a receive asks SQS for while filling a batch (seconds).
_POLL_WAIT_SECONDS = 1
_WINDOW_POLL_INTERVAL = 0.05
# Lambda's default when neither MaximumConcurrency nor reserved concurrency bounds a mapping.
DEFAULT_CONCURRENCY = 5


def mapping_concurrency(source: SqsEventSource, reserved: int | None, cap: int | None = None) -> int:
    """Concurrent invocations a mapping may run: MaximumConcurrency, reserved concurrency, a cap."""
    limits = [limit for limit in (source.maximum_concurrency, reserved, cap) if limit is not None]
    return min(limits) if limits else DEFAULT_CONCURRENCY


def lambda_sqs_record(message: MessageTypeDef, source: SqsEventSource, region: str) -> dict[str, Any]:
    """One record of the event Lambda passes for an SQS batch."""
    attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attributes[name] = converted
    return sqs_record(
        message["Body"],
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        attributes={name: value for name, value in message.get("Attributes", {}).items()},
        message_attributes=attributes,
        md5_of_body=message["MD5OfBody"],
        md5_of_message_attributes=message.get("MD5OfMessageAttributes"),
        queue_arn=source.queue_arn,
        region=region,
    )


def failed_message_ids(invocation: Invocation, batch_ids: list[str], report_failures: bool) -> set[str]:
    """Which messages of a batch go back to the queue, by Lambda's partial batch response rules."""
    if invocation.error:
        return set(batch_ids)
    if not report_failures:
        return set()
    payload = invocation.payload
    if payload is None or payload == {}:
        return set()
    failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
    if failures is None:
        return set()
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)  # an invalid response fails the whole batch
        ids.add(identifier)
    return ids


@dataclass
class MessageTrace:
    """What the mapping did with one message: how often it was received, whether it was deleted."""

    body: str
    receives: int = 0
    deleted: bool = False


class MessageLedger:
    """Every message a mapping received, so an audit can say where a lost message went missing.

    A message sent but never in the ledger was never received (lost in the queue); one received
    but never deleted was not settled by the function (and not dead-lettered, or the audit would
    have found it there); one deleted without a result was reported processed by the function.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, MessageTrace] = {}

    def received(self, batch: list[MessageTypeDef]) -> None:
        with self._lock:
            for message in batch:
                trace = self._traces.setdefault(message["MessageId"], MessageTrace(message["Body"]))
                trace.receives += 1

    def deleted(self, message_ids: list[str]) -> None:
        with self._lock:
            for message_id in message_ids:
                self._traces[message_id].deleted = True

    def traces(self) -> list[MessageTrace]:
        with self._lock:
            return list(self._traces.values())


@dataclass
class PollerStats:
    invocations: int = 0
    function_errors: int = 0
    records: int = 0
    deleted: int = 0
    returned: int = 0  # reported as failures (or in a failed invocation): visible again later
    batch_sizes: list[int] = field(default_factory=list)


class SqsPoller:
    """Runs one event source mapping until stopped."""

    def __init__(
        self,
        source: SqsEventSource,
        pool: FunctionPool,
        sqs_factory: Any,
        region: str,
    ) -> None:
        self.source = source
        self.pool = pool
        self.stats = PollerStats()
        self.ledger = MessageLedger()
        self._sqs_factory = sqs_factory
        self._region = region
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.pool.size):
            thread = threading.Thread(target=self._run, name=f"poller-{self.source.function_id}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy > 0

    def _run(self) -> None:
        sqs: SQSClient = self._sqs_factory()
        while not self._stop.is_set():
            try:
                batch = self._collect(sqs)
                if batch:
                    self._invoke_and_settle(sqs, batch)
            except Exception:
                logger.exception("poller for %s failed; retrying", self.source.function_id)
                time.sleep(_POLL_WAIT_SECONDS)

    def _receive(self, sqs: SQSClient, count: int, wait: int) -> list[MessageTypeDef]:
        response = sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _collect(self, sqs: SQSClient) -> list[MessageTypeDef]:
        batch = self._receive(sqs, self.source.batch_size, _POLL_WAIT_SECONDS)
        if not batch:
            return batch
        with self._lock:
            self._busy += 1
        window_ends = time.monotonic() + self.source.batching_window_seconds
        while len(batch) < self.source.batch_size and time.monotonic() < window_ends:
            more = self._receive(sqs, self.source.batch_size - len(batch), 0)
            if more:
                batch.extend(more)
            else:
                time.sleep(_WINDOW_POLL_INTERVAL)
        return batch

    def _invoke_and_settle(self, sqs: SQSClient, batch: list[MessageTypeDef]) -> None:
        try:
            self.ledger.received(batch)
            event = {"Records": [lambda_sqs_record(m, self.source, self._region) for m in batch]}
            ids = [m["MessageId"] for m in batch]
            try:
                invocation = self.pool.invoke(event)
            except FunctionError as error:
                logger.error("%s", error)
                invocation = Invocation("-", {"errorType": "Runtime.InitError", "errorMessage": str(error)}, True, 0)
            failed = failed_message_ids(invocation, ids, self.source.report_batch_item_failures)
            done = [m for m in batch if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                chunk = done[start : start + 10]
                response = sqs.delete_message_batch(
                    QueueUrl=self.source.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
                )
                self.ledger.deleted([chunk[int(entry["Id"])]["MessageId"] for entry in response.get("Successful", [])])
            with self._lock:
                self.stats.invocations += 1
                self.stats.function_errors += int(invocation.error)
                self.stats.records += len(batch)
                self.stats.deleted += len(done)
                self.stats.returned += len(failed)
                self.stats.batch_sizes.append(len(batch))
            if invocation.error:
                logger.warning(
                    "%s invocation failed: %s", self.source.function_id, invocation.payload.get("errorMessage")
                )
        finally:
            with self._lock:
                self._busy -= 1
