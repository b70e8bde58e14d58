"""ResultsTable adapter: one row per article, its latest revision (docs/design.md invariants 5 and 6)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from categorizer.models import CategorizationResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


@dataclass(frozen=True)
class StoredState:
    revision: int
    content_hash: str
    model_id: str


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
            Key={"article_id": article_id},
            ProjectionExpression="revision, content_hash, model_id",
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return StoredState(int(str(item["revision"])), str(item["content_hash"]), str(item["model_id"]))

    def put_if_not_older(self, result: CategorizationResult) -> bool:
        """Write unless the table holds a newer revision; False when the write was stale."""
        item: dict[str, Any] = json.loads(result.model_dump_json(), parse_float=Decimal)
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(article_id) OR revision <= :revision",
                ExpressionAttributeValues={":revision": result.revision},
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
