"""Change events: a ResultsTable stream record → at most one event (docs/design.md invariant 9).

ChangeEventsFunction reads the table's stream (NEW_AND_OLD_IMAGES) and publishes what a row
change means to consumers on the results bus:

| before → after                              | event                    |
| ------------------------------------------- | ------------------------ |
| none, claim-only or tombstone → result      | `ArticleCategorized`     |
| result → result with another category       | `ArticleCategoryChanged` |
| result → tombstone (unpublish)              | `ArticleRemoved` (`unpublished`) |
| result → row deleted (`tools erase`)        | `ArticleRemoved` (`erased`) |
| anything else                               | none                     |

"Anything else" are the no-ops: a claim written or released, a newer revision with the same
content only advancing `revision`, a re-categorisation that kept the category, a tombstone
replaced by a newer one, an erased tombstone. A stale write is refused by the conditional
write and never reaches the stream. The stream is the source (not a second call after the
write) so an event goes out even if EventBridge fails at the moment of the write; delivery
is at least once, and `revision` in the detail lets consumers drop duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "article-categorizer.results"
SCHEMA_VERSION: Literal["1"] = "1"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://article-categorizer.example/schemas/result-change-v1.json"
DetailType = Literal["ArticleCategorized", "ArticleCategoryChanged", "ArticleRemoved"]


class EventCategory(BaseModel):
    id: str
    name: str


class ChangeDetail(BaseModel):
    """The `detail` of every results event, version 1 (events/schemas/result-change-v1.json)."""

    model_config = ConfigDict(extra="forbid", title="ResultChangeDetailV1")

    schema_version: Literal["1"] = SCHEMA_VERSION
    article_id: str
    revision: int = Field(description="the row's revision: drop an event whose revision you have seen newer")
    url: str | None = None
    canonical_url: str | None = None
    category: EventCategory | None = Field(description="the category now; null once removed")
    path: list[EventCategory] = Field(
        default_factory=list, description="tier 1 down to the category now; empty once removed"
    )
    previous_category: EventCategory | None = Field(description="the category before; null when there was none")
    probability: float | None = Field(default=None, ge=0, le=1)
    coverage: float | None = Field(default=None, ge=0, le=1)
    needs_review: bool | None = None
    model_id: str | None = None
    taxonomy_version: str | None = None
    categorized_at: datetime | None = None
    removed_at: datetime | None = None
    removal: Literal["unpublished", "erased"] | None = Field(default=None, description="ArticleRemoved only")


class ChangeEvent(BaseModel):
    detail_type: DetailType
    detail: ChangeDetail


def _is_result(image: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    return image is not None and image.get("revision") is not None and "removed_at" not in image


def _is_tombstone(image: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    return image is not None and image.get("revision") is not None and "removed_at" in image


def _category(image: Mapping[str, Any]) -> EventCategory:
    return EventCategory(id=str(image["category_id"]), name=str(image["category_name"]))


def _same_category(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return (old["category_id"], old["taxonomy_version"]) == (new["category_id"], new["taxonomy_version"])


def _result_detail(new: Mapping[str, Any], previous: EventCategory | None) -> ChangeDetail:
    return ChangeDetail(
        article_id=str(new["article_id"]),
        revision=int(new["revision"]),
        url=str(new["url"]),
        canonical_url=str(new["canonical_url"]) if "canonical_url" in new else None,
        category=_category(new),
        path=[EventCategory(id=str(tier["id"]), name=str(tier["name"])) for tier in new.get("path", [])],
        previous_category=previous,
        probability=float(new["probability"]),
        coverage=float(new["coverage"]),
        needs_review=bool(new["needs_review"]),
        model_id=str(new["model_id"]),
        taxonomy_version=str(new["taxonomy_version"]),
        categorized_at=datetime.fromisoformat(str(new["categorized_at"])),
    )


def change_event(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, changed_at: datetime
) -> ChangeEvent | None:
    """The event a row change means (the module docstring's table); None for a no-op."""
    if _is_result(new):
        if not _is_result(old):
            return ChangeEvent(detail_type="ArticleCategorized", detail=_result_detail(new, None))
        if _same_category(old, new):
            return None
        return ChangeEvent(detail_type="ArticleCategoryChanged", detail=_result_detail(new, _category(old)))
    if not _is_result(old):
        return None  # claims, tombstones and their removal: nothing a consumer saw changes
    if new is None:
        removal: Literal["unpublished", "erased"] = "erased"
        revision, removed_at = int(old["revision"]), changed_at
    elif _is_tombstone(new):
        removal = "unpublished"
        revision, removed_at = int(new["revision"]), datetime.fromisoformat(str(new["removed_at"]))
    else:
        return None
    detail = ChangeDetail(
        article_id=str(old["article_id"]),
        revision=revision,
        url=str(old["url"]),
        canonical_url=str(old["canonical_url"]) if "canonical_url" in old else None,
        category=None,
        previous_category=_category(old),
        removed_at=removed_at,
        removal=removal,
    )
    return ChangeEvent(detail_type="ArticleRemoved", detail=detail)


def put_events_entry(event: ChangeEvent, bus_name: str, changed_at: datetime) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry for an event on the results bus."""
    return {
        "Source": SOURCE,
        "DetailType": event.detail_type,
        "Detail": event.detail.model_dump_json(),
        "EventBusName": bus_name,
        "Time": changed_at,
    }


def detail_schema() -> dict[str, Any]:
    """The detail's JSON Schema, as committed in events/schemas/result-change-v1.json."""
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, **ChangeDetail.model_json_schema()}


if __name__ == "__main__":  # python -m categorizer.change_events > events/schemas/result-change-v1.json
    import json

    print(json.dumps(detail_schema(), indent=2, ensure_ascii=False))
