"""The text store: exactly what the model read, per article revision, in S3.

One object per (article, revision), `texts/<encoded article id>/<revision>.json`, holding the
normalised title and the budget-cut body that `build_prompt` used (categorizer.prompt.ModelInput),
the prompt's fingerprint and the event's descriptive fields. The backfill rebuilds the same prompt
from it (docs/backfill.md); erasing an article deletes its folder (docs/design.md invariant 10).

Article ids may hold "/", "@", "+", "=" and more: the key segment is the id's unpadded base64url
form, which is reversible (a listing names the articles) and keeps one folder per article whatever
the id alphabet becomes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from categorizer.prompt import ModelInput

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

TEXTS_PREFIX = "texts/"


class StoredText(BaseModel):
    """One revision's text as the model read it, and what a result row needs besides the answer."""

    article_id: str
    revision: int
    content_hash: str
    title: str
    body: str
    truncated: bool
    input_token_budget: int
    url: str
    site: str | None = None
    language: str | None = None
    stored_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def model_input(self) -> ModelInput:
        return ModelInput(self.title, self.body, self.truncated)


def encode_article_id(article_id: str) -> str:
    return base64.urlsafe_b64encode(article_id.encode("utf-8")).decode("ascii").rstrip("=")


def decode_article_id(segment: str) -> str:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")


def article_prefix(article_id: str) -> str:
    return f"{TEXTS_PREFIX}{encode_article_id(article_id)}/"


def text_key(article_id: str, revision: int) -> str:
    return f"{article_prefix(article_id)}{revision}.json"


class TextStore:
    def __init__(self, s3: Callable[[], S3Client], bucket: str) -> None:
        # A factory: the categorize function calls it from worker threads, and boto3 clients are
        # thread-safe, so one client serves them all once created.
        self._s3 = s3
        self.bucket = bucket

    def put(self, text: StoredText) -> None:
        body = text.model_dump_json().encode("utf-8")
        self._s3().put_object(
            Bucket=self.bucket,
            Key=text_key(text.article_id, text.revision),
            Body=body,
            ContentType="application/json",
        )

    def get(self, article_id: str, revision: int) -> StoredText:
        body = self._s3().get_object(Bucket=self.bucket, Key=text_key(article_id, revision))["Body"].read()
        return StoredText.model_validate_json(body)

    def latest_revisions(self) -> Iterator[tuple[str, int]]:
        """(article id, newest stored revision) for every article in the store, from one listing."""
        paginator = self._s3().get_paginator("list_objects_v2")
        current: str | None = None
        newest = -1
        for page in paginator.paginate(Bucket=self.bucket, Prefix=TEXTS_PREFIX):
            for entry in page.get("Contents", []):
                segment, _, name = entry["Key"][len(TEXTS_PREFIX) :].partition("/")
                if not name.endswith(".json") or not name[:-5].isdigit():
                    continue
                if segment != current:
                    if current is not None:
                        yield decode_article_id(current), newest
                    current, newest = segment, -1
                newest = max(newest, int(name[:-5]))
        if current is not None:
            yield decode_article_id(current), newest

    def erase(self, article_id: str) -> int:
        """Delete every stored revision of an article; the number of objects deleted."""
        s3 = self._s3()
        deleted = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=article_prefix(article_id)):
            keys: list[ObjectIdentifierTypeDef] = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted
