"""The review page in headless Chromium against the offline stack: list, accept, correct, keyboard only.

Every decision is checked where it lands (the row in ResultsTable, the label line under
labels/reviewed/), not only on the page. The stack is the real one (template.yaml's ReviewApi on the
loopback gateway, ReviewFunction, moto's Cognito): no fake backend.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.keys import Keys

from local.review_auth import DEMO_REVIEWER, reviewer_token
from tests.browser.support import ReviewStack
from tests.support.browser import ReviewPage

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(600)]


def _sign_in_with_password(page: ReviewPage, review_stack: ReviewStack) -> None:
    page.driver.get(review_stack.page_url)
    page.visible("#email").send_keys(review_stack.reviewer.email)
    page.find("#password").send_keys(review_stack.reviewer.password)
    page.find("#password-submit").click()
    page.until_status_contains("pending review")


def _sign_in_with_token(page: ReviewPage, review_stack: ReviewStack) -> None:
    """With the token `python -m local review-token` prints (its demo reviewer), pasted."""
    page.driver.get(review_stack.page_url)
    page.visible("#token-details summary").click()
    page.visible("#token-input").send_keys(reviewer_token(review_stack.stack))
    page.find("#token-form button").click()
    page.until_status_contains("pending review")


def _other_category(review_stack: ReviewStack, item: dict[str, object]) -> dict[str, object]:
    """A category of the taxonomy the model did not rank in its top-k (found only by searching)."""
    ranked = {candidate["category_id"] for candidate in item["top_k"]}  # type: ignore[attr-defined]
    categories = review_stack.api("/taxonomy")["categories"]
    return next(category for category in categories if category["id"] not in ranked)


def test_page_lists_the_pending_items_with_their_text_and_top_k(page: ReviewPage, review_stack: ReviewStack) -> None:
    # GIVEN the queue the API holds (oldest first)
    pending = review_stack.pending()
    assert pending

    # WHEN the reviewer signs in on the page with the user pool's password flow
    _sign_in_with_password(page, review_stack)

    # THEN the list is that queue in that order, and the page says who is signed in
    page.until_queue_is([item["article_id"] for item in pending])
    assert review_stack.reviewer.email in page.find("#who").text
    # AND the first item is shown: its title, the stored text the model read, and its top-k
    first = pending[0]
    assert page.current_id() == first["article_id"]
    assert page.find("#item-title").text == first["title"]
    assert page.find("#item-text").text.split() == first["text"].split()
    rows = page.find_all("#topk tbody tr")
    assert len(rows) == len(first["top_k"])
    for row, candidate in zip(rows, first["top_k"], strict=True):
        assert candidate["name"] in row.text
        assert f"{candidate['probability'] * 100:.1f} %" in row.text
    # AND the keyboard shortcuts are on the page
    shown_keys = {key.text for key in page.find_all("footer kbd")}
    assert {"j", "k", "a", "c", "s", "?"} <= shown_keys
    # (the artefact: what a reviewer sees)
    page.screenshot("review-page")


def test_accept_records_the_decision_and_writes_one_label(page: ReviewPage, review_stack: ReviewStack) -> None:
    # GIVEN a pending item, and the offline demo reviewer signed in with a pasted token
    item = review_stack.pending()[0]
    _sign_in_with_token(page, review_stack)

    # WHEN they pick it in the list and press Accept
    page.find(f'#queue button[data-article-id="{item["article_id"]}"]').click()
    page.until_current_is(item["article_id"])
    page.find("#accept").click()

    # THEN the page announces it and the item leaves the list
    assert item["title"] in page.until_status_contains("Accepted")
    assert item["article_id"] not in page.queue_ids()
    # AND the row records who accepted, keeps the model's category and leaves the queue
    row = review_stack.row(item["article_id"])
    assert row["review"]["decision"] == "accept"
    assert row["review"]["by"] == DEMO_REVIEWER
    assert row["category_id"] == item["category_id"]
    assert "review_queue" not in row
    # AND exactly one label line holds the stored text with the accepted category
    [label] = review_stack.label_lines(item["article_id"])
    assert label["category_id"] == item["category_id"]
    assert label["body"] == item["text"]
    assert label["review"]["decision"] == "accept"
    # AND the API's queue no longer holds it
    assert item["article_id"] not in {pending["article_id"] for pending in review_stack.pending()}


def test_correct_through_the_picker_search(page: ReviewPage, review_stack: ReviewStack) -> None:
    # GIVEN a pending item and a category the model did not rank (so only a search finds it)
    item = review_stack.pending()[0]
    target = _other_category(review_stack, item)
    _sign_in_with_password(page, review_stack)
    page.until_current_is(item["article_id"])

    # WHEN the reviewer opens the picker, types part of the category's name and picks the match
    page.find("#correct").click()
    search = page.visible("#picker-input")
    search.send_keys(str(target["name"])[:4])
    option = page.visible(f'#picker-options li[data-category-id="{target["id"]}"]')
    # (the option shows the category's path in the taxonomy)
    assert " › ".join(target["path"]) in option.text  # type: ignore[arg-type]
    option.click()

    # THEN the page announces the correction
    assert str(target["name"]) in page.until_status_contains("Corrected")
    # AND the row carries the person's category, who corrected it, and the unchanged revision
    row = review_stack.row(item["article_id"])
    assert row["category_id"] == target["id"]
    assert row["corrected_by"] == review_stack.reviewer.email
    assert row["review"] == {**row["review"], "decision": "correct", "category_id": target["id"]}
    assert int(row["revision"]) == item["revision"]
    # AND one label line teaches the next fine-tune the corrected category for the stored text
    [label] = review_stack.label_lines(item["article_id"])
    assert label["category_id"] == target["id"]
    assert label["body"] == item["text"]
    assert label["review"]["predicted_category_id"] == item["category_id"]


def test_keyboard_only_sign_in_move_accept_correct_skip(page: ReviewPage, review_stack: ReviewStack) -> None:
    # GIVEN at least four pending items
    pending = review_stack.pending()
    assert len(pending) >= 4
    first, second, third, fourth = pending[:4]
    target = _other_category(review_stack, third)

    # WHEN the reviewer signs in without the mouse (the email field has the focus on arrival)
    page.driver.get(review_stack.page_url)
    page.visible("#email")
    assert page.focused_id() == "email"
    page.keys(review_stack.reviewer.email, Keys.TAB, review_stack.reviewer.password, Keys.ENTER)
    page.until_status_contains("pending review")
    page.until_current_is(first["article_id"])

    # AND presses j (next), k (back), j: the second item is current
    page.keys("j")
    page.until_current_is(second["article_id"])
    page.keys("k")
    page.until_current_is(first["article_id"])
    page.keys("j")
    page.until_current_is(second["article_id"])
    # AND a accepts it; the third becomes current
    page.keys("a")
    page.until_status_contains(f"Accepted “{second['title']}”")
    page.until_current_is(third["article_id"])
    # AND c opens the picker with the focus in its search, typed text narrows it, Enter saves
    page.keys("c")
    page.visible("#picker-input")
    assert page.focused_id() == "picker-input"
    page.keys(str(target["name"]))
    page.visible(f'#picker-options li[aria-selected="true"][data-category-id="{target["id"]}"]')
    page.keys(Keys.ENTER)
    page.until_status_contains(f"Corrected “{third['title']}”")
    page.until_current_is(fourth["article_id"])
    # AND s skips the fourth
    page.keys("s")
    page.until_status_contains(f"Skipped “{fourth['title']}”")
    # AND ? opens the help, Esc closes it
    page.keys("?")
    assert page.visible("#help").is_displayed()
    page.keys(Keys.ESCAPE)
    assert not page.find("#help").is_displayed()

    # THEN each decision is on its row, by the signed-in reviewer
    accepted, corrected, skipped = (review_stack.row(item["article_id"]) for item in (second, third, fourth))
    assert accepted["review"]["decision"] == "accept" and accepted["category_id"] == second["category_id"]
    assert corrected["review"]["decision"] == "correct" and corrected["category_id"] == target["id"]
    assert skipped["review"]["decision"] == "skip" and skipped["category_id"] == fourth["category_id"]
    assert {row["review"]["by"] for row in (accepted, corrected, skipped)} == {review_stack.reviewer.email}
    # AND the first item, only moved past, is still pending
    assert "review_queue" in review_stack.row(first["article_id"])
    # AND accept and correct wrote one label line each, the skip none
    assert [line["category_id"] for line in review_stack.label_lines(second["article_id"])] == [second["category_id"]]
    assert [line["category_id"] for line in review_stack.label_lines(third["article_id"])] == [target["id"]]
    assert review_stack.label_lines(fourth["article_id"]) == []
