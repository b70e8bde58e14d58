"""The review queue in ResultsTable: the sparse ReviewQueueIndex, and decisions as conditional updates.

A row is in the queue while it carries `review_queue = "pending"` (set by the write path,
categorizer.service.build_result); only such rows appear in the index, oldest `review_queued_at`
first. A decision removes that attribute, so the row leaves the index, and records `review`
{decision, by, at[, category_id]}. The update is conditional on the row still being pending at the
revision the decision was made for: a newer revision, or another person's decision in between,
fails it (docs/design.md invariant 5: the person's answer never lands on a revision they did not see).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from categorizer.models import REVIEW_PENDING
from categorizer.review.models import Decision, ReviewRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

REVIEW_QUEUE_INDEX = "ReviewQueueIndex"
_CURSOR_KEYS = ("article_id", "review_queue", "review_queued_at")


class InvalidCursor(ValueError):
    """A `cursor` that is not one this API handed out."""


class DecisionConflict(RuntimeError):
    """The row is no longer pending at that revision."""


@dataclass(frozen=True)
class Correction:
    category_id: str
    category_name: str
    label: str


def encode_cursor(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: str(key[k]) for k in _CURSOR_KEYS}).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as error:
        raise InvalidCursor("cursor is not one this API returned") from error
    if not isinstance(key, dict) or set(key) != set(_CURSOR_KEYS) or not all(isinstance(v, str) for v in key.values()):
        raise InvalidCursor("cursor is not one this API returned")
    return key


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ReviewStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def pending(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` queued rows, oldest first, and the cursor of the next page (None: no more)."""
        request: dict[str, Any] = {
            "IndexName": REVIEW_QUEUE_INDEX,
            "KeyConditionExpression": "review_queue = :pending",
            "ExpressionAttributeValues": {":pending": REVIEW_PENDING},
            "ScanIndexForward": True,
            "Limit": limit,
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = decode_cursor(cursor)
        response = self._table.query(**request)
        last = response.get("LastEvaluatedKey")
        return list(response.get("Items", [])), encode_cursor(last) if last else None

    def row(self, article_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"article_id": article_id}, ConsistentRead=True).get("Item")
        # A row without a revision is a categorize claim, not a result (categorizer.store).
        return item if item is not None and "revision" in item else None

    def decide(
        self, article_id: str, revision: int, record: ReviewRecord, correction: Correction | None
    ) -> dict[str, Any]:
        """Record the decision on the pending row of that revision; the row as it is now."""
        review: dict[str, Any] = {"decision": record.decision, "by": record.by, "at": record.at.isoformat()}
        names = {"#review": "review"}
        values: dict[str, Any] = {":revision": revision, ":pending": REVIEW_PENDING}
        sets = ["#review = :review"]
        if record.category_id is not None:
            review["category_id"] = record.category_id
            # A person's category is no longer a low-confidence guess.
            sets.append("needs_review = :reviewed")
            values[":reviewed"] = False
        if correction is not None:
            # The revision stays: the article did not change, its category did (issue 10's stream
            # turns the category change into a change event; docs/design.md invariant 9).
            sets += ["category_id = :category", "category_name = :name", "label = :label", "corrected_by = :by"]
            values |= {
                ":category": correction.category_id,
                ":name": correction.category_name,
                ":label": correction.label,
                ":by": record.by,
            }
        values[":review"] = review
        try:
            response = self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression=f"SET {', '.join(sets)} REMOVE review_queue",
                ConditionExpression="revision = :revision AND review_queue = :pending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise DecisionConflict(f"{article_id} is no longer pending review at revision {revision}") from None
            raise
        return dict(response["Attributes"])


def recorded_review(row: Mapping[str, Any]) -> ReviewRecord | None:
    review = row.get("review")
    return ReviewRecord.model_validate(review) if isinstance(review, Mapping) else None


def as_int(value: Any) -> int:
    return int(value) if isinstance(value, Decimal | int) else int(str(value))


def decision_matches(record: ReviewRecord, decision: Decision, category_id: str | None) -> bool:
    return record.decision == decision and record.category_id == category_id
