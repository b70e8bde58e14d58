"""No double spend (docs/design.md invariant 6) when the same work arrives more than once at a time.

The claim on the row before an OpenAI call, the sharing of one call within a batch, and the
batch's rows read in one BatchGetItem.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from types import ModuleType
from typing import Any

import httpx2
import pytest

from categorizer.store import ResultStore
from tests.support.categorize import CategorizeStack, article, load_categorize
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI


def invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
    return response


def _claim_only_row(stack: CategorizeStack, categorize: ModuleType, article_id: str, expires_in: float) -> None:
    """A claim another instance holds (or held, and crashed) for this article's current content."""
    from categorizer.models import ArticleEvent
    from categorizer.prompt import build_prompt

    event = ArticleEvent.model_validate(article(article_id))
    fingerprint = build_prompt(event.title, event.text, categorize.settings.input_token_budget).fingerprint
    stack.table.put_item(
        Item={
            "article_id": article_id,
            "claim_hash": fingerprint,
            "claim_model": "ft:gpt-4o-mini-2024-07-18:acme::unit1",
            "claim_expires_at": Decimal(str(round(time.time() + expires_in, 3))),
        }
    )


def test_the_same_event_twice_in_one_batch_makes_one_call(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN one event delivered twice in the same batch
    event = sqs_event(article("dup-1"), article("dup-1"))
    # WHEN the batch is handled
    response = invoke(categorize, event)
    # THEN both records succeed, one call was made, and the row holds the result
    assert response == {"batchItemFailures": []}
    assert len(fake_openai.requests) == 1
    row = stack.row("dup-1")
    assert row is not None and int(row["revision"]) == 1 and "claim_hash" not in row


def test_many_revisions_with_unchanged_text_in_one_batch_make_one_call(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN ten revisions of one article with the same text, in one batch
    event = sqs_event(*(article("rev-1", version=version) for version in range(1, 11)))
    # WHEN the batch is handled
    assert invoke(categorize, event) == {"batchItemFailures": []}
    # THEN one call was made and the row holds the newest revision
    assert len(fake_openai.requests) == 1
    row = stack.row("rev-1")
    assert row is not None and int(row["revision"]) == 10


def test_concurrent_invocations_with_the_same_article_make_one_call(
    stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two execution environments, and an OpenAI that takes 0.5 s to answer
    monkeypatch.setenv("CLAIM_WAIT_SECONDS", "5")
    answer = fake_openai.handle
    first_call_sent = threading.Event()

    def slow(request: httpx2.Request) -> httpx2.Response:
        first_call_sent.set()
        time.sleep(0.5)
        return answer(request)

    monkeypatch.setattr(fake_openai, "handle", slow)
    instances = [load_categorize(fake_openai.transport()) for _ in range(2)]
    responses: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda app=app, v=v: responses.append(invoke(app, sqs_event(article("c-1", version=v))))
        )
        for app, v in zip(instances, (1, 2), strict=True)
    ]
    # WHEN the second receives a newer revision with the same text while the first's call is
    # under way (started once that call is sent: moto's DynamoDB, unlike DynamoDB, does not
    # make a conditional update atomic across threads, so a true tie would test moto)
    threads[0].start()
    assert first_call_sent.wait(timeout=30)
    threads[1].start()
    for thread in threads:
        thread.join()
    # THEN both succeed, one call was made, and the row holds the newer revision
    assert responses == [{"batchItemFailures": []}] * 2
    assert len(fake_openai.requests) == 1
    row = stack.row("c-1")
    assert row is not None and int(row["revision"]) == 2


def test_a_live_claim_that_never_resolves_sends_the_record_back_not_to_openai(
    stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN another instance holds a live claim for this content, and waits are short
    monkeypatch.setenv("CLAIM_WAIT_SECONDS", "0.3")
    categorize = load_categorize(fake_openai.transport())
    _claim_only_row(stack, categorize, "held-1", expires_in=60)
    event = sqs_event(article("held-1"))
    # WHEN the record is handled
    response = invoke(categorize, event)
    # THEN it is reported for retry (SQS redelivers it), and nothing was sent to OpenAI
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert fake_openai.requests == []


def test_an_expired_claim_of_a_crashed_instance_does_not_block(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a claim-only row whose holder crashed (the claim expired)
    _claim_only_row(stack, categorize, "crashed-1", expires_in=-1)
    # WHEN the article arrives
    assert invoke(categorize, sqs_event(article("crashed-1"))) == {"batchItemFailures": []}
    # THEN it is classified and stored, the claim replaced by the result
    assert len(fake_openai.requests) == 1
    row = stack.row("crashed-1")
    assert row is not None and int(row["revision"]) == 1 and "claim_expires_at" not in row


def test_a_failed_call_releases_its_claim(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN OpenAI fails for this article
    fake_openai.always["FAIL-503"] = httpx2.Response(503, json={"error": {"message": "overloaded", "type": "x"}})
    event = sqs_event(article("fails-1", title="FAIL-503 story"))
    # WHEN the record is handled
    response = invoke(categorize, event)
    # THEN it is retried, and leaves no claim behind for its retry to wait on
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert stack.row("fails-1") is None


def test_a_batch_reads_its_rows_in_one_request(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN five stored articles, re-sent unchanged in one batch
    articles = [article(f"batch-{n}") for n in range(5)]
    invoke(categorize, sqs_event(*articles))
    single_reads: list[str] = []
    state = ResultStore.state

    def counted_state(self: ResultStore, article_id: str) -> Any:
        single_reads.append(article_id)
        return state(self, article_id)

    monkeypatch.setattr(ResultStore, "state", counted_state)
    # WHEN the batch is handled again
    assert invoke(categorize, sqs_event(*articles)) == {"batchItemFailures": []}
    # THEN no record read its own row (one BatchGetItem served all), and no call was repeated
    assert single_reads == []
    assert len(fake_openai.requests) == 5
