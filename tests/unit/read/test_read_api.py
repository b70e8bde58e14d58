"""The read API (ReadFunction): by id, by URL, batch-get; ETag/304, Cache-Control, every 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from categorizer.read.api import build_resolver, openapi_json
from categorizer.read.reader import ResultReader
from categorizer.store import ResultStore
from categorizer.urls import canonical_url
from tests.support.paths import REPO
from tests.support.read import create_read_stack, load_read, request, result


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        yield create_read_stack(monkeypatch)


@pytest.fixture
def read(table: Any) -> ModuleType:
    return load_read()


def _store(table: Any) -> ResultStore:
    return ResultStore(lambda: table)


def _tombstone(table: Any, article_id: str, revision: int, url: str, removed_at: str) -> None:
    item = {"article_id": article_id, "revision": revision, "removed_at": removed_at, "url": url}
    table.put_item(Item={**item, "canonical_url": canonical_url(url)})


def test_get_article_returns_the_stored_result_with_etag_and_cache_control(table: Any, read: ModuleType) -> None:
    # GIVEN a stored result
    _store(table).put_if_not_older(result("a-1", revision=3))
    # WHEN it is read by id
    response = request(read, "GET", "/articles/a-1")
    # THEN 200 with the result, an ETag and the configured max-age
    assert response.status == 200
    body = response.body
    assert body["article_id"] == "a-1" and body["revision"] == 3
    assert body["category"] == {"id": "technology", "name": "Technology"}
    assert body["top_k"][0]["category_id"] == "technology" and body["needs_review"] is False
    assert body["canonical_url"] == "https://news.example/a-1"
    assert response.headers["Cache-Control"] == "max-age=120"
    assert response.headers["ETag"].startswith('"3-')


def test_if_none_match_with_the_current_etag_is_304_and_a_new_write_changes_the_etag(
    table: Any, read: ModuleType
) -> None:
    # GIVEN a stored result and its ETag
    store = _store(table)
    store.put_if_not_older(result("a-1", revision=3))
    etag = request(read, "GET", "/articles/a-1").headers["ETag"]
    # WHEN it is asked for again with that ETag (also weakly, and in a list)
    for given in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = request(read, "GET", "/articles/a-1", headers={"if-none-match": given})
        # THEN 304 without a body, with the same ETag
        assert response.status == 304 and response.body is None, given
        assert response.headers["ETag"] == etag
    # AND after a re-categorisation at the same revision (a new model) the ETag differs
    store.put_if_not_older(result("a-1", revision=3, minutes=5, model_id="ft:gpt-4o-mini:acme::m2"))
    response = request(read, "GET", "/articles/a-1", headers={"if-none-match": etag})
    assert response.status == 200 and response.headers["ETag"] != etag


def test_unknown_claim_only_and_removed_articles(table: Any, read: ModuleType) -> None:
    # GIVEN a claim-only row (a call under way, no result yet) and a tombstone
    table.put_item(Item={"article_id": "claimed", "claim_hash": "h", "claim_model": "m", "claim_expires_at": 1})
    _tombstone(table, "gone", 9, "https://news.example/gone", "2026-11-25T09:00:00+00:00")
    # WHEN each is read THEN unknown and claim-only are 404, the tombstone 410 with its revision
    assert request(read, "GET", "/articles/nope").status == 404
    missing = request(read, "GET", "/articles/claimed")
    assert missing.status == 404 and "no result" in missing.body["message"]
    assert missing.headers["Cache-Control"] == "no-store"
    removed = request(read, "GET", "/articles/gone")
    assert removed.status == 410 and removed.body["revision"] == 9


def test_an_id_holding_a_slash_is_read_percent_encoded(table: Any, read: ModuleType) -> None:
    # GIVEN an article whose id holds "/" WHEN read with the slash as %2F THEN it is found
    _store(table).put_if_not_older(result("site/a-1"))
    assert request(read, "GET", "/articles/site%2Fa-1").body["article_id"] == "site/a-1"


def test_get_article_refuses_a_malformed_id(read: ModuleType) -> None:
    # GIVEN an id the ingest rule would refuse WHEN read THEN 400 naming the field
    response = request(read, "GET", "/articles/-bad%20id")
    assert response.status == 400
    assert response.body["errors"][0]["field"] == "article_id" and "not an article id" in response.body["message"]


def test_get_categories_finds_the_article_by_any_form_of_its_url(table: Any, read: ModuleType) -> None:
    # GIVEN a result stored for a page
    _store(table).put_if_not_older(result("a-1", url="https://news.example/2026/chips"))
    # WHEN the ad server asks with tracking parameters, a fragment, upper case and a trailing slash
    response = request(
        read, "GET", "/categories", query={"url": "HTTPS://News.Example:443/2026/chips/?utm_source=x#top"}
    )
    # THEN the article answers
    assert response.status == 200 and response.body["article_id"] == "a-1"
    assert response.headers["ETag"] == request(read, "GET", "/articles/a-1").headers["ETag"]


def test_several_articles_at_one_url_the_live_one_categorised_last_answers(table: Any, read: ModuleType) -> None:
    # GIVEN three articles at one URL: an old copy, a newer one, and the newest, removed
    store = _store(table)
    url = "https://news.example/shared"
    store.put_if_not_older(result("old", url=url, minutes=0))
    store.put_if_not_older(result("new", url=url + "?utm_campaign=syndication", minutes=10))
    _tombstone(table, "newest", 1, url, "2026-11-25T09:00:00+00:00")
    # WHEN the URL is read THEN the live result categorised last answers
    assert request(read, "GET", "/categories", query={"url": url}).body["article_id"] == "new"
    # AND when every article at a URL is removed, it is 410; at an unknown URL, 404
    _tombstone(table, "alone", 4, "https://news.example/alone", "2026-11-25T09:00:00+00:00")
    assert request(read, "GET", "/categories", query={"url": "https://news.example/alone"}).status == 410
    assert request(read, "GET", "/categories", query={"url": "https://news.example/none"}).status == 404


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({}, "query.url", "Field required"),
        ({"url": "ftp://news.example/a"}, "url", "http:// or https://"),
        ({"url": "https://news.example:99999/a"}, "url", "cannot be parsed"),
        ({"url": "https://" + "a" * 2100 + ".example/"}, "query.url", "at most 2048"),
    ],
)
def test_get_categories_refuses_a_missing_or_malformed_url(
    read: ModuleType, query: dict[str, str], field: str, reason: str
) -> None:
    # GIVEN a request without a usable URL WHEN sent THEN 400 with the field and the reason
    response = request(read, "GET", "/categories", query=query)
    assert response.status == 400
    assert response.body["errors"][0]["field"] == field
    assert reason in response.body["message"]


def test_batch_get_answers_every_key_in_request_order(table: Any, read: ModuleType) -> None:
    # GIVEN 60 stored results, one tombstone
    store = _store(table)
    for n in range(60):
        store.put_if_not_older(result(f"a-{n}"))
    _tombstone(table, "gone", 2, "https://news.example/gone", "2026-11-25T09:00:00+00:00")
    ids = [f"a-{n}" for n in range(58)] + ["gone", "missing"]
    urls = ["https://news.example/a-59?fbclid=1", "https://news.example/none"]
    # WHEN 62 keys are asked for at once
    response = request(read, "POST", "/categories/batch-get", body={"article_ids": ids, "urls": urls})
    # THEN each key has an item, in request order: ids, then URLs
    assert response.status == 200
    items = response.body["items"]
    assert [i["article_id"] for i in items[:60]] == ids
    assert [i["status"] for i in items[57:]] == ["found", "removed", "not_found", "found", "not_found"]
    assert items[60]["url"] == urls[0] and items[60]["result"]["article_id"] == "a-59"
    assert items[58]["result"] is None


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"article_ids": [f"a-{n}" for n in range(101)]}, "article_ids", "at most 100"),
        (
            {"article_ids": [f"a-{n}" for n in range(60)], "urls": [f"https://x.example/{n}" for n in range(41)]},
            "(body)",
            "got 101",
        ),
        ({}, "(body)", "got 0"),
        ({"article_ids": ["a-1"], "ids": ["a-2"]}, "ids", "Extra inputs are not permitted"),
        ({"article_ids": ["bad id"]}, "article_ids.0", "String should match pattern"),
        ({"urls": ["https://x.example/a", "mailto:x@example.com"]}, "urls.1", "http:// or https://"),
        ("not json", "(body)", "JSON"),
    ],
)
def test_batch_get_refuses_bad_requests_with_the_field_and_reason(
    read: ModuleType, body: Any, field: str, reason: str
) -> None:
    # GIVEN a malformed batch (too many keys, none, unknown fields, bad ids or URLs, not JSON)
    response = request(read, "POST", "/categories/batch-get", body=body)
    # THEN 400 naming the field and the reason
    assert response.status == 400, response.body
    assert response.body["errors"][0]["field"] == field
    assert reason in response.body["message"]


def test_unknown_route_is_404(read: ModuleType) -> None:
    assert request(read, "GET", "/nowhere").status == 404


def test_the_committed_openapi_schema_is_current() -> None:
    # GIVEN the schema Powertools generates from the routes and the response models
    generated = openapi_json(build_resolver(ResultReader(lambda: None), cache_max_age_seconds=0))  # type: ignore[arg-type, return-value]
    # THEN it is the one committed (regenerate: python -m categorizer.read > docs/read-api.openapi.json)
    committed = (REPO / "docs" / "read-api.openapi.json").read_text(encoding="utf-8")
    assert generated == committed
    paths = json.loads(committed)["paths"]
    assert set(paths) == {"/articles/{article_id}", "/categories", "/categories/batch-get"}
