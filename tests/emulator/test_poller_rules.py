"""The poller's Lambda rules that need no queue: event shape, partial batch responses, concurrency."""

from __future__ import annotations

import base64

from local.poller import DEFAULT_CONCURRENCY, failed_message_ids, lambda_sqs_record, mapping_concurrency
from local.provision import SqsEventSource
from local.runtime import Invocation

SOURCE = SqsEventSource(
    function_id="Fn",
    event_name="Queue",
    queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
    queue_url="http://127.0.0.1/123456789012/q",
    batch_size=10,
    batching_window_seconds=1,
    maximum_concurrency=4,
    report_batch_item_failures=True,
    enabled=True,
)
IDS = ["m1", "m2", "m3"]


def _ok(payload: object) -> Invocation:
    return Invocation("r", payload, False, 1.0)


def test_record_has_the_lambda_sqs_event_shape() -> None:
    # GIVEN a message as ReceiveMessage returns it
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "md5",
        "MD5OfMessageAttributes": "md5a",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {
            "reason": {"DataType": "String", "StringValue": "x"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    # WHEN converted
    record = lambda_sqs_record(message, SOURCE, "us-east-1")  # type: ignore[arg-type]
    # THEN it carries Lambda's camelCase fields
    assert record == {
        "messageId": "m1",
        "receiptHandle": "rh",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "reason": {"stringValue": "x", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "blob": {
                "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "md5OfMessageAttributes": "md5a",
        "eventSource": "aws:sqs",
        "eventSourceARN": SOURCE.queue_arn,
        "awsRegion": "us-east-1",
    }


def test_partial_batch_response_rules() -> None:
    # Reported failures return; everything else is deleted.
    assert failed_message_ids(_ok({"batchItemFailures": [{"itemIdentifier": "m2"}]}), IDS, True) == {"m2"}
    # An empty list, an empty object or None mean success.
    assert failed_message_ids(_ok({"batchItemFailures": []}), IDS, True) == set()
    assert failed_message_ids(_ok(None), IDS, True) == set()
    # An unknown or empty identifier fails the whole batch, as in Lambda.
    assert failed_message_ids(_ok({"batchItemFailures": [{"itemIdentifier": "zz"}]}), IDS, True) == set(IDS)
    assert failed_message_ids(_ok({"batchItemFailures": [{"itemIdentifier": ""}]}), IDS, True) == set(IDS)
    # A function error returns every message.
    assert failed_message_ids(Invocation("r", {"errorType": "E"}, True, 1.0), IDS, True) == set(IDS)
    # Without ReportBatchItemFailures the response is ignored.
    assert failed_message_ids(_ok({"batchItemFailures": [{"itemIdentifier": "m2"}]}), IDS, False) == set()


def test_mapping_concurrency_is_the_smallest_limit() -> None:
    assert mapping_concurrency(SOURCE, reserved=10) == 4
    assert mapping_concurrency(SOURCE, reserved=2) == 2
    assert mapping_concurrency(SOURCE, reserved=None, cap=3) == 3
    unbounded = SOURCE.model_copy(update={"maximum_concurrency": None})
    assert mapping_concurrency(unbounded, reserved=None) == DEFAULT_CONCURRENCY
