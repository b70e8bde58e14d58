"""ResultsTable adapter: one row per article, its latest revision (docs/design.md invariants 5 and 6).

A row without `revision` is a claim, not a result: a categorize record that is about to call
OpenAI for an article the table has no result for (see `claim`). Readers skip such rows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from categorizer.models import CategorizationResult, ShadowAnswer
from categorizer.urls import canonical_url

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


# DynamoDB's item size limit (Developer Guide, "Service, account, and table quotas").
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024
# A number takes at most 21 bytes (Developer Guide, "Item sizes"); lists and maps 3 bytes plus
# 1 per element on top of their elements.
_NUMBER_BYTES = 21
_CONTAINER_BYTES = 3


def item_bytes(item: Mapping[str, Any]) -> int:
    """An upper bound of an item's size as DynamoDB counts it: names and values, strings in UTF-8."""
    return sum(len(name.encode("utf-8")) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return _NUMBER_BYTES
    if isinstance(value, Mapping):
        return _CONTAINER_BYTES + len(value) + item_bytes(value)
    if isinstance(value, list | tuple):
        return _CONTAINER_BYTES + sum(1 + _value_bytes(element) for element in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


def result_item(result: CategorizationResult) -> dict[str, Any]:
    """The row as written: the result's JSON with numbers as Decimal."""
    item: dict[str, Any] = json.loads(result.model_dump_json(), parse_float=Decimal)
    return item


@dataclass(frozen=True)
class Claim:
    """Someone is classifying this content with this model until `expires_at` (epoch seconds)."""

    content_hash: str
    model_id: str
    expires_at: float

    def covers(self, content_hash: str, model_id: str, now: float) -> bool:
        return self.content_hash == content_hash and self.model_id == model_id and self.expires_at > now


@dataclass(frozen=True)
class StoredState:
    """What the skip rules read of a row: the result's revision and fingerprint, and any live claim."""

    revision: int | None  # None: no result yet (a claim-only row)
    content_hash: str | None
    model_id: str | None
    claim: Claim | None = None
    removed: bool = False  # a tombstone: unpublished at `revision`

    def unchanged(self, content_hash: str, model_id: str) -> bool:
        return self.content_hash == content_hash and self.model_id == model_id


_STATE_ATTRIBUTES = (
    "article_id, revision, content_hash, model_id, claim_hash, claim_model, claim_expires_at, removed_at"
)
# A write at `:revision` may replace the row: none or a claim, an older revision, or a result
# (not a tombstone) at the same revision. A tombstone wins a tie (docs/design.md invariant 10).
_NOT_NEWER = (
    "(attribute_not_exists(revision) OR revision < :revision"
    " OR (revision = :revision AND attribute_not_exists(removed_at)))"
)
# A model's result also leaves a person's decision on the same revision alone (docs/review.md).
_NOT_NEWER_UNREVIEWED = (
    "(attribute_not_exists(revision) OR revision < :revision"
    " OR (revision = :revision AND attribute_not_exists(removed_at) AND attribute_not_exists(review.category_id)))"
)
# What a tombstone drops of a result: all but the key, the revision and the URL (410 by URL).
_RESULT_ONLY = sorted(
    (set(CategorizationResult.model_fields) - {"article_id", "revision", "url", "canonical_url"})
    | {"claim_hash", "claim_model", "claim_expires_at"}
    # Written beside the result by the shadow candidate and by reviewers (who they are included).
    | {"shadow", "shadow_model_id", "review", "corrected_by"}
)
# BatchGetItem reads at most 100 keys per call.
_BATCH_GET_KEYS = 100
_UNPROCESSED_RETRIES = 5
_DESERIALIZER = TypeDeserializer()


def _state(item: Mapping[str, Any]) -> StoredState:
    claim = None
    if "claim_expires_at" in item:
        claim = Claim(str(item["claim_hash"]), str(item["claim_model"]), float(str(item["claim_expires_at"])))
    revision = item.get("revision")
    return StoredState(
        int(str(revision)) if revision is not None else None,
        str(item["content_hash"]) if "content_hash" in item else None,
        str(item["model_id"]) if "model_id" in item else None,
        claim,
        removed="removed_at" in item,
    )


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ResultStore:
    def __init__(self, table_factory: Callable[[], Table]) -> None:
        # boto3 resources are not thread-safe and the records of a batch call the store from
        # worker threads (asyncio.to_thread): one Table per thread, created once.
        self._table_factory = table_factory
        self._local = threading.local()

    @property
    def _table(self) -> Table:
        table: Table | None = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = self._table_factory()
        return table

    def state(self, article_id: str) -> StoredState | None:
        response = self._table.get_item(
            Key={"article_id": article_id}, ProjectionExpression=_STATE_ATTRIBUTES, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else _state(item)

    def states(self, article_ids: Iterable[str]) -> dict[str, StoredState | None]:
        """The rows of many articles in BatchGetItem calls (consistent reads); None where there is none."""
        wanted = list(dict.fromkeys(article_ids))
        found: dict[str, StoredState | None] = dict.fromkeys(wanted)
        for item in batch_get_rows(self._table, wanted, projection=_STATE_ATTRIBUTES, consistent=True):
            found[str(item["article_id"])] = _state(item)
        return found

    def claim(
        self, article_id: str, revision: int, content_hash: str, model_id: str, ttl_seconds: float
    ) -> Claim | StoredState | None:
        """Claim the OpenAI call for this content and model, or the row that refused it (None: no row).

        Refused when the row holds a newer result, already holds this content and model (no call
        needed), or someone holds a live claim for this content and model (a call is under way).
        A claim for other content is overridden: both calls are needed, and the conditional write
        keeps the newer revision.
        """
        now = time.time()
        claim = Claim(content_hash, model_id, now + ttl_seconds)
        try:
            self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression="SET claim_hash = :hash, claim_model = :model, claim_expires_at = :expires",
                ConditionExpression=(
                    _NOT_NEWER + " AND NOT (content_hash = :hash AND model_id = :model)"
                    " AND (attribute_not_exists(claim_expires_at) OR claim_expires_at < :now"
                    " OR claim_hash <> :hash OR claim_model <> :model)"
                ),
                ExpressionAttributeValues={
                    ":revision": revision,
                    ":hash": content_hash,
                    ":model": model_id,
                    ":expires": Decimal(str(round(claim.expires_at, 3))),
                    ":now": Decimal(str(round(now, 3))),
                },
                # The refusing row comes back with the failure: no second read to learn why.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                item: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                return _state(_plain(item)) if item else None
            raise
        return Claim(content_hash, model_id, float(Decimal(str(round(claim.expires_at, 3)))))

    def release(self, article_id: str, claim: Claim) -> None:
        """Give a claim up (the call failed): others may claim at once instead of after expiry."""
        held: dict[str, str | Decimal] = {":hash": claim.content_hash, ":expires": Decimal(str(claim.expires_at))}
        try:
            # A claim-only row goes; a result row only loses the claim.
            self._table.delete_item(
                Key={"article_id": article_id},
                ConditionExpression=(
                    "attribute_not_exists(revision) AND claim_hash = :hash AND claim_expires_at = :expires"
                ),
                ExpressionAttributeValues=held,
            )
            return
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
        try:
            self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression="REMOVE claim_hash, claim_model, claim_expires_at",
                ConditionExpression="claim_hash = :hash AND claim_expires_at = :expires",
                ExpressionAttributeValues=held,
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def put_if_not_older(self, result: CategorizationResult) -> bool:
        """Write unless the table holds a newer revision, or a person's category for this one (a review
        decision, docs/review.md); False when the write was stale."""
        try:
            self._table.put_item(
                Item=result_item(result),
                # A claim-only row has no revision: the result replaces it, claim and all; a
                # tombstone at an older revision too (a newer publish brings the article back).
                ConditionExpression=_NOT_NEWER_UNREVIEWED,
                ExpressionAttributeValues={":revision": result.revision},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def unpublish(self, article_id: str, revision: int, url: str | None = None) -> bool:
        """Make the row a tombstone at `revision`; False when the row is newer or already that tombstone.

        An update, not a put: the URL stays, so the by-URL index answers 410 for it too.
        """
        values: dict[str, Any] = {":revision": revision, ":removed_at": datetime.now(UTC).isoformat()}
        # Names, not the attributes themselves: some (language, url) are DynamoDB reserved words.
        names = {f"#{name}": name for name in _RESULT_ONLY}
        updates = "SET revision = :revision, removed_at = :removed_at"
        if url is not None:  # an unknown article: the tombstone keeps the URL the CMS gave
            names |= {"#url": "url", "#canonical_url": "canonical_url"}
            values |= {":url": url, ":canonical": canonical_url(url)}
            updates += ", #url = if_not_exists(#url, :url), #canonical_url = if_not_exists(#canonical_url, :canonical)"
        try:
            self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression=f"{updates} REMOVE {', '.join(f'#{name}' for name in _RESULT_ONLY)}",
                ConditionExpression=_NOT_NEWER,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def advance_revision(self, article_id: str, revision: int, content_hash: str, model_id: str) -> bool:
        """Record that a newer revision has the same content and model, without a new call."""
        try:
            self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression="SET revision = :revision",
                ConditionExpression="revision < :revision AND content_hash = :hash AND model_id = :model",
                ExpressionAttributeValues={":revision": revision, ":hash": content_hash, ":model": model_id},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def put_shadow(self, article_id: str, revision: int, content_hash: str, shadow: ShadowAnswer) -> bool:
        """Attach a shadow answer to the row it was asked for; False when the row has moved on.

        Only while the row still holds that revision, content and active model: a newer revision's
        row is never touched (docs/design.md invariant 5). `shadow_model_id` keys the sparse
        ShadowIndex that the shadow report and Promote's sample count query.
        """
        try:
            self._table.update_item(
                Key={"article_id": article_id},
                UpdateExpression="SET shadow = :shadow, shadow_model_id = :candidate",
                ConditionExpression="revision = :revision AND content_hash = :hash AND model_id = :active",
                ExpressionAttributeValues={
                    ":shadow": json.loads(shadow.model_dump_json(), parse_float=Decimal),
                    ":candidate": shadow.model_id,
                    ":revision": revision,
                    ":hash": content_hash,
                    ":active": shadow.active_model_id,
                },
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True


def batch_get_rows(
    table: Table, article_ids: Sequence[str], *, projection: str | None = None, consistent: bool = False
) -> list[dict[str, Any]]:
    """The rows of these articles (any order; absent ones left out), 100 keys per BatchGetItem call.

    DynamoDB may return some keys unprocessed under load: they are asked for again with backoff.
    """
    rows: list[dict[str, Any]] = []
    # The table's client is the resource's: it (de)serialises attribute values itself.
    client = table.meta.client
    for start in range(0, len(article_ids), _BATCH_GET_KEYS):
        keys: dict[str, Any] = {
            "Keys": [{"article_id": article_id} for article_id in article_ids[start : start + _BATCH_GET_KEYS]],
            "ConsistentRead": consistent,
        }
        if projection:
            keys["ProjectionExpression"] = projection
        request: Mapping[str, Any] = {table.name: keys}
        for attempt in range(_UNPROCESSED_RETRIES + 1):
            response = client.batch_get_item(RequestItems=request)
            rows.extend(response.get("Responses", {}).get(table.name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        if request:
            raise RuntimeError(f"BatchGetItem left {len(request[table.name]['Keys'])} keys unprocessed")
    return rows


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item of a ConditionalCheckFailed error as the resource API returns items.

    boto3's resource layer deserialises successful responses only; the item an error carries
    (ReturnValuesOnConditionCheckFailure) keeps DynamoDB's typed form.
    """
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}
