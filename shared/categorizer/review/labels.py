"""A decision as a label line: `labels/reviewed/<date>/<base64url id>-r<revision>.jsonl` (docs/review.md).

One object per article revision holding one LabelledArticle line (the stored text the model read
and the person's category) plus the review, so the next fine-tune's export reads it like any other
labels file. The date is the decision's, so a repeated write of one decision lands on the same key
and overwrites instead of adding a second line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from categorizer.review.models import ReviewedLabel
from categorizer.textstore import encode_article_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REVIEWED_PREFIX = "labels/reviewed/"


def label_key(label: ReviewedLabel) -> str:
    assert label.version is not None  # a reviewed row always has its revision
    day = label.review.at.date().isoformat()
    return f"{REVIEWED_PREFIX}{day}/{encode_article_id(label.article_id)}-r{label.version}.jsonl"


class ReviewLabels:
    def __init__(self, s3: Callable[[], S3Client], bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, label: ReviewedLabel) -> str:
        key = label_key(label)
        body = (label.model_dump_json() + "\n").encode("utf-8")
        self._s3().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return key

    def lines(self) -> Iterator[str]:
        """Every reviewed label line, in key order (date, then article)."""
        s3 = self._s3()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=REVIEWED_PREFIX):
            for entry in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read().decode("utf-8")
                yield from (line for line in body.splitlines() if line.strip())
