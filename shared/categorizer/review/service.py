"""The review API's logic: the pending list, one item, a decision, the taxonomy (docs/review.md).

A decision commits on the row first (ReviewStore.decide, conditional), then writes its label line.
If the label write fails the caller gets an error and repeats the same decision: a repeat of the
decision already recorded for the row's revision is answered as a success and writes the line
again (same key), so no accepted or corrected label is lost and none is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from categorizer.review.labels import ReviewLabels
from categorizer.review.models import (
    MAX_PAGE_ITEMS,
    Decision,
    DecisionRequest,
    ItemsPage,
    LabelReview,
    RankedCategory,
    ReviewedLabel,
    ReviewItem,
    ReviewRecord,
    TaxonomyEntry,
    TaxonomyView,
)
from categorizer.review.store import (
    Correction,
    DecisionConflict,
    ReviewStore,
    as_int,
    decision_matches,
    recorded_review,
)
from categorizer.taxonomy import Category, Taxonomy
from categorizer.textstore import StoredText, TextStore

# Texts of one page read in parallel (S3 GETs; boto3 clients are thread-safe).
_TEXT_READS = 8


class ItemNotFound(LookupError):
    """No result row for that article."""


class InvalidDecision(ValueError):
    """A decision the row's taxonomy cannot take (an unknown category)."""


def category_path(taxonomy: Taxonomy, category_id: str) -> list[str]:
    """Tier 1 to the category, one name a tier (IAB names already carry their parents' names:
    "Attractions > Museums & Galleries" is shown under "Attractions" as "Museums & Galleries")."""
    if category_id not in taxonomy.by_id:
        return []  # a row of an older taxonomy version's category: shown without a path
    return [c.name.rsplit(_PATH_SEPARATOR, 1)[-1].strip() for c in taxonomy.path(category_id)]


# How the bundled IAB names join a category's tiers.
_PATH_SEPARATOR = " > "


def taxonomy_view(taxonomy: Taxonomy) -> TaxonomyView:
    return TaxonomyView(
        version=taxonomy.version,
        categories=[
            TaxonomyEntry(id=c.id, name=c.name, path=category_path(taxonomy, c.id)) for c in taxonomy.categories
        ],
    )


class ReviewService:
    def __init__(
        self,
        store: ReviewStore,
        texts: TextStore,
        labels: ReviewLabels,
        taxonomy: Callable[[str], Taxonomy],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._texts = texts
        self._labels = labels
        self._taxonomy = taxonomy
        self._clock = clock

    def pending(self, limit: int, cursor: str | None) -> ItemsPage:
        rows, next_cursor = self._store.pending(max(1, min(limit, MAX_PAGE_ITEMS)), cursor)
        with ThreadPoolExecutor(_TEXT_READS) as pool:
            texts = list(pool.map(self._text, rows))
        items = [self._view(row, text) for row, text in zip(rows, texts, strict=True)]
        return ItemsPage(items=items, next_cursor=next_cursor)

    def _view(self, row: Mapping[str, Any], text: StoredText | None) -> ReviewItem:
        return _item(row, text, self._taxonomy(str(row["taxonomy_version"])))

    def item(self, article_id: str) -> ReviewItem:
        row = self._row(article_id)
        return self._view(row, self._text(row))

    def decide(self, article_id: str, request: DecisionRequest, by: str) -> ReviewItem:
        row = self._row(article_id)
        revision = as_int(row["revision"])
        if request.revision is not None and request.revision != revision:
            raise DecisionConflict(f"{article_id} is at revision {revision}, not {request.revision}")
        recorded = recorded_review(row)
        if row.get("review_queue") is None:
            if recorded is None or not decision_matches(recorded, request.decision, request.category_id):
                raise DecisionConflict(f"{article_id} is not pending review at revision {revision}")
            # The same decision again: finish what an earlier call may have left undone (its label).
            text = self._text_for(row, recorded.decision)
            self._write_label(row, recorded, text)
            return self._view(row, text)
        correction = self._correction(row, request)
        text = self._text_for(row, request.decision)
        category_id = row["category_id"] if request.decision == "accept" else request.category_id
        record = ReviewRecord(decision=request.decision, by=by, at=self._clock(), category_id=category_id)
        decided = self._store.decide(article_id, revision, record, correction)
        self._write_label(row, record, text)
        return self._view(decided, text)

    def _row(self, article_id: str) -> dict[str, Any]:
        row = self._store.row(article_id)
        if row is None:
            raise ItemNotFound(f"no result for article {article_id!r}")
        return row

    def _correction(self, row: Mapping[str, Any], request: DecisionRequest) -> Correction | None:
        if request.decision != "correct":
            return None
        assert request.category_id is not None  # DecisionRequest's rule
        taxonomy = self._taxonomy(str(row["taxonomy_version"]))
        category: Category | None = taxonomy.by_id.get(request.category_id)
        if category is None:
            raise InvalidDecision(f"{request.category_id!r} is not a category of taxonomy {taxonomy.version!r}")
        return Correction(category.id, category.name, category.label)

    def _text(self, row: Mapping[str, Any]) -> StoredText | None:
        try:
            return self._texts.get(str(row["article_id"]), as_int(row["revision"]))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def _text_for(self, row: Mapping[str, Any], decision: Decision) -> StoredText | None:
        """The stored text; a label needs it, so accept and correct cannot go on without it."""
        text = self._text(row)
        if text is None and decision != "skip":
            raise DecisionConflict(
                f"the text store no longer holds what the model read of {row['article_id']} at revision "
                f"{row['revision']}: a label cannot be built (skip it instead)"
            )
        return text

    def _write_label(self, row: Mapping[str, Any], record: ReviewRecord, text: StoredText | None) -> None:
        """Accept and correct write one label line; a skip writes none."""
        if record.decision == "skip":
            return
        assert text is not None and record.category_id is not None  # _text_for's and the store's rules
        self._labels.put(
            ReviewedLabel(
                article_id=text.article_id,
                title=text.title,
                body=text.body,
                body_format="text",
                category_id=record.category_id,
                version=text.revision,
                updated_at=record.at,
                review=LabelReview(
                    decision=record.decision,
                    by=record.by,
                    at=record.at,
                    model_id=str(row["model_id"]),
                    # The model's answer, whatever the row says now (a correction replaced it).
                    predicted_category_id=str(row["top_k"][0]["category_id"]),
                    reason=row.get("review_reason"),
                ),
            )
        )


def _item(row: Mapping[str, Any], text: StoredText | None, taxonomy: Taxonomy) -> ReviewItem:
    return ReviewItem(
        article_id=str(row["article_id"]),
        title=text.title if text is not None else str(row.get("title", "")),
        text=text.body if text is not None else None,
        category_id=str(row["category_id"]),
        probability=float(row["probability"]),
        top_k=[
            RankedCategory(
                category_id=str(p["category_id"]),
                name=str(p["name"]),
                path=category_path(taxonomy, str(p["category_id"])),
                probability=float(p["probability"]),
            )
            for p in row.get("top_k", [])
        ],
        reason=row.get("review_reason"),
        queued_at=row.get("review_queued_at"),
        model_id=str(row["model_id"]),
        revision=as_int(row["revision"]),
        review=recorded_review(row),
    )
