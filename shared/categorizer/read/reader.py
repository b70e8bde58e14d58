"""ResultsTable reads for the read API, and which row answers for a URL.

A row without `revision` is a claim, not a result (categorizer.store): it reads as absent.
A row with `removed_at` is a tombstone (an unpublish or erasure at that revision): it reads
as removed (410).

Several articles can share a canonical URL (syndicated copies, a re-slugged article under
its old id and its new one). The by-URL index holds them all; the one that answers is the
live result categorised most recently (`categorized_at`, then the larger article id on a
tie, so the choice is stable): the latest write is the page's current content. Removed
only when every article at the URL is removed; not found when none is there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from categorizer.read.models import ArticleCategory, CategoryRef, RankedCategory, Removed
from categorizer.store import batch_get_rows

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# The global secondary index on `canonical_url` (template.yaml, ResultsTable).
URL_INDEX = "by-canonical-url"


@dataclass(frozen=True)
class Found:
    result: ArticleCategory
    etag: str


@dataclass(frozen=True)
class Gone:
    removed: Removed
    etag: str


Answer = Found | Gone


def _etag(article_id: str, revision: int, written_at: str) -> str:
    """A strong validator from the revision and the write's time.

    The revision alone does not do: the same revision is written again when a new model
    re-categorises it, with another answer.
    """
    digest = hashlib.sha256(f"{article_id}\n{revision}\n{written_at}".encode()).hexdigest()[:16]
    return f'"{revision}-{digest}"'


def answer(item: Mapping[str, Any]) -> Answer | None:
    """What a stored row says to a reader; None for a claim-only row."""
    if item.get("revision") is None:
        return None
    article_id = str(item["article_id"])
    revision = int(item["revision"])
    if "removed_at" in item:
        removed_at = str(item["removed_at"])
        removed = Removed(
            message="the article was removed (unpublished or erased)",
            article_id=article_id,
            revision=revision,
            removed_at=datetime.fromisoformat(removed_at),
        )
        return Gone(removed, _etag(article_id, revision, removed_at))
    categorized_at = str(item["categorized_at"])
    result = ArticleCategory(
        article_id=article_id,
        url=str(item["url"]),
        canonical_url=str(item["canonical_url"]),
        category=CategoryRef(id=str(item["category_id"]), name=str(item["category_name"])),
        path=[CategoryRef(id=str(tier["id"]), name=str(tier["name"])) for tier in item.get("path", [])],
        probability=float(item["probability"]),
        coverage=float(item["coverage"]),
        needs_review=bool(item["needs_review"]),
        top_k=[
            RankedCategory(
                category_id=str(p["category_id"]),
                name=str(p["name"]),
                label=str(p["label"]),
                probability=float(p["probability"]),
            )
            for p in item["top_k"]
        ],
        model_id=str(item["model_id"]),
        taxonomy_version=str(item["taxonomy_version"]),
        revision=revision,
        categorized_at=datetime.fromisoformat(categorized_at),
    )
    return Found(result, _etag(article_id, revision, categorized_at))


def url_answer(items: Sequence[Mapping[str, Any]]) -> Answer | None:
    """The answer for a URL from the rows the index holds for it (the module docstring's rule)."""
    answers = [a for a in (answer(item) for item in items) if a is not None]
    live = [a for a in answers if isinstance(a, Found)]
    if live:
        return max(live, key=lambda a: (a.result.categorized_at, a.result.article_id))
    gone = [a for a in answers if isinstance(a, Gone)]
    return max(gone, key=lambda a: (a.removed.removed_at, a.removed.article_id)) if gone else None


class ResultReader:
    def __init__(self, table_factory: Callable[[], Table]) -> None:
        self._table_factory = table_factory
        self._table_instance: Table | None = None

    @property
    def _table(self) -> Table:
        if self._table_instance is None:
            self._table_instance = self._table_factory()
        return self._table_instance

    def by_id(self, article_id: str) -> Answer | None:
        item = self._table.get_item(Key={"article_id": article_id}).get("Item")
        return None if item is None else answer(item)

    def by_url(self, canonical: str) -> Answer | None:
        items: list[Mapping[str, Any]] = []
        query: dict[str, Any] = {
            "IndexName": URL_INDEX,
            "KeyConditionExpression": "canonical_url = :url",
            "ExpressionAttributeValues": {":url": canonical},
        }
        while True:
            page = self._table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return url_answer(items)

    def by_ids(self, article_ids: Sequence[str]) -> dict[str, Answer | None]:
        """Many rows in BatchGetItem calls (eventually consistent, like the other reads)."""
        found: dict[str, Answer | None] = dict.fromkeys(article_ids)
        for item in batch_get_rows(self._table, list(dict.fromkeys(article_ids))):
            found[str(item["article_id"])] = answer(item)
        return found
