"""The webhook's unpublish item (docs/ingest.md, "Unpublish"): signed like a publish, queued in order with it."""

from __future__ import annotations

from types import ModuleType

from tests.support.categorize import article
from tests.support.ingest import IngestStack, post


def test_a_signed_unpublish_is_queued_with_its_revision(ingest: ModuleType, ingest_stack: IngestStack) -> None:
    # GIVEN a batch with a publish and an unpublish ordered by updated_at
    unpublish = {"action": "unpublish", "article_id": "a-2", "updated_at": "2026-11-25T08:00:00Z"}
    # WHEN it is posted, signed
    response = post(ingest, [article("a-1"), unpublish])
    # THEN both are accepted with their revisions, and the unpublish is queued as given
    assert response.status == 202
    assert response.body["accepted"][1] == {"article_id": "a-2", "revision": 1_795_593_600_000}
    queued = ingest_stack.queued()
    assert {"action": "unpublish", "article_id": "a-2", "updated_at": "2026-11-25T08:00:00Z"} in queued


def test_an_unpublish_item_through_an_adapter_keeps_its_generic_shape(ingest: ModuleType) -> None:
    # GIVEN a WordPress endpoint WHEN the CMS sends an unpublish THEN it is taken as it is
    unpublish = {"action": "unpublish", "article_id": "wp-9", "version": 3}
    assert post(ingest, unpublish, query={"format": "wordpress"}).status == 202


def test_an_unpublish_without_an_ordering_key_or_with_a_bad_id_is_refused(ingest: ModuleType) -> None:
    # GIVEN unpublish items without version/updated_at, or with an invalid id
    items = [{"action": "unpublish", "article_id": "a-1"}, {"action": "unpublish", "article_id": "-x", "version": 1}]
    # WHEN posted THEN 400 names both, and nothing is queued
    response = post(ingest, items)
    assert response.status == 400
    assert [e["index"] for e in response.body["errors"]] == [0, 1]
    assert "version or updated_at" in response.body["errors"][0]["errors"][0]["reason"]


def test_an_unpublish_follows_the_publish_rules_for_types_urls_and_times(ingest: ModuleType) -> None:
    # GIVEN unpublish items that a publish would be refused for: a version as a string, a URL
    # with credentials, a URL with surrounding spaces, an updated_at that is a bare number
    items = [
        {"action": "unpublish", "article_id": "a-1", "version": "7"},
        {"action": "unpublish", "article_id": "a-2", "version": 1, "url": "https://user:pw@x.example/a-2"},
        {"action": "unpublish", "article_id": "a-3", "version": 1, "url": " https://x.example/a-3 "},
        {"action": "unpublish", "article_id": "a-4", "updated_at": 1_795_593_600},
    ]
    # WHEN posted THEN 400 names each with the field at fault, and nothing is queued
    response = post(ingest, items)
    assert response.status == 400
    fields = [(e["index"], [p["field"] for p in e["errors"]]) for e in response.body["errors"]]
    assert fields == [(0, ["version"]), (1, ["url"]), (2, ["url"]), (3, ["updated_at"])]
