"""moto's SQS under concurrent send and delete: the race that lost accepted articles offline."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models as moto_sqs

from local.motoserver import serialize_sqs_queue_updates

REGION = "us-east-1"
ACCOUNT = "123456789012"


class _SendAfterScan(list[Any]):
    """A queue's message list that runs `during` right after delete_message's rebuild scan.

    delete_message iterates the list twice: `any(...)` to check the receipt handle, then the
    rebuild. Running a send between the end of the rebuild scan and the assignment of the new
    list is exactly the interleaving that loses the sent message.
    """

    def __init__(self, items: list[Any], during: Callable[[], None]) -> None:
        super().__init__(items)
        self.scans = 0
        self.fired = False
        self._during = during

    def __iter__(self) -> Iterator[Any]:
        self.scans += 1
        yield from list.__iter__(self)
        if self.scans == 2 and not self.fired:
            self.fired = True
            self._during()


def _delete_while_another_thread_sends() -> tuple[list[str], _SendAfterScan]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="articles")["QueueUrl"]
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    sender = threading.Thread(target=lambda: sqs.send_message(QueueUrl=url, MessageBody="sent-during-delete"))

    def send_concurrently() -> None:
        sender.start()
        sender.join(timeout=0.5)  # with the queue locked, the send waits for the delete to finish

    queue = moto_sqs.sqs_backends[ACCOUNT][REGION].queues["articles"]
    queue._messages = _SendAfterScan(queue._messages, send_concurrently)
    hooked = queue._messages
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    sender.join()
    remaining = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return sorted(m["Body"] for m in remaining.get("Messages", [])), hooked


def _unpatched(function: Any) -> Any:
    return function.__wrapped__


@pytest.fixture
def moto_as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Undo the offline stack's patch for this test, whatever ran before it in this process.
    serialize_sqs_queue_updates()
    monkeypatch.setattr(moto_sqs.Queue, "delete_message", _unpatched(moto_sqs.Queue.delete_message))
    monkeypatch.setattr(moto_sqs.SQSBackend, "receive_message", _unpatched(moto_sqs.SQSBackend.receive_message))


def test_moto_as_shipped_loses_a_message_sent_during_a_delete(moto_as_shipped: None) -> None:
    # GIVEN moto's SQS without the offline stack's patch
    with mock_aws():
        # WHEN a message is sent by another thread while a delete rebuilds the queue's list
        bodies, hooked = _delete_while_another_thread_sends()
    # THEN the interleaving happened and the sent message is gone (if this fails, moto fixed the
    # race upstream and serialize_sqs_queue_updates can go)
    assert hooked.fired
    assert bodies == ["second"]


def test_serialized_queue_keeps_a_message_sent_during_a_delete() -> None:
    # GIVEN moto's SQS with the offline stack's patch
    serialize_sqs_queue_updates()
    with mock_aws():
        # WHEN a message is sent by another thread while a delete rebuilds the queue's list
        bodies, hooked = _delete_while_another_thread_sends()
    # THEN the send waited for the delete and nothing was lost
    assert hooked.fired
    assert bodies == ["second", "sent-during-delete"]
