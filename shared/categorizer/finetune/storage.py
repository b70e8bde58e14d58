"""The pipeline bucket: labelled JSONL under a prefix, and one folder per run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from categorizer.finetune.dataset import SourceLine

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef


class RunStore:
    def __init__(self, s3: S3Client, bucket: str, runs_prefix: str = "runs/") -> None:
        self._s3 = s3
        self.bucket = bucket
        self._runs_prefix = runs_prefix

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def run_key(self, run_id: str, name: str) -> str:
        return f"{self._runs_prefix}{run_id}/{name}"

    def label_keys(self, prefix: str, suffix: str = ".jsonl") -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)]
        return sorted(keys)

    def lines(self, keys: list[str]) -> Iterator[SourceLine]:
        """Every line of the files, streamed (a labels file is never held whole in memory)."""
        for key in keys:
            body = self.open(key)["Body"]
            for number, raw in enumerate(body.iter_lines(), start=1):
                yield SourceLine(f"{key}:{number}", raw.decode("utf-8"))

    def open(self, key: str) -> GetObjectOutputTypeDef:
        return self._s3.get_object(Bucket=self.bucket, Key=key)

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return self.uri(key)

    def put_json(self, key: str, document: Any) -> str:
        body = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        return self.put_bytes(key, body, "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.open(key)["Body"].read())

    def key_of(self, uri: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not in bucket {self.bucket}")
        return uri[len(prefix) :]
