"""DynamoDB stream records as Lambda delivers them (the shape of events/dynamodb-stream.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from categorizer.models import CategorizationResult

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/results/stream/2026-11-25T08:00:00.000"
_SERIALIZER = TypeSerializer()


def row(result: CategorizationResult) -> dict[str, Any]:
    """A result as ResultStore writes it."""
    item: dict[str, Any] = json.loads(result.model_dump_json(), parse_float=Decimal)
    return item


def _image(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in item.items()}


def stream_record(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, sequence: int, created: int = 1764057600
) -> dict[str, Any]:
    """One NEW_AND_OLD_IMAGES record: INSERT, MODIFY or REMOVE from which images are given."""
    key = (new or old or {})["article_id"]
    event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": {"article_id": {"S": key}},
        "SequenceNumber": f"{sequence:021d}",
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        dynamodb["OldImage"] = _image(old)
    if new is not None:
        dynamodb["NewImage"] = _image(new)
    return {
        "eventID": f"event-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN,
    }
