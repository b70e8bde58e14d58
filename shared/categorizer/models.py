"""pydantic models at the boundaries: the article event, predictions, stored results."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeGuard

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from categorizer.text import html_to_text, looks_like_html, normalize_text
from categorizer.urls import InvalidUrl, canonical_url

MAX_TITLE_CHARS = 1_000
# SQS messages are at most 256 KiB; the body limit leaves room for the rest of the event.
MAX_BODY_CHARS = 200_000
MAX_URL_CHARS = 2_048

_ARTICLE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$"
_LANGUAGE_TAG = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

ArticleId = Annotated[str, StringConstraints(pattern=_ARTICLE_ID)]
_ARTICLE_ID_MATCH = re.compile(_ARTICLE_ID)


def is_article_id(value: object) -> TypeGuard[str]:
    """The event model's rule for an article id, for row reads made before a record is validated."""
    return isinstance(value, str) and _ARTICLE_ID_MATCH.match(value) is not None


def _reject_control_characters(value: str) -> str:
    match = _CONTROL_CHARS.search(value)
    if match:
        raise ValueError(f"contains the control character U+{ord(match.group()):04X} at offset {match.start()}")
    return value


def _require_canonical_url(value: str) -> str:
    """The row is found by this form (GET /categories?url=…): a URL without one is refused at ingest."""
    try:
        canonical_url(value)
    except InvalidUrl as error:
        raise ValueError(str(error)) from None
    return value


class ArticleEvent(BaseModel):
    """One article as published by the CMS: the SQS message body and the ingest payload item.

    The ordering key for "newer wins" (`revision`) is `version` when given, else
    `updated_at` in milliseconds; one of the two is required.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    article_id: ArticleId
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS, pattern=r"^https?://\S+$")
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    body_format: Literal["text", "html", "auto"] = "auto"
    language: Annotated[str, StringConstraints(pattern=_LANGUAGE_TAG)] | None = None
    version: int | None = Field(default=None, ge=0, le=2**53)
    updated_at: datetime | None = None
    site: str | None = Field(default=None, max_length=256)

    _text: str = PrivateAttr(default="")

    @field_validator("title", "body", "site")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        return None if value is None else _reject_control_characters(value)

    @field_validator("url")
    @classmethod
    def _has_canonical_form(cls, value: str) -> str:
        return _require_canonical_url(value)

    @field_validator("updated_at")
    @classmethod
    def _timezone_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-11-25T08:00:00Z")
        return value

    @model_validator(mode="after")
    def _derive_text(self) -> ArticleEvent:
        if self.version is None and self.updated_at is None:
            raise ValueError("either version or updated_at is required (it orders the article's revisions)")
        is_html = self.body_format == "html" or (self.body_format == "auto" and looks_like_html(self.body))
        self._text = html_to_text(self.body) if is_html else normalize_text(self.body)
        if not self._text:
            raise ValueError("body has no text once HTML markup, scripts and styles are removed")
        if not normalize_text(self.title):
            raise ValueError("title has no text")
        return self

    @property
    def text(self) -> str:
        """The body as plain, normalised text."""
        return self._text

    @property
    def canonical_url(self) -> str:
        """The key of the by-URL index (categorizer.urls)."""
        return canonical_url(self.url)

    @property
    def revision(self) -> int:
        return revision_of(self.version, self.updated_at)


def revision_of(version: int | None, updated_at: datetime | None) -> int:
    """The ordering key of an article's revisions: `version`, else `updated_at` in milliseconds."""
    if version is not None:
        return version
    assert updated_at is not None  # the models require one of the two
    return int(updated_at.timestamp() * 1000)


class UnpublishEvent(BaseModel):
    """The CMS took the article down: an ingest payload item and its SQS message body (docs/ingest.md).

    A revision like a publish (docs/design.md invariant 10): the row becomes a tombstone at it,
    an older publish arriving later is refused, a newer one brings the article back.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    action: Literal["unpublish"]
    article_id: ArticleId
    version: int | None = Field(default=None, ge=0, le=2**53)
    updated_at: datetime | None = None
    # Optional: lets the by-URL lookup answer 410 for an article the table never had.
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARS, pattern=r"^https?://\S+$")

    @field_validator("url")
    @classmethod
    def _url_has_canonical_form(cls, value: str | None) -> str | None:
        return None if value is None else _require_canonical_url(value)

    @model_validator(mode="after")
    def _ordered(self) -> UnpublishEvent:
        if self.version is None and self.updated_at is None:
            raise ValueError("either version or updated_at is required (it orders the article's revisions)")
        if self.updated_at is not None and self.updated_at.tzinfo is None:
            raise ValueError("updated_at must carry a time zone, e.g. 2026-11-25T08:00:00Z")
        return self

    @property
    def revision(self) -> int:
        return revision_of(self.version, self.updated_at)


def is_unpublish(document: object) -> bool:
    """Whether a payload item or queue message is an unpublish (`"action": "unpublish"`)."""
    return isinstance(document, Mapping) and document.get("action") == "unpublish"


def parse_queue_message(body: str) -> ArticleEvent | UnpublishEvent:
    """An ArticleQueue message body; ValidationError when it is neither shape."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if is_unpublish(document):
        return UnpublishEvent.model_validate(document)
    return ArticleEvent.model_validate_json(body)


class Prediction(BaseModel):
    label: str
    category_id: str
    name: str
    probability: float = Field(ge=0.0, le=1.0)


# Which path wrote a row: the live categorize function or the Batch API backfill (docs/backfill.md).
ResultSource = Literal["live", "batch"]


class PathNode(BaseModel):
    """One tier of a result's category path: the taxonomy's id (IAB's Unique ID for iab-3.1) and name."""

    id: str
    name: str


class CategorizationResult(BaseModel):
    """The row stored in ResultsTable (one per article: its latest revision)."""

    article_id: str
    revision: int
    content_hash: str
    model_id: str
    taxonomy_version: str
    category_id: str
    category_name: str
    # Tier 1 down to the category (Taxonomy.path); rows written before paths existed have none.
    path: list[PathNode] = Field(default_factory=list)
    label: str
    probability: float
    coverage: float
    needs_review: bool
    top_k: list[Prediction]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    truncated: bool
    url: str
    canonical_url: str  # the by-URL index's key (categorizer.urls)
    title: str
    site: str | None = None
    language: str | None = None
    source: ResultSource = "live"
    categorized_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ActiveModel(BaseModel):
    """The active-model record: which model categorises, bound to its taxonomy version."""

    model_id: str = Field(min_length=1)
    taxonomy_version: str = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    job_id: str | None = None
    dataset_manifest: str | None = None
    promoted_at: datetime | None = None


def validation_problems(error: ValidationError) -> list[dict[str, str]]:
    """Per-field problems (field path and reason) for responses and DLQ reasons; no input echoed."""
    return [
        {"field": ".".join(str(part) for part in problem["loc"]) or "(event)", "reason": problem["msg"]}
        for problem in error.errors(include_input=False, include_url=False)
    ]


def describe_validation_error(error: ValidationError) -> str:
    return "; ".join(f"{p['field']}: {p['reason']}" for p in validation_problems(error))
