"""The operator commands: publish (signed batches, retries) and the DLQ list/redrive."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest

from categorizer.dlq import DeadLetterQueue
from tests.support.categorize import article
from tests.support.ingest import SECRET, IngestStack, http_event
from tests.support.lambda_env import LambdaContext
from tools import dlq, publish
from tools.stack import StackOutputs


def _gateway(app: ModuleType, statuses: list[int] | None = None) -> httpx2.Client:
    """An HTTP client whose requests reach the ingest handler as API Gateway events.

    `statuses` makes the first responses fail with those codes before the handler is reached.
    """
    pending = list(statuses or [])

    def handle(request: httpx2.Request) -> httpx2.Response:
        if pending:
            return httpx2.Response(pending.pop(0), json={"message": "throttled"})
        event = http_event(request.content, dict(request.headers), base64_encoded=True)
        response = app.lambda_handler(event, LambdaContext("IngestFunction"))
        return httpx2.Response(response["statusCode"], content=response["body"].encode())

    return httpx2.Client(transport=httpx2.MockTransport(handle))


def _jsonl(tmp_path: Path, items: list[dict[str, Any]]) -> Path:
    path = tmp_path / "articles.jsonl"
    path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n", encoding="utf-8")
    return path


def test_publish_signs_batches_and_retries_throttling(
    ingest: ModuleType, ingest_stack: IngestStack, tmp_path: Path
) -> None:
    # GIVEN 7 articles in a file and an API that throttles the first request
    path = _jsonl(tmp_path, [article(f"pub-{n}") for n in range(7)])
    # WHEN published 3 per request
    with _gateway(ingest, statuses=[429]) as client:
        summary = publish.publish(
            client, "https://api.local/articles", SECRET.encode(), publish.read_batches(path, 3), sleep=lambda _: None
        )
    # THEN all 7 are accepted and queued; the throttled request was resent
    assert summary.to_json()["statuses"] == {"429": 1, "202": 3}
    assert summary.accepted == 7 and summary.failed == summary.rejected == 0
    assert len(ingest_stack.queued()) == 7


def test_publish_counts_a_rejected_batch(ingest: ModuleType, ingest_stack: IngestStack, tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [article("ok"), article("bad", url="nope")])
    with _gateway(ingest) as client:
        summary = publish.publish(
            client, "https://api.local/articles", SECRET.encode(), publish.read_batches(path, 10), sleep=lambda _: None
        )
    assert summary.rejected == 2 and summary.accepted == 0
    assert summary.errors[0]["status"] == 400


def test_publish_cli_reads_the_secret_from_secrets_manager(
    ingest: ModuleType, ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_stack = StackOutputs("no-such-stack")
    assert publish.load_secret(ingest_stack.secret_arn, no_stack) == SECRET.encode()
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("WEBHOOK_SECRET_ARN", raising=False)
    with pytest.raises(SystemExit, match="no-such-stack"):
        publish.load_secret(None, no_stack)


def _dead_letter_some(sqs: Any, dlq_url: str) -> None:
    letters = DeadLetterQueue(sqs, dlq_url)
    for n, reason in enumerate(["retries_exhausted", "retries_exhausted", "no_valid_label"]):
        body = json.dumps(article(f"dl-{n}"))
        letters.send(body, reason=reason, detail="x", source="categorize", source_message_id=f"m{n}", receive_count=5)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(article("dl-moved")))  # moved by SQS, no reason


def test_dlq_list_shows_reasons_and_keeps_messages_visible(ingest_stack: IngestStack) -> None:
    sqs = ingest_stack.sqs
    dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
    _dead_letter_some(sqs, dlq_url)
    lines: list[dict[str, Any]] = []
    counts = dlq.list_dead_letters(sqs, dlq_url, emit=lines.append)
    assert counts == Counter({"retries_exhausted": 2, "no_valid_label": 1, "no_reason_recorded": 1})
    assert {line["article_id"] for line in lines} == {"dl-0", "dl-1", "dl-2", "dl-moved"}
    # listing again sees them all: the listing released them
    assert sum(dlq.list_dead_letters(sqs, dlq_url, emit=lambda _: None).values()) == 4


def test_dlq_redrive_by_reason_moves_only_those(ingest_stack: IngestStack) -> None:
    sqs = ingest_stack.sqs
    dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
    _dead_letter_some(sqs, dlq_url)
    # WHEN the retries_exhausted ones are redriven
    moved = dlq.redrive(sqs, dlq_url, ingest_stack.queue_url, reasons={"retries_exhausted"})
    # THEN exactly those are back in the article queue, the rest stay in the DLQ
    assert moved == Counter({"retries_exhausted": 2})
    assert sorted(m["article_id"] for m in ingest_stack.queued()) == ["dl-0", "dl-1"]
    left = dlq.list_dead_letters(sqs, dlq_url, emit=lambda _: None)
    assert left == Counter({"no_valid_label": 1, "no_reason_recorded": 1})
    # AND --all takes the rest
    assert sum(dlq.redrive(sqs, dlq_url, ingest_stack.queue_url, reasons=None).values()) == 2
    assert dlq.list_dead_letters(sqs, dlq_url, emit=lambda _: None) == Counter()


def test_dlq_cli_main(ingest_stack: IngestStack, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
    _dead_letter_some(sqs, dlq_url)
    assert (
        dlq.main(["--dlq-url", dlq_url, "redrive", "--to", ingest_stack.queue_url, "--reason", "no_valid_label"]) == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "redriven": 1,
        "by_reason": {"no_valid_label": 1},
    }
