"""Validated items → ArticleQueue, in SendMessageBatch chunks, with the retry botocore does not do.

botocore's retry mode (the client's Config, functions/ingest/app.py) retries a SendMessageBatch
call that failed as a whole: throttling, 5xx, connection errors. It does not look inside a
successful response, where single entries can still have failed; those are retried here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

    from categorizer.ingest.validation import ValidItem

# SQS (API reference, SendMessageBatch and MessageAttributeValue, since August 2025): a message is
# at most 1 MiB, counting its body and every attribute's name, data type and value; a
# SendMessageBatch holds at most 10 entries whose sizes sum to at most 1 MiB. moto enforces
# neither the same way, so tests check these rules on the entries directly.
SQS_BATCH_ENTRIES = 10
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
SQS_MAX_BATCH_BYTES = 1024 * 1024
# Room kept in each message for the attributes `_entry` adds: article_id (≤ 256 characters, ASCII),
# source, and the request's correlation id (cut to CORRELATION_ID_CHARS).
CORRELATION_ID_CHARS = 128
MESSAGE_ATTRIBUTES_ALLOWANCE = 1024


def entry_bytes(entry: SendMessageBatchRequestEntryTypeDef) -> int:
    """An entry's size as SQS counts it: the body plus each attribute's name, data type and value."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode("utf-8")) + len(value["DataType"].encode("utf-8"))
        binary = value.get("BinaryValue", b"")  # the entries built here carry strings only
        size += len(value.get("StringValue", "").encode("utf-8")) + (len(binary) if isinstance(binary, bytes) else 0)
    return size


@dataclass
class EnqueueReport:
    queued: list[ValidItem] = field(default_factory=list)
    failed: list[tuple[ValidItem, str]] = field(default_factory=list)  # (item, error code)


def _entry(key: str, item: ValidItem, correlation_id: str | None) -> SendMessageBatchRequestEntryTypeDef:
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "article_id": {"DataType": "String", "StringValue": item.article.article_id},
        "source": {"DataType": "String", "StringValue": "ingest"},
    }
    if correlation_id:  # the webhook request's id, so CategorizeFunction's logs link back to it
        attributes["correlation_id"] = {"DataType": "String", "StringValue": correlation_id[:CORRELATION_ID_CHARS]}
    return {"Id": key, "MessageBody": item.message, "MessageAttributes": attributes}


def _chunks(items: Sequence[ValidItem], correlation_id: str | None) -> list[list[ValidItem]]:
    chunks: list[list[ValidItem]] = []
    size = 0
    for item in items:
        item_size = entry_bytes(_entry("0", item, correlation_id))
        if not chunks or len(chunks[-1]) == SQS_BATCH_ENTRIES or size + item_size > SQS_MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


class ArticleQueue:
    """SendMessageBatch; entries SQS failed on its side (SenderFault false) are sent again.

    `sqs` retries whole calls itself (its botocore retry mode): a call that still fails reports
    its chunk's entries as failed at once, without a second layer of retries on top.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        entry_attempts: int = 4,
        base_delay_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._entry_attempts = entry_attempts
        self._base_delay = base_delay_seconds
        self._sleep = sleep

    def enqueue(self, items: Sequence[ValidItem], correlation_id: str | None = None) -> EnqueueReport:
        report = EnqueueReport()
        for chunk in _chunks(items, correlation_id):
            self._send_chunk(chunk, report, correlation_id)
        return report

    def _send_chunk(self, chunk: list[ValidItem], report: EnqueueReport, correlation_id: str | None) -> None:
        pending = {str(item.index): item for item in chunk}
        last_error: dict[str, str] = {}
        for attempt in range(self._entry_attempts):
            if attempt:
                self._sleep(self._base_delay * 2 ** (attempt - 1))
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[_entry(key, item, correlation_id) for key, item in pending.items()],
                )
            except (ClientError, BotoCoreError) as error:  # botocore's retries are spent
                code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else ""
                report.failed.extend((item, code or type(error).__name__) for item in pending.values())
                return
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
