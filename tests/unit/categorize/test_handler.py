"""CategorizeFunction end to end in one process: moto for AWS, an HTTP-level OpenAI mock."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from types import ModuleType
from typing import Any

import httpx2
import pytest

from categorizer import service as service_module
from categorizer.active_model import write_active_model
from categorizer.limiter import RateLimiter, TokenCounting
from categorizer.models import ActiveModel
from categorizer.prompt import estimate_prompt_tokens
from categorizer.store import item_bytes
from categorizer.taxonomy import bundled_taxonomy
from tests.support.categorize import (
    ACTIVE_MODEL_PARAMETER,
    MODEL_ID,
    TAXONOMY_VERSION,
    CategorizeStack,
    article,
    load_categorize,
)
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI


def invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def test_batch_of_english_and_japanese_articles_is_categorised(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN an English and a Japanese article
    japanese = article(
        "ja-1",
        title="新型スマートフォンが発表、電池持ちが大幅に向上",
        body="大手メーカーは本日、新しいスマートフォンを発表した。処理性能は前機種の二倍。",
        language="ja",
    )
    # WHEN the batch is handled
    response = invoke(categorize, sqs_event(article("en-1"), japanese))
    # THEN both rows exist, with the top-1 label and renormalised top-k
    assert response == {"batchItemFailures": []}
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    for article_id in ("en-1", "ja-1"):
        row = stack.row(article_id)
        assert row is not None
        assert row["label"] == "3"
        assert row["category_id"] == taxonomy.by_label["3"].id
        assert row["model_id"] == MODEL_ID
        assert sum(Decimal(str(p["probability"])) for p in row["top_k"]) == pytest.approx(Decimal(1))
        assert float(row["coverage"]) == pytest.approx(0.95)
    assert (
        "新型スマートフォン" in fake_openai.requests[1]["messages"][-1]["content"]
        or "新型スマートフォン" in (fake_openai.requests[0]["messages"][-1]["content"])
    )


def test_request_asks_for_one_token_with_logprobs_and_label_bias(
    categorize: ModuleType, fake_openai: FakeOpenAI
) -> None:
    # WHEN one article is categorised
    invoke(categorize, sqs_event(article()))
    # THEN the request is the one-token, top-k logprobs request of docs/design.md invariant 3
    request = fake_openai.requests[0]
    assert request["model"] == MODEL_ID
    assert request["max_tokens"] == 1
    assert request["temperature"] == 0
    assert request["logprobs"] is True
    assert request["top_logprobs"] == 5
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    assert set(request["logit_bias"]) == {str(t) for t in taxonomy.label_token_ids.values()}
    assert request["messages"][0]["role"] == "system"


def test_poison_message_goes_to_dlq_at_once_with_reason(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a batch with one message that can never validate (no title) and one good one
    event = sqs_event(article("bad", title=""), article("good"))
    # WHEN handled on its first receive
    response = invoke(categorize, event)
    # THEN the poison message is in the DLQ with its reason, and is not retried
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "validation_error"
    assert "title" in message["MessageAttributes"]["detail"]["StringValue"]
    assert json.loads(message["Body"])["article_id"] == "bad"
    assert stack.row("good") is not None
    assert len(fake_openai.requests) == 1


def test_malformed_json_goes_to_dlq(categorize: ModuleType, stack: CategorizeStack) -> None:
    response = invoke(categorize, sqs_event("{not json"))
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "validation_error"
    assert message["Body"] == "{not json"


def test_rate_limited_request_is_retried_then_succeeds(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN OpenAI answers 429 (retry-after-ms) once, then normally
    fake_openai.scripted["THROTTLED"] = [
        httpx2.Response(
            429,
            headers={"retry-after-ms": "20", "x-ratelimit-remaining-requests": "0"},
            json={"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
        )
    ]
    # WHEN the article is handled
    response = invoke(categorize, sqs_event(article("t-1", title="THROTTLED market update")))
    # THEN the SDK retried and the result landed
    assert response == {"batchItemFailures": []}
    assert fake_openai.calls_for("THROTTLED") == 2
    assert stack.row("t-1") is not None


def test_persistent_server_error_fails_only_that_record(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN OpenAI always answers 500 for one article
    fake_openai.always["FAIL-500"] = httpx2.Response(
        500, json={"error": {"message": "boom", "type": "server_error", "code": None}}
    )
    event = sqs_event(article("ok-1"), article("bad-1", title="FAIL-500 story"), article("ok-2"))
    # WHEN the batch is handled
    response = invoke(categorize, event)
    # THEN only that record is a batch item failure; the others are stored; nothing dead-lettered yet
    assert failed_ids(response) == {event["Records"][1]["messageId"]}
    assert stack.row("ok-1") is not None and stack.row("ok-2") is not None
    assert stack.row("bad-1") is None
    assert stack.dlq_messages() == []
    assert fake_openai.calls_for("FAIL-500") == 3  # the first try and the SDK's 2 retries


def test_transient_failure_on_last_receive_is_dead_lettered_with_reason(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a record on its last allowed receive (MAX_RECEIVE_COUNT=3) and OpenAI still failing
    fake_openai.always["FAIL-503"] = httpx2.Response(503, json={"error": {"message": "overloaded", "type": "x"}})
    # WHEN handled
    response = invoke(categorize, sqs_event(article("late", title="FAIL-503 news"), receive_count=3))
    # THEN it is not lost: the DLQ holds it with the reason
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted"
    assert "InternalServerError" in message["MessageAttributes"]["detail"]["StringValue"]


def test_answer_without_any_valid_label_is_dead_lettered(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.answer = lambda request: [(" six", 0.6), ("1000", 0.3), ("abc", 0.1)]
    response = invoke(categorize, sqs_event(article("junk")))
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "no_valid_label"
    assert stack.row("junk") is None


def test_empty_batch(categorize: ModuleType, fake_openai: FakeOpenAI) -> None:
    assert invoke(categorize, {"Records": []}) == {"batchItemFailures": []}
    assert fake_openai.requests == []


def test_older_version_never_replaces_newer(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN version 2 is stored
    invoke(categorize, sqs_event(article("v", version=2, body="Version two text about processors.")))
    # WHEN version 1 arrives late
    response = invoke(categorize, sqs_event(article("v", version=1, body="Version one text about football.")))
    # THEN the row keeps version 2 and version 1 cost no OpenAI call
    assert response == {"batchItemFailures": []}
    row = stack.row("v")
    assert row is not None and int(row["revision"]) == 2
    assert len(fake_openai.requests) == 1


def test_unchanged_content_is_not_sent_again(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN an article already categorised with the active model
    invoke(categorize, sqs_event(article("same", version=1)))
    # WHEN it is redelivered, and then republished as version 2 with the same content
    invoke(categorize, sqs_event(article("same", version=1)))
    invoke(categorize, sqs_event(article("same", version=2)))
    # THEN OpenAI was called once, and the row records the newest revision
    assert len(fake_openai.requests) == 1
    row = stack.row("same")
    assert row is not None and int(row["revision"]) == 2


def test_new_active_model_recategorises_unchanged_content(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    invoke(categorize, sqs_event(article("m")))
    write_active_model(
        stack.ssm, ACTIVE_MODEL_PARAMETER, ActiveModel(model_id="ft:new", taxonomy_version=TAXONOMY_VERSION)
    )
    invoke(categorize, sqs_event(article("m")))
    assert len(fake_openai.requests) == 2
    row = stack.row("m")
    assert row is not None and row["model_id"] == "ft:new"


def test_low_confidence_is_marked_for_review(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.answer = lambda request: [("3", 0.4), ("7", 0.35), ("9", 0.25)]
    invoke(categorize, sqs_event(article("unsure")))
    row = stack.row("unsure")
    assert row is not None and row["needs_review"] is True


def test_html_body_is_sent_as_text_and_oversized_body_is_cut_to_budget(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    html = "<html><head><style>p{color:red}</style></head><body><p>Cup final &amp; penalties</p>"
    html += "<script>track()</script></body></html>"
    huge = "Stock markets rallied again today. " * 5000
    invoke(categorize, sqs_event(article("h", body=html), article("big", body=huge)))
    sent = [r["messages"][-1]["content"] for r in fake_openai.requests]
    html_prompt = next(text for text in sent if "penalties" in text)
    assert "Cup final & penalties" in html_prompt
    assert "track()" not in html_prompt and "color" not in html_prompt
    assert stack.row("big") is not None and stack.row("big")["truncated"] is True  # type: ignore[index]


def test_logs_carry_the_webhook_correlation_id_and_no_article_body(
    categorize: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a record queued by the webhook with its request id as correlation_id
    event = sqs_event(article("c-1", body="Secret-ish body text that must not be logged."))
    event["Records"][0]["messageAttributes"] = {
        "correlation_id": {"stringValue": "req-abc-123", "dataType": "String", "stringListValues": []}
    }
    # WHEN handled
    with caplog.at_level("DEBUG"):
        assert invoke(categorize, event) == {"batchItemFailures": []}
    # THEN the per-article log line links back to the request, and the body is not logged
    [processed] = [r for r in caplog.records if r.getMessage() == "article processed"]
    assert processed.__dict__["correlation_id"] == "req-abc-123"
    assert processed.__dict__["article_id"] == "c-1"
    assert all("must not be logged" not in repr(r.__dict__) for r in caplog.records)


def test_newer_revision_is_classified_when_the_row_changed_under_it(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN version 1 is stored, and a concurrent write changes the row's content before
    # version 2's "unchanged" advance, so the conditional advance fails
    invoke(categorize, sqs_event(article("race", version=1)))

    def concurrent_write_then_advance(*args: object) -> bool:
        stack.table.update_item(
            Key={"article_id": "race"},
            UpdateExpression="SET content_hash = :other",
            ExpressionAttributeValues={":other": "written-meanwhile"},
        )
        return False

    monkeypatch.setattr(categorize.service._store, "advance_revision", concurrent_write_then_advance)
    # WHEN version 2 with the same content is handled
    assert invoke(categorize, sqs_event(article("race", version=2))) == {"batchItemFailures": []}
    # THEN it is classified and stored rather than dropped as unchanged
    assert len(fake_openai.requests) == 2
    row = stack.row("race")
    assert row is not None and int(row["revision"]) == 2


def test_a_record_that_would_outlive_the_function_is_dead_lettered_with_reason(
    categorize: ModuleType, stack: CategorizeStack
) -> None:
    # GIVEN OpenAI hangs, the record is on its last receive, and 3.5 s remain in the invocation
    async def hang(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(30)
        raise AssertionError("the record's deadline should have fired first")

    categorize.service = categorize.build_service(openai_transport=httpx2.MockTransport(hang))  # type: ignore[attr-defined]
    event = sqs_event(article("slow"), receive_count=3)
    # WHEN handled
    response = categorize.lambda_handler(event, LambdaContext(timeout_seconds=3.5))
    # THEN the record stopped before Lambda's timeout and went to the DLQ with its reason
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted"
    assert "TimeoutError" in message["MessageAttributes"]["detail"]["StringValue"]


def _emf_blobs(out: str) -> list[dict[str, Any]]:
    """The EMF documents Powertools printed (one JSON object per line with an `_aws` key)."""
    blobs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_metrics_carry_requests_confidence_and_dead_letters_by_reason(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch with a poison message and a good one
    capsys.readouterr()
    # WHEN handled
    invoke(categorize, sqs_event(article("bad", title=""), article("good")))
    blobs = _emf_blobs(capsys.readouterr().out)
    # THEN one blob has the reason dimension for the dead letter (the dashboard's by-reason graph)
    by_reason = [b for b in blobs if b.get("reason") == "validation_error"]
    assert [b["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for b in by_reason] == [[["reason", "service"]]]
    assert by_reason[0]["DeadLettered"] == [1.0]
    # AND the batch blob counts the OpenAI request (the 429-rate alarm's denominator) and the
    # good article's confidence and coverage (the dashboard's means)
    [batch] = [b for b in blobs if "ArticlesCategorized" in b]
    assert batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert batch["OpenAIRequests"] == [1.0]
    assert batch["Coverage"] == [pytest.approx(0.95)]
    [confidence] = batch["Confidence"]
    assert 0 < confidence <= 1


def test_the_result_carries_its_iab_path_and_canonical_url(categorize: ModuleType, stack: CategorizeStack) -> None:
    # GIVEN an article the model labels "3" (IAB 3.1: Attractions > Casinos & Gambling)
    invoke(categorize, sqs_event(article("p-1", url="https://News.example/p-1/?utm_source=feed")))
    # THEN the row holds the path from tier 1 by IAB's unique ids, and the by-URL key
    row = stack.row("p-1")
    assert row is not None
    assert row["path"] == [
        {"id": "150", "name": "Attractions"},
        {"id": "181", "name": "Attractions > Casinos & Gambling"},
    ]
    assert row["canonical_url"] == "https://news.example/p-1"


def test_every_categorised_article_reports_its_limiter_wait_as_a_metric(
    categorize: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch of two articles
    # WHEN handled
    assert invoke(categorize, sqs_event(article("w-1"), article("w-2"))) == {"batchItemFailures": []}
    # THEN the invocation's metrics (EMF on stdout) carry one LimiterWait per article, in milliseconds
    # (the cold-start metric, when this is the process's first invocation, is a blob of its own)
    [emf] = [blob for blob in _emf_blobs(capsys.readouterr().out) if "LimiterWait" in blob]
    definitions = {m["Name"]: m["Unit"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert definitions["LimiterWait"] == "Milliseconds"
    waits = emf["LimiterWait"]
    assert len(waits) == 2 and all(wait >= 0 for wait in waits)


class RecordingLimiter(RateLimiter):
    """The real limiter (no limits), recording what each call charges it."""

    def __init__(self) -> None:
        super().__init__(0, 0)
        self.charged: list[int] = []

    async def acquire(self, tokens: int) -> float:
        self.charged.append(tokens)
        return await super().acquire(tokens)


@pytest.mark.parametrize("counting", ["tiktoken", "characters"])
def test_the_limiter_is_charged_in_the_unit_the_planner_planned_in(
    stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, counting: TokenCounting
) -> None:
    # GIVEN the function deployed with TokenCounting=`counting` (python -m tools capacity --token-counting)
    monkeypatch.setenv("TOKEN_COUNTING", counting)
    monkeypatch.setenv("RESERVED_CONCURRENCY", "4")
    app = load_categorize(fake_openai.transport())
    assert app.settings.instances == 4
    recording = RecordingLimiter()
    app.limiter = recording  # type: ignore[attr-defined]
    app.service = app.build_service(openai_transport=fake_openai.transport())  # type: ignore[attr-defined]
    # WHEN a Japanese article is categorised
    japanese = article(
        "ja-charge", title="新型スマートフォンが発表", body="大手メーカーは本日、新しい端末を発表した。", language="ja"
    )
    assert invoke(app, sqs_event(japanese)) == {"batchItemFailures": []}
    # THEN the limiter was charged the request as that unit counts it, with its one completion token
    [request] = fake_openai.requests
    characters = sum(len(m["content"]) for m in request["messages"])
    expected = {"characters": -(-characters // 4) + 1, "tiktoken": estimate_prompt_tokens(request["messages"]) + 1}
    assert recording.charged == [expected[counting]]


def test_the_row_size_check_counts_the_rows_url_canonical_url_and_path(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an article whose URL and canonical URL (about 2 KB each) dominate its row, categorised
    url = "https://news.example/" + "%C3%A9" * 330
    assert invoke(categorize, sqs_event(article("big-1", url=url))) == {"batchItemFailures": []}
    stored = stack.row("big-1")
    assert stored is not None and stored["path"] and len(stored["canonical_url"]) > 1_900
    calls = len(fake_openai.requests)
    # WHEN the item limit is one byte below that stored row, and a same-sized article arrives
    monkeypatch.setattr(service_module, "DYNAMODB_MAX_ITEM_BYTES", item_bytes(stored) - 1)
    assert invoke(categorize, sqs_event(article("big-2", url=url))) == {"batchItemFailures": []}
    # THEN the check before the call (which counts what build_result writes) dead-letters it, with no call
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "item_too_large"
    assert len(fake_openai.requests) == calls and stack.row("big-2") is None
