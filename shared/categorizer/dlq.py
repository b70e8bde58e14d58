"""Dead-letter adapter: a message that cannot succeed goes to the DLQ with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from categorizer.errors import redact

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

# The attribute names the DLQ tooling reads; reason codes are documented in the README.
REASON_ATTRIBUTE = "reason"
DETAIL_ATTRIBUTE = "detail"


def _string(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


class DeadLetterQueue:
    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(
        self, body: str, *, reason: str, detail: str, source: str, source_message_id: str, receive_count: int
    ) -> str:
        response = self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageAttributes={
                REASON_ATTRIBUTE: _string(reason),
                DETAIL_ATTRIBUTE: _string(redact(detail) or "-"),
                "source": _string(source),
                "source_message_id": _string(source_message_id or "-"),
                "receive_count": {"DataType": "Number", "StringValue": str(receive_count)},
                "failed_at": _string(datetime.now(UTC).isoformat()),
            },
        )
        return response["MessageId"]
