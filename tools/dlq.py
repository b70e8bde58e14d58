"""`python -m tools dlq list|redrive`: the dead-lettered articles, their reasons, and redrive once fixed.

`list` prints one JSON line per message and a count by reason. `redrive` sends the messages
(all, or those with `--reason`) back to the article queue and deletes them from the DLQ. A
message without a reason attribute was moved by the queue's redrive policy (the function
never dead-lettered it, e.g. it crashed or timed out); it is listed as `no_reason_recorded`.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from categorizer.dlq import DETAIL_ATTRIBUTE, REASON_ATTRIBUTE
from tools.stack import StackOutputs, add_stack_argument

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

NO_REASON = "no_reason_recorded"


@dataclass(frozen=True)
class DeadLetter:
    message: MessageTypeDef

    def attribute(self, name: str) -> str | None:
        value = self.message.get("MessageAttributes", {}).get(name)
        return value.get("StringValue") if value else None

    @property
    def reason(self) -> str:
        return self.attribute(REASON_ATTRIBUTE) or NO_REASON

    @property
    def article_id(self) -> str | None:
        try:
            body = json.loads(self.message.get("Body", ""))
        except json.JSONDecodeError:
            return None
        value = body.get("article_id") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message.get("MessageId"),
            "reason": self.reason,
            "detail": self.attribute(DETAIL_ATTRIBUTE),
            "article_id": self.article_id,
            "source": self.attribute("source"),
            "receive_count": self.attribute("receive_count"),
            "failed_at": self.attribute("failed_at"),
        }


def receive_all(sqs: SQSClient, queue_url: str, *, hold_seconds: int, wait_seconds: int) -> Iterator[DeadLetter]:
    """Every message once: each stays invisible for `hold_seconds`, so none is seen twice."""
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return
        for message in messages:
            yield DeadLetter(message)


def release(sqs: SQSClient, queue_url: str, letters: list[DeadLetter]) -> None:
    """Make messages visible again at once (listing must not hide them for the hold time)."""
    for start in range(0, len(letters), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.message["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, letter in enumerate(letters[start : start + 10])
            ],
        )


def list_dead_letters(
    sqs: SQSClient, queue_url: str, *, emit: Callable[[dict[str, Any]], None], hold_seconds: int = 60
) -> Counter[str]:
    letters = list(receive_all(sqs, queue_url, hold_seconds=hold_seconds, wait_seconds=1))
    for letter in letters:
        emit(letter.to_json())
    release(sqs, queue_url, letters)
    return Counter(letter.reason for letter in letters)


def redrive(
    sqs: SQSClient,
    dlq_url: str,
    target_url: str,
    *,
    reasons: set[str] | None,
    hold_seconds: int = 120,
) -> Counter[str]:
    """Move matching messages back to `target_url` (send first, then delete: never lost)."""
    moved: Counter[str] = Counter()
    skipped: list[DeadLetter] = []
    for letter in receive_all(sqs, dlq_url, hold_seconds=hold_seconds, wait_seconds=1):
        if reasons is not None and letter.reason not in reasons:
            skipped.append(letter)
            continue
        sqs.send_message(
            QueueUrl=target_url,
            MessageBody=letter.message["Body"],
            MessageAttributes={"redriven_from": {"DataType": "String", "StringValue": letter.reason}},
        )
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.message["ReceiptHandle"])
        moved[letter.reason] += 1
    release(sqs, dlq_url, skipped)
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools dlq", description=__doc__)
    add_stack_argument(parser)
    parser.add_argument("--dlq-url", help="(or DLQ_URL; default the stack's ArticleDLQUrl output)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the DLQ messages with their reasons")
    redrive_parser = commands.add_parser("redrive", help="send messages back to the article queue")
    redrive_parser.add_argument("--to", help="(or ARTICLE_QUEUE_URL; default the stack's ArticleQueueUrl output)")
    choice = redrive_parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--reason", action="append", help="only messages with this reason (repeatable)")
    choice.add_argument("--all", action="store_true", help="every message")
    args = parser.parse_args(argv)
    stack = StackOutputs(args.stack_name)
    dlq_url = stack.resolve(args.dlq_url, "DLQ_URL", "ArticleDLQUrl")
    sqs = boto3.client("sqs")

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line, ensure_ascii=False))

    if args.command == "list":
        counts = list_dead_letters(sqs, dlq_url, emit=emit)
        emit({"total": sum(counts.values()), "by_reason": dict(counts)})
        return 0
    target_url = stack.resolve(args.to, "ARTICLE_QUEUE_URL", "ArticleQueueUrl")
    moved = redrive(sqs, dlq_url, target_url, reasons=None if args.all else set(args.reason))
    emit({"redriven": sum(moved.values()), "by_reason": dict(moved)})
    return 0
