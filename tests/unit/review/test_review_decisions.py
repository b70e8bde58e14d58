"""Review decisions through ReviewFunction: who and when, one label line, conditional writes (409)."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Any

import pytest

from categorizer.finetune.models import LabelledArticle
from categorizer.review.models import ReviewRecord
from categorizer.review.store import DecisionConflict, ReviewStore
from categorizer.textstore import encode_article_id
from tests.support.review import MODEL_ID, OPERATOR_ARN, REVIEWER, ReviewStack, api_event, call

PERSON = {"email": REVIEWER, "sub": "0b6e-sub"}


def _decide(app: ModuleType, article_id: str, body: Any, **identity: Any) -> tuple[int, Any]:
    identity = identity or {"claims": PERSON}
    return call(app, api_event("POST", f"/review/items/{article_id}/decision", body=body, **identity))


def test_a_correction_updates_the_row_and_writes_exactly_one_label_line(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    # GIVEN a low-confidence result of an id holding "/", at revision 4
    review_stack.categorize("site/2026/a-1", 0.3, revision=4)
    # WHEN the reviewer corrects it to Sports (the id percent-encoded into one path segment)
    status, item = _decide(review_app, "site%2F2026%2Fa-1", {"decision": "correct", "category_id": "sports"})
    # THEN the row has the person's category, who corrected it, and the same revision
    assert status == 200
    row = review_stack.row("site/2026/a-1")
    assert (row["category_id"], row["category_name"], row["corrected_by"], row["revision"]) == (
        "sports",
        "Sports",
        REVIEWER,
        4,
    )
    assert row["needs_review"] is False and "review_queue" not in row
    assert item["review"]["by"] == REVIEWER and item["review"]["category_id"] == "sports"
    # AND exactly one label line, under the contract's key, in the export's format, from the stored text
    day = datetime.fromisoformat(item["review"]["at"]).date().isoformat()
    assert review_stack.label_keys() == [f"labels/reviewed/{day}/{encode_article_id('site/2026/a-1')}-r4.jsonl"]
    [line] = review_stack.label_lines()
    labelled = LabelledArticle.model_validate(line)
    assert (labelled.category_id, labelled.revision, labelled.body_format) == ("sports", 4, "text")
    assert labelled.body == "What the model read of site/2026/a-1 at revision 4."
    assert line["review"] == {
        "decision": "correct",
        "by": REVIEWER,
        "at": line["updated_at"],
        "model_id": MODEL_ID,
        "predicted_category_id": "technology",
        "reason": "low_confidence",
    }


@pytest.mark.parametrize(("decision", "lines"), [("accept", 1), ("skip", 0)])
def test_accept_writes_the_models_category_as_a_label_and_skip_writes_none(
    review_stack: ReviewStack, review_app: ModuleType, decision: str, lines: int
) -> None:
    review_stack.categorize("a-2", 0.3)
    status, item = _decide(review_app, "a-2", {"decision": decision})
    assert status == 200 and item["review"]["decision"] == decision
    assert len(review_stack.label_lines()) == lines
    assert review_stack.row("a-2")["category_id"] == "technology"
    assert "corrected_by" not in review_stack.row("a-2")
    if lines:
        assert review_stack.label_lines()[0]["category_id"] == "technology"


def test_the_operator_route_records_the_iam_caller(review_stack: ReviewStack, review_app: ModuleType) -> None:
    review_stack.categorize("a-3", 0.3)
    event = api_event("POST", "/admin/review/items/a-3/decision", body={"decision": "accept"}, iam_arn=OPERATOR_ARN)
    status, item = call(review_app, event)
    assert status == 200 and item["review"]["by"] == OPERATOR_ARN


def test_a_route_reached_without_its_identity_is_refused(review_stack: ReviewStack, review_app: ModuleType) -> None:
    review_stack.categorize("a-4", 0.3)
    # GIVEN requests the authorizer did not vouch for (none, or the other route family's identity)
    for event in (
        api_event("GET", "/review/items"),
        api_event("GET", "/review/items", iam_arn=OPERATOR_ARN),
        api_event("GET", "/admin/review/items", claims=PERSON),
    ):
        # THEN the function answers 401 itself
        assert call(review_app, event)[0] == 401


def test_a_decision_on_a_row_that_is_not_pending_or_changed_revision_is_a_conflict(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    # GIVEN a row at revision 2 that the reviewer saw at revision 1
    review_stack.categorize("a-5", 0.3, revision=2)
    status, problem = _decide(review_app, "a-5", {"decision": "accept", "revision": 1})
    # THEN 409, and nothing was recorded
    assert status == 409 and "revision 2" in problem["message"]
    assert review_stack.row("a-5")["review_queue"] == "pending" and review_stack.label_keys() == []
    # WHEN another reviewer accepted it first, a different decision is a conflict too
    assert _decide(review_app, "a-5", {"decision": "accept"})[0] == 200
    assert _decide(review_app, "a-5", {"decision": "correct", "category_id": "sports"})[0] == 409
    assert review_stack.row("a-5")["category_id"] == "technology"
    assert len(review_stack.label_lines()) == 1


def test_the_write_is_conditional_on_the_revision_read(review_stack: ReviewStack) -> None:
    # GIVEN a decision made for revision 1 while a newer revision was being written
    review_stack.categorize("a-6", 0.3, revision=1)
    review_stack.categorize("a-6", 0.3, revision=2)
    record = ReviewRecord(decision="skip", by=REVIEWER, at=datetime.now().astimezone())
    # THEN the store refuses it: the person's answer never lands on a revision they did not see
    with pytest.raises(DecisionConflict):
        ReviewStore(review_stack.table).decide("a-6", 1, record, None)
    assert review_stack.row("a-6")["review_queue"] == "pending"


def test_repeating_a_decision_finishes_its_label_without_a_second_line(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    # GIVEN a correction whose label line was lost (as if its write had failed after the row's)
    review_stack.categorize("a-7", 0.3)
    body = {"decision": "correct", "category_id": "sports"}
    assert _decide(review_app, "a-7", body)[0] == 200
    [key] = review_stack.label_keys()
    review_stack.s3.delete_object(Bucket="pipeline", Key=key)
    # WHEN the same decision is sent again
    status, item = _decide(review_app, "a-7", body)
    # THEN it succeeds with the recorded review, and the one line is back under the same key
    assert status == 200 and item["review"]["category_id"] == "sports"
    assert review_stack.label_keys() == [key]
    assert len(review_stack.label_lines()) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"decision": "correct", "category_id": "no-such-category"}, 400),
        ({"decision": "correct"}, 400),
        ({"decision": "accept", "category_id": "sports"}, 400),
        ({"decision": "approve"}, 400),
        ({"decision": "accept", "extra": 1}, 400),
        ("not json", 400),
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(
    review_stack: ReviewStack, review_app: ModuleType, body: Any, status: int
) -> None:
    review_stack.categorize("a-8", 0.3)
    assert _decide(review_app, "a-8", body)[0] == status
    assert review_stack.row("a-8")["review_queue"] == "pending" and review_stack.label_keys() == []


def test_unknown_articles_are_404(review_stack: ReviewStack, review_app: ModuleType) -> None:
    assert call(review_app, api_event("GET", "/review/items/nope", claims=PERSON))[0] == 404
    assert _decide(review_app, "nope", {"decision": "skip"})[0] == 404


def test_the_list_pages_with_a_cursor_and_refuses_a_forged_one(
    review_stack: ReviewStack, review_app: ModuleType
) -> None:
    for n in range(5):
        review_stack.categorize(f"p-{n}", 0.3)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, page = call(review_app, api_event("GET", "/review/items", query=query, claims=PERSON))
        assert status == 200 and len(page["items"]) <= 2
        seen += [item["article_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"p-{n}" for n in range(5)]
    forged = api_event("GET", "/review/items", query={"cursor": "bm90LWEtY3Vyc29y"}, claims=PERSON)
    assert call(review_app, forged)[0] == 400


def test_the_taxonomy_is_the_active_models_with_paths(review_stack: ReviewStack, review_app: ModuleType) -> None:
    status, view = call(review_app, api_event("GET", "/review/taxonomy", claims=PERSON))
    assert status == 200 and view["version"] == "demo-2"
    # (the path follows the taxonomy's parents: Sports sits under Leisure in demo-2)
    assert {"id": "sports", "name": "Sports", "path": ["Leisure", "Sports"]} in view["categories"]
    status, iab = call(review_app, api_event("GET", "/review/taxonomy", query={"version": "iab-3.1"}, claims=PERSON))
    assert status == 200
    assert {
        "id": "151",
        "name": "Attractions > Amusement and Theme Parks",
        "path": ["Attractions", "Amusement and Theme Parks"],
    } in iab["categories"]
