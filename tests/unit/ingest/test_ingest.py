"""The ingest contract: signature, payload shapes, all-or-nothing batches, enqueue retries."""

from __future__ import annotations

import json
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from categorizer.ingest import (
    ArticleQueue,
    SignedRequest,
    ValidItem,
    generic_adapter,
    sign,
    validate_item,
    verify_signature,
    webhook_secrets,
    wordpress_adapter,
)
from categorizer.ingest.enqueue import (
    SQS_BATCH_ENTRIES,
    SQS_MAX_BATCH_BYTES,
    SQS_MAX_MESSAGE_BYTES,
    entry_bytes,
)
from categorizer.ingest.validation import MAX_MESSAGE_BYTES
from categorizer.models import ArticleEvent
from tests.support.categorize import article
from tests.support.ingest import SECRET, IngestStack, call, http_event, post, signed_headers
from tests.support.paths import REPO

NOW = 1_764_000_000.0


def test_signature_round_trip_and_every_tampering_fails() -> None:
    # GIVEN a request signed with the shared secret at NOW
    body = b'{"article_id":"a-1"}'
    request = SignedRequest("POST", "/articles", "format=wordpress", body)
    signature = sign(b"s3cret", str(int(NOW)), request)
    # THEN it verifies, and any change to the method, path, query, body, timestamp, secret or clock does not
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    ok: dict[str, Any] = {"now": NOW, "tolerance_seconds": 300}
    assert verify_signature([b"s3cret"], str(int(NOW)), signature, request, **ok) is None
    for changed in (
        replace(request, body=body + b" "),
        replace(request, query=""),
        replace(request, query="format=generic"),
        replace(request, path="/articles/"),
        replace(request, method="PUT"),
    ):
        assert verify_signature([b"s3cret"], str(int(NOW)), signature, changed, **ok) == "signature_mismatch"
    assert verify_signature([b"s3cret"], str(int(NOW) + 1), signature, request, **ok) == "signature_mismatch"
    assert verify_signature([b"other"], str(int(NOW)), signature, request, **ok) == "signature_mismatch"
    late: dict[str, Any] = {"now": NOW + 301, "tolerance_seconds": 300}
    assert verify_signature([b"s3cret"], str(int(NOW)), signature, request, **late) == "timestamp_outside_tolerance"
    assert verify_signature([b"s3cret"], None, signature, request, **ok) == "missing_signature_headers"
    assert verify_signature([b"s3cret"], "１２３", signature, request, **ok) == "malformed_timestamp"


def test_the_query_string_is_signed_however_it_is_encoded() -> None:
    # GIVEN one query written in different but equivalent ways
    body = b"{}"
    signature = sign(b"s3cret", str(int(NOW)), SignedRequest("POST", "/articles", "format=word%70ress&x=a+b", body))
    ok: dict[str, Any] = {"now": NOW, "tolerance_seconds": 300}
    # THEN each spelling verifies: the canonical query decodes, sorts and re-encodes the pairs
    for spelling in ("x=a%20b&format=wordpress", "format=wordpress&x=a+b"):
        request = SignedRequest("POST", "/articles", spelling, body)
        assert verify_signature([b"s3cret"], str(int(NOW)), signature, request, **ok) is None


def test_webhook_secret_formats() -> None:
    assert webhook_secrets("plain-secret\n") == [b"plain-secret"]
    assert webhook_secrets('{"webhook_secret": "new", "previous_webhook_secret": "old"}') == [b"new", b"old"]
    with pytest.raises(ValueError, match="empty"):
        webhook_secrets('{"webhook_secret": ""}')


def test_wordpress_post_webhook_maps_to_an_article_event() -> None:
    # GIVEN a WP Webhooks post_update payload
    payload = {
        "post_id": 123,
        "post": {
            "ID": 123,
            "post_title": "Local team wins the cup",
            "post_content": "<p>The final ended <b>2–1</b>.</p>",
            "post_modified_gmt": "2026-11-25 08:00:00",
            "guid": "https://blog.example/?p=123",
        },
        "post_permalink": "https://blog.example/2026/11/cup",
    }
    # WHEN mapped and validated
    result = validate_item(0, payload, wordpress_adapter)
    # THEN it is a valid event with an id, the permalink, the HTML turned into text and an ordering key
    assert isinstance(result, ValidItem) and isinstance(result.article, ArticleEvent)
    assert result.article.article_id == "wp-123"
    assert result.article.url == "https://blog.example/2026/11/cup"
    assert result.article.text == "The final ended 2–1."
    assert result.article.revision == 1_795_593_600_000  # 2026-11-25T08:00:00Z in ms


def test_wordpress_rest_post_object_maps_too() -> None:
    payload = {
        "id": 9,
        "link": "https://blog.example/nine",
        "modified_gmt": "2026-11-25T08:00:00",
        "title": {"rendered": "Nine"},
        "content": {"rendered": "<p>Nine lives.</p>"},
    }
    result = validate_item(0, payload, wordpress_adapter)
    assert isinstance(result, ValidItem) and result.article.article_id == "wp-9"


