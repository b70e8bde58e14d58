"""Which rows enter the review queue, and the queue's sparse index (ReviewQueueIndex)."""

from __future__ import annotations

from types import ModuleType

from categorizer.models import CategorizationResult
from categorizer.review.queue import review_reason, sample_point
from categorizer.review.store import REVIEW_QUEUE_INDEX
from categorizer.store import ResultStore
from tests.support.review import REVIEWER, ReviewStack, api_event, call


def _index(stack: ReviewStack) -> list[str]:
    items = stack.table.query(
        IndexName=REVIEW_QUEUE_INDEX,
        KeyConditionExpression="review_queue = :pending",
        ExpressionAttributeValues={":pending": "pending"},
    )["Items"]
    return [item["article_id"] for item in items]


def test_only_queued_rows_are_in_the_index_oldest_first_and_a_decision_takes_them_out(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    # GIVEN two low-confidence results around a confident one, written by the categorize write path
    review_stack.categorize("low-1", 0.3)
    review_stack.categorize("sure-1", 0.9)
    review_stack.categorize("low-2", 0.4)
    # THEN the index holds the low-confidence rows only, oldest first
    assert _index(review_stack) == ["low-1", "low-2"]
    # AND the confident row carries no review attribute at all (the index is sparse)
    assert not {"review_queue", "review_queued_at", "review_reason"} & set(review_stack.row("sure-1"))
    assert review_stack.row("low-1")["review_reason"] == "low_confidence"
    # WHEN a reviewer skips the first
    status, _ = call(
        review_app,
        api_event("POST", "/review/items/low-1/decision", body={"decision": "skip"}, claims={"email": REVIEWER}),
    )
    # THEN it leaves the index and the list, the row itself stays
    assert status == 200
    assert _index(review_stack) == ["low-2"]
    assert review_stack.row("low-1")["review"]["decision"] == "skip"
    status, page = call(review_app, api_event("GET", "/review/items", claims={"email": REVIEWER}))
    assert [item["article_id"] for item in page["items"]] == ["low-2"]


def test_the_sample_share_queues_confident_results_by_a_hash_of_article_and_revision() -> None:
    # GIVEN 4,000 confident results
    ids = [f"a-{n}" for n in range(4000)]
    # WHEN a 10 % share is drawn twice
    first = [review_reason(i, 1, 0.9, threshold=0.5, sample_share=0.1) for i in ids]
    again = [review_reason(i, 1, 0.9, threshold=0.5, sample_share=0.1) for i in ids]
    # THEN both draws agree (a retried write makes the same choice), and about 10 % are sampled
    assert first == again
    assert 0.08 < first.count("sample") / len(ids) < 0.12
    assert set(first) == {"sample", None}
    # AND another revision of an article is drawn afresh, with the same share
    assert [sample_point(i, 1) for i in ids[:50]] != [sample_point(i, 2) for i in ids[:50]]
    # AND the share's ends: none at 0, all at 1; a result under the threshold is low_confidence, whatever the draw
    assert {review_reason(i, 1, 0.9, threshold=0.5, sample_share=0.0) for i in ids} == {None}
    assert {review_reason(i, 1, 0.9, threshold=0.5, sample_share=1.0) for i in ids} == {"sample"}
    assert {review_reason(i, 1, 0.2, threshold=0.5, sample_share=1.0) for i in ids} == {"low_confidence"}


def test_a_sampled_confident_result_is_queued_with_its_reason(review_stack: ReviewStack) -> None:
    # GIVEN a confident result written with a share of 1
    review_stack.categorize("sure-2", 0.95, sample_share=1.0)
    # THEN it is queued as a sample
    assert _index(review_stack) == ["sure-2"]
    assert review_stack.row("sure-2")["review_reason"] == "sample"


def test_a_model_answer_never_replaces_a_persons_category_for_the_same_revision(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    # GIVEN a corrected row at revision 1
    review_stack.categorize("low-3", 0.3)
    body = {"decision": "correct", "category_id": "sports"}
    assert (
        call(review_app, api_event("POST", "/review/items/low-3/decision", body=body, claims={"email": REVIEWER}))[0]
        == 200
    )
    store = ResultStore(lambda: review_stack.table)
    answer = CategorizationResult.model_validate(review_stack.row("low-3") | {"model_id": "ft:newer"})
    # WHEN a newer model's answer for the same revision is written (a redelivery, a backfill)
    written = store.put_if_not_older(answer.model_copy(update={"category_id": "business"}))
    # THEN it is refused and the person's category stays
    assert written is False
    assert review_stack.row("low-3")["category_id"] == "sports"
    # AND a newer revision replaces the row as always, and is queued afresh
    review_stack.categorize("low-3", 0.2, revision=2)
    row = review_stack.row("low-3")
    assert (row["revision"], row["category_id"], row["review_queue"]) == (2, "technology", "pending")
    assert "review" not in row and "corrected_by" not in row
