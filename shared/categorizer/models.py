"""pydantic models at the boundaries: the article event, predictions, stored results."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from categorizer.text import html_to_text, looks_like_html, normalize_text
from categorizer.urls import InvalidUrl, canonical_url

MAX_TITLE_CHARS = 1_000
# SQS messages are at most 256 KiB; the body limit leaves room for the rest of the event.
MAX_BODY_CHARS = 200_000
MAX_URL_CHARS = 2_048
MAX_ARTICLE_ID_CHARS = 256
MAX_SITE_CHARS = 256
# BCP 47 (RFC 5646 section 4.4.1): a tag of up to 35 characters must be supported; longer ones are refused.
MAX_LANGUAGE_CHARS = 35

# Segments separated by `/`, each starting with a letter or digit: no empty, `.` or `..` segment,
# so an id is safe as an S3 key or a path (the text store, erasure) and never trimmed or rewritten.
_ID_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._:@+=-]*"
_ARTICLE_ID = rf"^{_ID_SEGMENT}(?:/{_ID_SEGMENT})*$"
_LANGUAGE_TAG = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
# C0 (except tab, LF, CR), DEL and C1: none is text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# RFC 3339 date-time (section 5.6) with its time zone; a bare number or a date alone is refused.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Revisions are milliseconds since 1970 (0 … 2**53, like `version`): an earlier time has none.
_EARLIEST_UPDATE = datetime(1970, 1, 1, tzinfo=UTC)

ArticleId = Annotated[str, StringConstraints(pattern=_ARTICLE_ID, max_length=MAX_ARTICLE_ID_CHARS)]
_ARTICLE_ID_MATCH = re.compile(_ARTICLE_ID)


def is_article_id(value: object) -> TypeGuard[str]:
    """The event model's rule for an article id, for row reads made before a record is validated."""
    return isinstance(value, str) and len(value) <= MAX_ARTICLE_ID_CHARS and _ARTICLE_ID_MATCH.match(value) is not None


def _reject_control_characters(value: str) -> str:
    match = _CONTROL_CHARS.search(value)
    if match:
        raise ValueError(f"contains the control character U+{ord(match.group()):04X} at offset {match.start()}")
    return value


def _http_url(value: Any) -> Any:
    """An absolute http(s) URL with a canonical form: categorizer.urls holds the one set of URL rules
    (whitespace, control characters, credentials, host), and the row is found by that form."""
    if not isinstance(value, str):
        return value  # the strict str type refuses it
    try:
        canonical_url(value)
    except InvalidUrl as error:
        raise ValueError(str(error)) from None
    return value


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string (or, from Python, a datetime): no bare numbers, no dates alone."""
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2026-11-25T08:00:00Z")
        return datetime.fromisoformat(value.upper())  # RFC 3339 allows t and z
    if isinstance(value, datetime):
        return value
    raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-11-25T08:00:00Z")


def _orderable_update_time(value: datetime | None) -> datetime | None:
    """`updated_at` orders revisions in milliseconds since 1970: it needs its time zone and that range."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2026-11-25T08:00:00Z")
    if value < _EARLIEST_UPDATE:
        raise ValueError("must be 1970-01-01T00:00:00Z or later (revisions count milliseconds since then)")
    return value


HttpUrl = Annotated[str, BeforeValidator(_http_url)]
UpdatedAt = Annotated[datetime, BeforeValidator(_rfc3339)]


class ArticleEvent(BaseModel):
    """One article as published by the CMS: the SQS message body and the ingest payload item.

    The ordering key for "newer wins" (`revision`) is `version` when given, else
    `updated_at` in milliseconds; one of the two is required.
    """

    # Strict: a string where a number belongs ("version": "7"), true for 1, 7.0 for 7 are refused,
    # not coerced. Nothing is trimmed: an id or URL with surrounding spaces is refused, not
    # silently made equal to another one; title, body and site are normalised text anyway.
    model_config = ConfigDict(extra="ignore", strict=True)

    article_id: ArticleId
    url: HttpUrl = Field(min_length=1, max_length=MAX_URL_CHARS)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    body_format: Literal["text", "html", "auto"] = "auto"
    language: Annotated[str, StringConstraints(pattern=_LANGUAGE_TAG, max_length=MAX_LANGUAGE_CHARS)] | None = None
    version: int | None = Field(default=None, ge=0, le=2**53)
    updated_at: UpdatedAt | None = None
    site: str | None = Field(default=None, min_length=1, max_length=MAX_SITE_CHARS)

    _text: str = PrivateAttr(default="")

    @field_validator("title", "body", "site")
    @classmethod
    def _text_without_control_characters(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = _reject_control_characters(value).strip()
        if not text:
            raise ValueError("has no text")
        return text

    @field_validator("updated_at")
    @classmethod
    def _timezone_aware(cls, value: datetime | None) -> datetime | None:
        return _orderable_update_time(value)

    @model_validator(mode="after")
    def _derive_text(self) -> ArticleEvent:
        if self.version is None and self.updated_at is None:
            raise ValueError("either version or updated_at is required (it orders the article's revisions)")
        is_html = self.body_format == "html" or (self.body_format == "auto" and looks_like_html(self.body))
        self._text = html_to_text(self.body) if is_html else normalize_text(self.body)
        if not self._text:
            raise ValueError("body has no text once HTML markup, scripts and styles are removed")
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

    # The article event's rules (strict types, nothing trimmed, the same id, URL and time rules).
    model_config = ConfigDict(extra="ignore", strict=True)

    action: Literal["unpublish"]
    article_id: ArticleId
    version: int | None = Field(default=None, ge=0, le=2**53)
    updated_at: UpdatedAt | None = None
    # Optional: lets the by-URL lookup answer 410 for an article the table never had.
    url: HttpUrl | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARS)

    @field_validator("updated_at")
    @classmethod
    def _timezone_aware(cls, value: datetime | None) -> datetime | None:
        return _orderable_update_time(value)

    @model_validator(mode="after")
    def _ordered(self) -> UnpublishEvent:
        if self.version is None and self.updated_at is None:
            raise ValueError("either version or updated_at is required (it orders the article's revisions)")
        return self

    @property
    def revision(self) -> int:
        return revision_of(self.version, self.updated_at)