class FlakySQS:
    """Wraps the moto client: the first `failures` calls fail every entry (not the sender's fault)."""

    def __init__(self, real: Any, failures: int, *, raise_instead: bool = False, sender_fault_id: str = "") -> None:
        self.real = real
        self.failures = failures
        self.raise_instead = raise_instead
        self.sender_fault_id = sender_fault_id
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            if self.raise_instead:
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch")
            failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in Entries]
            return {"Successful": [], "Failed": failed}
        good = [e for e in Entries if e["Id"] != self.sender_fault_id]
        bad = [{"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents"} for e in Entries if e not in good]
        response: dict[str, Any] = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=good) if good else {}
        return {"Successful": response.get("Successful", []), "Failed": bad}


def _items(count: int) -> list[ValidItem]:
    results = [validate_item(i, article(f"q-{i}"), generic_adapter) for i in range(count)]
    assert all(isinstance(r, ValidItem) for r in results)
    return [r for r in results if isinstance(r, ValidItem)]


def test_failed_entries_are_retried_until_queued(ingest_stack: IngestStack) -> None:
    # GIVEN SQS fails every entry on the first two calls
    flaky = FlakySQS(ingest_stack.sqs, failures=2)
    queue = ArticleQueue(flaky, ingest_stack.queue_url, sleep=lambda _: None)  # type: ignore[arg-type]
    # WHEN 12 articles are enqueued (two SendMessageBatch chunks)
    report = queue.enqueue(_items(12))
    # THEN all are queued after the retries, exactly once each
    assert len(report.queued) == 12 and report.failed == []
    assert sorted(m["article_id"] for m in ingest_stack.queued()) == sorted(f"q-{i}" for i in range(12))


def test_an_entry_sqs_refuses_is_reported_failed_not_retried(ingest_stack: IngestStack) -> None:
    flaky = FlakySQS(ingest_stack.sqs, failures=0, sender_fault_id="1")
    queue = ArticleQueue(flaky, ingest_stack.queue_url, sleep=lambda _: None)  # type: ignore[arg-type]
    report = queue.enqueue(_items(3))
    assert [i.article.article_id for i in report.queued] == ["q-0", "q-2"]
    assert [(i.article.article_id, code) for i, code in report.failed] == [("q-1", "InvalidMessageContents")]
    assert flaky.calls == 1


def test_sqs_down_gives_503_listing_nothing_as_accepted(ingest: ModuleType, ingest_stack: IngestStack) -> None:
    # GIVEN SQS refuses every call
    ingest.queue = ArticleQueue(  # type: ignore[attr-defined]
        FlakySQS(ingest_stack.sqs, failures=99, raise_instead=True),  # type: ignore[arg-type]
        ingest_stack.queue_url,
        sleep=lambda _: None,
    )
    # WHEN a batch is posted
    result = post(ingest, [article("d-1"), article("d-2")])
    # THEN 503 with Retry-After: nothing called accepted, both listed as failed
    assert result.status == 503 and result.headers["Retry-After"] == "5"
    assert result.body["accepted"] == []
    assert [f["article_id"] for f in result.body["failed"]] == ["d-1", "d-2"]
    assert ingest_stack.queued() == []


def test_partial_sqs_failure_says_accepted_only_for_queued(ingest: ModuleType, ingest_stack: IngestStack) -> None:
    ingest.queue = ArticleQueue(  # type: ignore[attr-defined]
        FlakySQS(ingest_stack.sqs, failures=0, sender_fault_id="1"),  # type: ignore[arg-type]
        ingest_stack.queue_url,
        sleep=lambda _: None,
    )
    result = post(ingest, [article("p-0"), article("p-1"), article("p-2")])
    assert result.status == 503
    accepted = {a["article_id"] for a in result.body["accepted"]}
    assert accepted == {"p-0", "p-2"} == {m["article_id"] for m in ingest_stack.queued()}


def test_202_lists_ids_and_revisions_and_the_message_is_the_validated_event(
    ingest: ModuleType, ingest_stack: IngestStack
) -> None:
    # GIVEN an article with surrounding whitespace and an unknown extra field
    payload = article("v-1", title="  Padded title  ", version=7, cms_internal={"x": 1})
    # WHEN posted
    result = post(ingest, payload)
    # THEN 202 with the id and revision, and the queued message is the normalised event
    assert result.status == 202
    assert result.body == {"accepted": [{"article_id": "v-1", "revision": 7}], "count": 1}
    [message] = ingest_stack.queued()
    assert message["title"] == "Padded title" and "cms_internal" not in message
    assert message["version"] == 7


