"""Change events (docs/design.md invariant 9): which row changes are told, the detail schema, the consumer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from categorizer.change_events import SOURCE, change_event, detail_schema
from tests.support.lambda_env import LambdaContext, load_function
from tests.support.paths import REPO
from tests.support.read import result
from tests.support.streams import row, stream_record

SCHEMA = json.loads((REPO / "events" / "schemas" / "result-change-v1.json").read_text(encoding="utf-8"))
CHANGED_AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TECH = row(result("a-1", revision=1))
TECH_V2_SAME = row(result("a-1", revision=2))  # a newer revision, unchanged text: revision advanced
TECH_NEW_MODEL = row(result("a-1", revision=2, minutes=3, model_id="ft:m2", probability=0.8))
BUSINESS = row(result("a-1", revision=3, minutes=5, category_id="business", category_name="Business", label="2"))
CLAIM = {"article_id": "a-1", "claim_hash": "h", "claim_model": "m", "claim_expires_at": 1}
TECH_CLAIMED = {**TECH, "claim_hash": "h2", "claim_model": "m", "claim_expires_at": 1}
TOMBSTONE = {
    "article_id": "a-1",
    "revision": 4,
    "removed_at": "2026-11-25T09:00:00+00:00",
    "url": TECH["url"],
    "canonical_url": TECH["canonical_url"],
}
NEWER_TOMBSTONE = {**TOMBSTONE, "revision": 5}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, TECH, "ArticleCategorized"),
        (CLAIM, TECH, "ArticleCategorized"),
        (TOMBSTONE, BUSINESS | {"revision": 6}, "ArticleCategorized"),  # a newer publish after an unpublish
        (TECH, BUSINESS, "ArticleCategoryChanged"),
        (TECH, TOMBSTONE, "ArticleRemoved"),
        (TECH, None, "ArticleRemoved"),  # erased
        # no-ops
        (None, CLAIM, None),
        (CLAIM, None, None),  # a released claim
        (TECH, TECH_CLAIMED, None),  # a claim on a result row
        (TECH, TECH_V2_SAME, None),  # the revision advanced alone
        (TECH, TECH_NEW_MODEL, None),  # re-categorised, same category
        (TOMBSTONE, NEWER_TOMBSTONE, None),
        (TOMBSTONE, None, None),  # a tombstone erased
        (None, TOMBSTONE, None),  # an unpublish of an unknown article
    ],
)
def test_which_row_changes_are_told(
    old: dict[str, Any] | None, new: dict[str, Any] | None, expected: str | None
) -> None:
    # GIVEN a row change WHEN it is classified THEN it yields the expected event, or none for a no-op
    event = change_event(old, new, changed_at=CHANGED_AT)
    assert (event.detail_type if event else None) == expected
    if event is not None:
        # AND the detail validates against the committed schema and carries the revision
        detail = json.loads(event.detail.model_dump_json())
        jsonschema.validate(detail, SCHEMA)
        assert detail["revision"] == int((new or old or {})["revision"])


def test_removed_and_changed_details_say_what_was_there() -> None:
    changed = change_event(TECH, BUSINESS, changed_at=CHANGED_AT)
    assert changed is not None and changed.detail.previous_category is not None
    assert (changed.detail.previous_category.id, changed.detail.category.id if changed.detail.category else None) == (
        "technology",
        "business",
    )
    removed = change_event(TECH, TOMBSTONE, changed_at=CHANGED_AT)
    assert removed is not None and removed.detail.removal == "unpublished" and removed.detail.category is None
    erased = change_event(TECH, None, changed_at=CHANGED_AT)
    assert erased is not None and erased.detail.removal == "erased" and erased.detail.removed_at == CHANGED_AT


def test_the_committed_schema_is_current_and_the_samples_validate() -> None:
    # THEN the schema file is the model's (regenerate: python -m categorizer.change_events > events/schemas/…)
    assert detail_schema() == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    samples = sorted((REPO / "events" / "change-events").glob("*.json"))
    assert {json.loads(p.read_text())["detail-type"] for p in samples} == {
        "ArticleCategorized",
        "ArticleCategoryChanged",
        "ArticleRemoved",
    }
    for path in samples:
        sample = json.loads(path.read_text())
        assert sample["source"] == SOURCE
        jsonschema.validate(sample["detail"], SCHEMA)


@pytest.fixture
def subscriber(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, str]]:
    """The consumer, the bus, and a subscriber queue behind a rule on the results source."""
    with mock_aws():
        events = boto3.client("events")
        events.create_event_bus(Name="results")
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName="results", EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="all", EventBusName="results", Targets=[{"Id": "q", "Arn": queue_arn}])
        monkeypatch.setenv("EVENT_BUS_NAME", "results")
        yield load_function("change_events"), sqs, queue_url


def _received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        messages += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch]
        )
    return messages


def test_the_consumer_publishes_changes_only(subscriber: tuple[ModuleType, Any, str]) -> None:
    app, sqs, queue_url = subscriber
    # GIVEN a stream batch: a claim, the result replacing it, a claim on it, an advanced revision, a change
    records = [
        stream_record(None, CLAIM, 1),
        stream_record(CLAIM, TECH, 2),
        stream_record(TECH, TECH_CLAIMED, 3),
        stream_record(TECH_CLAIMED, TECH_V2_SAME, 4),
        stream_record(TECH_V2_SAME, BUSINESS, 5),
    ]
    # WHEN the consumer handles it
    response = app.lambda_handler({"Records": records}, LambdaContext("ChangeEventsFunction"))
    # THEN no failures, and the subscriber received exactly the two changes, in order
    assert response == {"batchItemFailures": []}
    received = _received(sqs, queue_url)
    assert [(e["detail-type"], e["detail"]["revision"]) for e in received] == [
        ("ArticleCategorized", 1),
        ("ArticleCategoryChanged", 3),
    ]
    for event in received:
        jsonschema.validate(event["detail"], SCHEMA)


def test_a_refused_event_is_a_batch_item_failure_and_the_retry_delivers_it(
    subscriber: tuple[ModuleType, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, sqs, queue_url = subscriber
    records = [stream_record(None, TECH, 1), stream_record(TECH, BUSINESS, 2), stream_record(BUSINESS, TOMBSTONE, 3)]
    # GIVEN EventBridge refuses the second record's event once
    put_events = app.events.put_events
    refused: list[str] = []

    def flaky(**request: Any) -> Any:
        if json.loads(request["Entries"][0]["Detail"])["revision"] == 3 and not refused:
            refused.append("once")
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}
        return put_events(**request)

    monkeypatch.setattr(app.events, "put_events", flaky)
    # WHEN the batch is handled THEN the refused record is reported by its sequence number
    response = app.lambda_handler({"Records": records}, LambdaContext("ChangeEventsFunction"))
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    # AND when Lambda retries from that record, every change has been delivered at least once
    retry = app.lambda_handler({"Records": records[1:]}, LambdaContext("ChangeEventsFunction"))
    assert retry == {"batchItemFailures": []}
    delivered = [(e["detail-type"], e["detail"]["revision"]) for e in _received(sqs, queue_url)]
    assert set(delivered) == {("ArticleCategorized", 1), ("ArticleCategoryChanged", 3), ("ArticleRemoved", 4)}
    # the duplicate (delivered before and after the retry) carries the same revision, for consumers to drop
    assert delivered.count(("ArticleRemoved", 4)) == 2
