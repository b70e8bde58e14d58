"""The audit's answer to "where was a lost article lost?", from the pollers' ledgers."""

from __future__ import annotations

import json

from bench.chaos import locate_losses
from local.poller import MessageTrace


def _body(article_id: str, version: int) -> str:
    return json.dumps(
        {"article_id": article_id, "url": "https://news.example/a", "title": "T", "body": "B", "version": version}
    )


def test_each_lost_revision_is_placed_by_what_the_ledger_saw() -> None:
    # GIVEN a ledger: a@2 delivered and deleted, b@1 delivered twice and never deleted,
    # c@1 delivered at another revision only, and a message that is not an article event
    traces = [
        MessageTrace(_body("a", 2), receives=1, deleted=True),
        MessageTrace(_body("b", 1), receives=2, deleted=False),
        MessageTrace(_body("c", 5), receives=1, deleted=True),
        MessageTrace("not json", receives=1, deleted=True),
    ]
    # WHEN the audit locates the losses of a@2, b@1, c@1 and d@1
    where = locate_losses([("a", 2), ("b", 1), ("c", 1), ("d", 1)], traces)
    # THEN each is placed where it went missing
    assert where == {
        ("a", 2): "deleted_without_row",
        ("b", 1): "received_not_deleted",
        ("c", 1): "never_received",
        ("d", 1): "never_received",
    }