def test_invalid_batch_reports_every_bad_item_with_field_paths(ingest: ModuleType, ingest_stack: IngestStack) -> None:
    # GIVEN a batch with a good item, one without a title, and one with a bad version and url
    batch = [article("g-1"), article("g-2", title=None), article("g-3", version=-1, url="ftp://x")]
    # WHEN posted
    result = post(ingest, {"articles": batch})
    # THEN 400 naming each bad item's fields; nothing queued (all or nothing)
    assert result.status == 400
    errors = {e["index"]: {p["field"] for p in e["errors"]} for e in result.body["errors"]}
    assert errors == {1: {"title"}, 2: {"version", "url"}}
    assert result.body["errors"][0]["article_id"] == "g-2"
    assert ingest_stack.queued() == []


def test_unknown_route_is_404(ingest: ModuleType) -> None:
    event = http_event(b"{}", signed_headers(b"{}"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/other"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /other"
    assert call(ingest, event).status == 404


def test_responses_and_logs_never_carry_the_secret_or_a_signature(
    ingest: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(article("s-1")).encode()
    good = signed_headers(body)
    forged = signed_headers(body, secret="guess")
    results = [call(ingest, http_event(body, good)), call(ingest, http_event(body, forged))]
    assert [r.status for r in results] == [202, 401]
    assert results[1].body == {"message": "unauthorized"}
    logged = [str(record.__dict__) for record in caplog.records]
    text = "".join(logged) + json.dumps([r.body for r in results])
    for secret_like in (SECRET, good["X-Signature"], forged["X-Signature"]):
        assert secret_like not in text
    assert any("signature_mismatch" in line for line in logged)  # the operator sees why; the caller does not


def test_the_signature_example_in_the_docs_is_right() -> None:
    docs = (REPO / "docs" / "ingest.md").read_text(encoding="utf-8")
    request = SignedRequest("POST", "/articles", "format=generic", b'{"article_id":"a-1"}')
    expected = sign(b"example-secret", "1764057600", request)
    assert f"X-Signature: {expected}" in docs


def test_queued_messages_carry_the_request_correlation_id(ingest_stack: IngestStack) -> None:
    # GIVEN a webhook request whose id is the correlation id
    queue = ArticleQueue(ingest_stack.sqs, ingest_stack.queue_url, sleep=lambda _: None)
    # WHEN its articles are enqueued
    queue.enqueue(_items(2), correlation_id="req-42")
    # THEN every message carries it, so CategorizeFunction's logs link back to the request
    response = ingest_stack.sqs.receive_message(
        QueueUrl=ingest_stack.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    attributes = [m["MessageAttributes"]["correlation_id"]["StringValue"] for m in response["Messages"]]
    assert attributes == ["req-42", "req-42"]


class _RecordingSQS:
    """Accepts every entry and keeps each SendMessageBatch call's entries (moto does not apply SQS's size rules)."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def _sized_item(index: int, message_bytes: int) -> ValidItem:
    event = ArticleEvent.model_validate(article(f"z-{index}"))
    return ValidItem(index, event, "x" * message_bytes)


def test_batches_follow_the_sqs_size_rule_counting_attribute_bytes() -> None:
    # GIVEN two messages whose bodies alone fit one 1 MiB batch, but not with their attributes
    sqs = _RecordingSQS()
    half = SQS_MAX_BATCH_BYTES // 2 - 8
    items = [_sized_item(0, half), _sized_item(1, half), *(_sized_item(n, 1_000) for n in range(2, 14))]
    # WHEN they are enqueued with a correlation id
    report = ArticleQueue(sqs, "https://sqs.example/q", sleep=lambda _: None).enqueue(items, "req-" + "9" * 300)  # type: ignore[arg-type]
    # THEN every call keeps SQS's rules: ≤ 10 entries, each ≤ 1 MiB and together ≤ 1 MiB, attributes counted
    assert len(report.queued) == len(items)
    assert [len(call) for call in sqs.calls][:2] == [1, 10]
    for entries in sqs.calls:
        assert len(entries) <= SQS_BATCH_ENTRIES
        assert all(entry_bytes(entry) <= SQS_MAX_MESSAGE_BYTES for entry in entries)
        assert sum(entry_bytes(entry) for entry in entries) <= SQS_MAX_BATCH_BYTES
    # and the correlation id is cut to its share of the attribute allowance
    assert all(len(e["MessageAttributes"]["correlation_id"]["StringValue"]) <= 128 for c in sqs.calls for e in c)


def test_a_message_at_the_validation_limit_still_fits_sqs_with_its_largest_attributes() -> None:
    # GIVEN a message body at the largest size validation lets through, and the longest article id
    event = ArticleEvent.model_validate(article("i" * 256))
    item = ValidItem(0, event, "x" * MAX_MESSAGE_BYTES)
    sqs = _RecordingSQS()
    # WHEN it is enqueued with a long correlation id
    ArticleQueue(sqs, "https://sqs.example/q").enqueue([item], "c" * 1_000)  # type: ignore[arg-type]
    # THEN SQS's per-message rule (body + attribute names, types and values ≤ 1 MiB) holds
    [[entry]] = sqs.calls
    assert entry_bytes(entry) <= SQS_MAX_MESSAGE_BYTES
