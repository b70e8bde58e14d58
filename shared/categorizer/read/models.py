"""The read API's request and response models: one source for validation, responses and OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from categorizer.models import ArticleId

MAX_BATCH_KEYS = 100  # BatchGetItem's 100 keys per call


class CategoryRef(BaseModel):
    id: str = Field(description="the category's id in the taxonomy (IAB unique id for iab-3.1)")
    name: str


class RankedCategory(BaseModel):
    category_id: str
    name: str
    label: str = Field(description="the model's label token (0–999) for the category")
    probability: float = Field(ge=0, le=1)


class ArticleCategory(BaseModel):
    """The stored result of an article's latest revision."""

    article_id: str
    url: str
    canonical_url: str = Field(description="the key of GET /categories?url=… (docs/read-api.md, Canonical URL)")
    category: CategoryRef
    path: list[CategoryRef] = Field(description="tier 1 down to the category, each with its id and name")
    probability: float = Field(ge=0, le=1, description="the category's probability (renormalised over labels)")
    coverage: float = Field(ge=0, le=1, description="raw probability mass the model put on valid labels")
    needs_review: bool = Field(description="probability below the deployment's LowConfidenceThreshold")
    top_k: list[RankedCategory]
    model_id: str
    taxonomy_version: str
    revision: int = Field(description="the article's version, or updated_at in ms: newer wins")
    categorized_at: datetime


class Removed(BaseModel):
    """410: the article was unpublished or erased at this revision."""

    message: str
    article_id: str
    revision: int
    removed_at: datetime


class Problem(BaseModel):
    field: str
    reason: str


class ErrorResponse(BaseModel):
    message: str
    errors: list[Problem] = Field(default_factory=list)


class BatchGetRequest(BaseModel):
    """Up to 100 keys in all: article ids, page URLs, or both."""

    model_config = ConfigDict(extra="forbid")

    article_ids: list[ArticleId] = Field(default_factory=list, max_length=MAX_BATCH_KEYS)
    urls: list[str] = Field(default_factory=list, max_length=MAX_BATCH_KEYS)

    @model_validator(mode="after")
    def _one_to_a_hundred_keys(self) -> BatchGetRequest:
        count = len(self.article_ids) + len(self.urls)
        if not 1 <= count <= MAX_BATCH_KEYS:
            raise ValueError(f"give 1 to {MAX_BATCH_KEYS} article_ids and urls in all; got {count}")
        return self


class BatchItem(BaseModel):
    """One key of the request, in request order: ids first, then URLs."""

    article_id: str | None = Field(default=None, description="the id asked for (ids only)")
    url: str | None = Field(default=None, description="the URL asked for (URLs only)")
    status: Literal["found", "removed", "not_found"]
    result: ArticleCategory | None = None


class BatchGetResponse(BaseModel):
    items: list[BatchItem]
