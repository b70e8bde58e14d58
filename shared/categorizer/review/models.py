"""The review API's and the label lines' shapes (docs/review.md), validated at the boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from categorizer.finetune.models import LabelledArticle
from categorizer.models import ReviewReason

Decision = Literal["accept", "correct", "skip"]
MAX_PAGE_ITEMS = 100


class RankedCategory(BaseModel):
    category_id: str
    name: str
    path: list[str]  # names from tier 1 to the category
    probability: float


class ReviewRecord(BaseModel):
    """Who decided what and when; `category_id` is the person's category (none for a skip)."""

    decision: Decision
    by: str
    at: datetime
    category_id: str | None = None


class ReviewItem(BaseModel):
    article_id: str
    title: str
    text: str | None  # what the model read; None once the text store no longer holds the revision
    category_id: str
    probability: float
    top_k: list[RankedCategory]
    reason: ReviewReason | None
    queued_at: str | None
    model_id: str
    revision: int
    review: ReviewRecord | None = None


class ItemsPage(BaseModel):
    items: list[ReviewItem]
    next_cursor: str | None


class DecisionRequest(BaseModel):
    """The body of POST …/decision. `revision`, when given, must be the row's (else 409)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Decision
    category_id: str | None = Field(default=None, min_length=1, max_length=128)
    revision: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _category_only_for_a_correction(self) -> Self:
        if self.decision == "correct" and self.category_id is None:
            raise ValueError("a correction needs category_id")
        if self.decision != "correct" and self.category_id is not None:
            raise ValueError(f"category_id is only for decision 'correct', not {self.decision!r}")
        return self


class TaxonomyEntry(BaseModel):
    id: str
    name: str
    path: list[str]


class TaxonomyView(BaseModel):
    version: str
    categories: list[TaxonomyEntry]


class LabelReview(BaseModel):
    decision: Literal["accept", "correct"]
    by: str
    at: datetime
    model_id: str
    predicted_category_id: str
    reason: ReviewReason | None


class ReviewedLabel(LabelledArticle):
    """A label line under labels/reviewed/: the LabelledArticle the export reads, and the review."""

    body_format: Literal["text", "html", "auto"] = "text"
    review: LabelReview
