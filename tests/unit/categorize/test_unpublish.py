"""Unpublish (docs/design.md invariant 10): a tombstone at the unpublish's revision, ordered like a publish."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from tests.support.categorize import CategorizeStack, article
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI


def unpublish(article_id: str = "a-1", **fields: Any) -> dict[str, Any]:
    return {"action": "unpublish", "article_id": article_id, **fields}


def handle(app: ModuleType, *bodies: dict[str, Any]) -> None:
    for body in bodies:  # one batch each, in arrival order
        assert app.lambda_handler(sqs_event(body), LambdaContext()) == {"batchItemFailures": []}


def test_unpublish_leaves_a_tombstone_at_its_revision(categorize: ModuleType, stack: CategorizeStack) -> None:
    # GIVEN a categorised article WHEN it is unpublished at a newer version
    handle(categorize, article(version=1), unpublish(version=2))
    # THEN the row is a tombstone at that revision: no category, the URL kept (for 410 by URL)
    row = stack.row("a-1")
    assert row is not None and row["revision"] == 2 and "removed_at" in row
    assert "category_id" not in row and "content_hash" not in row and "top_k" not in row
    assert row["canonical_url"] == "https://news.example/a-1"


def test_an_older_publish_after_the_unpublish_never_resurrects(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN an article unpublished at version 5
    handle(categorize, article(version=4), unpublish(version=5))
    calls = len(fake_openai.requests)
    # WHEN a publish of version 4 or 5 arrives late (a retry, a reordered queue)
    handle(categorize, article(version=4, title="Late"), article(version=5, title="Same version"))
    # THEN the tombstone stays, and no OpenAI call was made for them
    row = stack.row("a-1")
    assert row is not None and row["revision"] == 5 and "removed_at" in row
    assert len(fake_openai.requests) == calls


def test_a_newer_publish_after_the_unpublish_brings_the_article_back(
    categorize: ModuleType, stack: CategorizeStack
) -> None:
    # GIVEN an unpublished article WHEN version 6 is published
    handle(categorize, article(version=4), unpublish(version=5), article(version=6))
    # THEN the row is a result again, at version 6
    row = stack.row("a-1")
    assert row is not None and row["revision"] == 6 and "removed_at" not in row and "category_id" in row


def test_unpublish_of_an_unknown_article_leaves_a_tombstone_an_older_publish_respects(
    categorize: ModuleType, stack: CategorizeStack
) -> None:
    # GIVEN an unpublish for an article the table never had, with its URL
    handle(categorize, unpublish("new-1", version=3, url="https://news.example/new-1?utm_source=x"))
    row = stack.row("new-1")
    assert row is not None and row["revision"] == 3 and row["canonical_url"] == "https://news.example/new-1"
    # WHEN its older publish arrives afterwards THEN it stays removed
    handle(categorize, article("new-1", version=2))
    row = stack.row("new-1")
    assert row is not None and "removed_at" in row and "category_id" not in row


def test_unpublish_twice_is_a_no_op(categorize: ModuleType, stack: CategorizeStack) -> None:
    # GIVEN an unpublished article
    handle(categorize, article(version=1), unpublish(version=2))
    first = stack.row("a-1")
    # WHEN the same unpublish arrives again THEN the row is unchanged (no second write, no event)
    handle(categorize, unpublish(version=2))
    assert stack.row("a-1") == first


def test_an_unpublish_older_than_the_stored_revision_is_stale(categorize: ModuleType, stack: CategorizeStack) -> None:
    # GIVEN a result at version 7 WHEN an unpublish of version 6 arrives late
    handle(categorize, article(version=7), unpublish(version=6))
    # THEN the result stays
    row = stack.row("a-1")
    assert row is not None and row["revision"] == 7 and "removed_at" not in row and "category_id" in row


def test_an_invalid_unpublish_is_dead_lettered_with_its_reason(categorize: ModuleType, stack: CategorizeStack) -> None:
    # GIVEN an unpublish without an ordering key WHEN handled THEN it goes to the DLQ as invalid
    handle(categorize, unpublish())
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "validation_error"
    assert stack.row("a-1") is None