def is_unpublish(document: object) -> bool:
    """Whether a payload item or queue message is an unpublish (`"action": "unpublish"`)."""
    return isinstance(document, Mapping) and document.get("action") == "unpublish"


class _MessageShape(BaseModel):
    """What tells an ArticleQueue message's two shapes apart: only `action`."""

    action: object = None


def parse_queue_message(body: str) -> ArticleEvent | UnpublishEvent:
    """An ArticleQueue message body; ValidationError when it is neither shape.

    pydantic's own JSON parser both times (not json.loads): its nesting limit turns a deeply
    nested body into a ValidationError, where json.loads would raise RecursionError.
    """
    if is_unpublish(_MessageShape.model_validate_json(body).model_dump()):
        return UnpublishEvent.model_validate_json(body)
    return ArticleEvent.model_validate_json(body)


class Prediction(BaseModel):
    label: str
    category_id: str
    name: str
    probability: float = Field(ge=0.0, le=1.0)


# Which path wrote a row: the live categorize function or the Batch API backfill (docs/backfill.md).
ResultSource = Literal["live", "batch"]
# Why a row is in the review queue (docs/review.md): under the threshold, or the random share.
ReviewReason = Literal["low_confidence", "sample"]
REVIEW_PENDING = "pending"
# The review attributes exist on a row only while it is queued or once decided: the queue's index
# is sparse, and a GSI key attribute present as NULL would be refused by DynamoDB.
_REVIEW_ATTRIBUTES = ("review_queue", "review_queued_at", "review_reason")


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
    # The review queue (categorizer.review, docs/review.md): "pending" keys ReviewQueueIndex,
    # oldest `review_queued_at` (fixed-width ISO 8601 UTC, so text order is time order) first.
    review_queue: Literal["pending"] | None = None
    review_queued_at: str | None = None
    review_reason: ReviewReason | None = None

    @model_serializer(mode="wrap")
    def _without_absent_review(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _REVIEW_ATTRIBUTES:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class ShadowConfig(BaseModel):
    """A candidate model asked beside the active one for a share of live articles (categorizer.shadow).

    It decodes with the active record's taxonomy version: a candidate trained on another one is
    not comparable (docs/design.md invariant 2).
    """

    model_id: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)
    started_at: datetime


class ShadowAnswer(BaseModel):
    """The row's `shadow` attribute: the candidate's answer for the row's revision, and its cost."""

    model_id: str
    category_id: str
    probability: float = Field(ge=0.0, le=1.0)
    # The active answer it was compared with: a review correction later changes the row's category_id.
    active_model_id: str
    active_category_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    compared_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ActiveModel(BaseModel):
    """The active-model record: which model categorises, bound to its taxonomy version."""

    model_id: str = Field(min_length=1)
    taxonomy_version: str = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    job_id: str | None = None
    dataset_manifest: str | None = None
    promoted_at: datetime | None = None
    shadow: ShadowConfig | None = None


def validation_problems(error: ValidationError) -> list[dict[str, str]]:
    """Per-field problems (field path and reason) for responses and DLQ reasons; no input echoed."""
    return [
        {"field": ".".join(str(part) for part in problem["loc"]) or "(event)", "reason": problem["msg"]}
        for problem in error.errors(include_input=False, include_url=False)
    ]


def describe_validation_error(error: ValidationError) -> str:
    return "; ".join(f"{p['field']}: {p['reason']}" for p in validation_problems(error))
