"""`python -m tools erase ARTICLE_ID…`: remove articles from every store the system wrote them to.

docs/design.md invariant 10 and docs/data-lifecycle.md. In order, for the given ids:

1. what identifies the articles' text in training and batch files (the start of the prompt the
   model read: title, blank line, the body's first characters), from their label lines and
   stored texts, read before those go;
2. label lines under `labels/` (reviewed ones included), fine-tuning datasets under `runs/` and
   the golden set under `golden/` (PipelineBucket): the files are rewritten without them, and the
   files' earlier versions (the bucket is versioned) deleted; a golden set that held them is
   published again as a new version without them first, so its manifest's hash stays true;
3. stored texts (`texts/…` in TextBucket);
4. the result row (its stream record makes ChangeEventsFunction send `ArticleRemoved`,
   removal "erased", so subscribers erase their copies);
5. OpenAI files holding the articles (fine-tuning and Batch API files): listed, and deleted
   with `--delete-openai-files` (files.delete).

It ends with what it could not remove and when that goes by itself. Resources come from the
stack's outputs (tools/stack.py); OpenAI from OPENAI_API_KEY / OPENAI_BASE_URL.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import openai
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from categorizer.finetune import golden
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.models import LabelledArticle
from categorizer.finetune.storage import RunStore
from categorizer.models import is_article_id
from categorizer.text import normalize_text
from categorizer.textstore import TextStore
from tools.stack import StackOutputs, add_stack_argument

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Emit = Callable[[str], None]
LABELS_PREFIX = "labels/"
RUNS_PREFIX = "runs/"
GOLDEN_PREFIX = "golden/"
# Enough of the body to tell articles apart, short enough to survive the input token budget's cut.
_MARKER_BODY_CHARS = 80
# How long what cannot be deleted here stays (template.yaml; docs/data-lifecycle.md).
PITR_DAYS = 35
ARTICLE_DLQ_RETENTION_DAYS = 14


def prompt_marker(title: str, text: str) -> str:
    """The start of the user message `categorizer.prompt` builds for this article."""
    body = text[:_MARKER_BODY_CHARS]
    title = normalize_text(title)
    return f"{title}\n\n{body}" if body else title


@dataclass
class ErasureReport:
    rows_deleted: list[str] = field(default_factory=list)
    texts_deleted: int = 0
    lines_removed: dict[str, int] = field(default_factory=dict)  # s3 URI → lines
    versions_deleted: int = 0
    golden: str | None = None  # what happened to the golden set, when it held the articles
    openai_files: list[dict[str, Any]] = field(default_factory=list)  # id, filename, purpose, deleted
    remains: list[str] = field(default_factory=list)


def _user_messages(line: dict[str, Any]) -> Iterator[str]:
    """The user messages of a fine-tuning example or a Batch API request line."""
    body = line.get("body")
    messages = line.get("messages") or (body.get("messages") if isinstance(body, dict) else None) or []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            yield message["content"]


def line_holds(line: dict[str, Any], ids: set[str], markers: set[str]) -> bool:
    """Whether a JSONL line (label, example, batch request or output) belongs to one of the articles."""
    if line.get("article_id") in ids:
        return True
    custom = line.get("custom_id")
    if isinstance(custom, str) and custom.rpartition("@")[0] in ids:  # backfill's "<article_id>@<revision>"
        return True
    return any(content.startswith(marker) for content in _user_messages(line) for marker in markers)


def _parsed(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    for text in lines:
        try:
            document = json.loads(text) if text.strip() else None
        except ValueError:
            document = None
        yield text, document if isinstance(document, dict) else None


class Eraser:
    def __init__(
        self,
        *,
        table: Any,
        s3: S3Client,
        pipeline_bucket: str,
        texts: TextStore | None,
        openai_client: openai.OpenAI | None,
        emit: Emit = print,
    ) -> None:
        self._table = table
        self._s3 = s3
        self._bucket = pipeline_bucket
        self._texts = texts
        self._openai = openai_client
        self._emit = emit

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                if entry["Key"].endswith(".jsonl"):
                    yield entry["Key"]

    def _lines(self, key: str) -> list[str]:
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read().decode("utf-8")
        return body.splitlines()

    def markers(self, ids: set[str]) -> set[str]:
        found: set[str] = set()
        for key in self._keys(LABELS_PREFIX):
            for _, document in _parsed(self._lines(key)):
                if document is not None and document.get("article_id") in ids:
                    try:
                        article = LabelledArticle.model_validate(document)
                    except ValidationError:
                        continue
                    found.add(prompt_marker(article.title, article.text))
        if self._texts is not None:
            for article_id, revision in self._texts.latest_revisions():
                if article_id in ids:
                    text = self._texts.get(article_id, revision)
                    found.add(prompt_marker(text.title, text.body))
        return found

    def _rewrite(self, key: str, ids: set[str], markers: set[str], report: ErasureReport) -> None:
        lines = self._lines(key)
        kept = [text for text, document in _parsed(lines) if document is None or not line_holds(document, ids, markers)]
        if len(kept) == len(lines):
            return
        written = self._s3.put_object(
            Bucket=self._bucket, Key=key, Body="".join(f"{line}\n" for line in kept).encode("utf-8")
        )
        report.lines_removed[f"s3://{self._bucket}/{key}"] = len(lines) - len(kept)
        self._delete_earlier_versions(key, written.get("VersionId"), report)

    def _golden(self, ids: set[str], report: ErasureReport) -> None:
        """The current golden set without the articles, as a new version (before its files are rewritten)."""
        store = RunStore(self._s3, self._bucket)
        manifest = golden.current_manifest(store, GOLDEN_PREFIX)
        if manifest is None:
            return
        articles = golden.load_articles(store, manifest.ref())
        remaining = [a for a in articles if a.article_id not in ids]
        if len(remaining) == len(articles):
            return
        try:
            published = golden.publish(store, GOLDEN_PREFIX, remaining, "erasure", replace=True)
        except DatasetInvalid:  # nothing would remain: no golden set, as before the first build
            self._s3.delete_object(Bucket=self._bucket, Key=f"{GOLDEN_PREFIX}{golden.MANIFEST_NAME}")
            self._delete_earlier_versions(f"{GOLDEN_PREFIX}{golden.MANIFEST_NAME}", None, report)
            report.golden = f"golden v{manifest.version} held only these articles: the golden set is gone"
            return
        report.golden = f"golden v{manifest.version} → v{published.version} without them, {published.count} left"

    def _delete_earlier_versions(self, key: str, current: str | None, report: ErasureReport) -> None:
        try:
            versions = self._s3.list_object_versions(Bucket=self._bucket, Prefix=key)
            old = [
                {"Key": key, "VersionId": v["VersionId"]}
                for v in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]
                if v["Key"] == key and v.get("VersionId") not in (current, "null", None)
            ]
            if old:
                self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": old, "Quiet": True})  # type: ignore[typeddict-item]
                report.versions_deleted += len(old)
        except (ClientError, BotoCoreError) as error:
            report.remains.append(
                f"earlier versions of s3://{self._bucket}/{key} ({type(error).__name__}): the bucket's lifecycle "
                "deletes noncurrent versions 90 days after this rewrite"
            )

    def _openai_files(self, ids: set[str], markers: set[str], delete: bool, report: ErasureReport) -> None:
        if self._openai is None:
            report.remains.append(
                "OpenAI files were not checked (no OPENAI_API_KEY): training and batch files the pipeline or "
                "the backfill uploaded may hold the articles; rerun with the key"
            )
            return
        for uploaded in self._openai.files.list():
            content = self._openai.files.content(uploaded.id).text
            if not any(d is not None and line_holds(d, ids, markers) for _, d in _parsed(content.splitlines())):
                continue
            entry: dict[str, Any] = {
                "id": uploaded.id,
                "filename": uploaded.filename,
                "purpose": uploaded.purpose,
                "deleted": False,
            }
            if delete:
                entry["deleted"] = bool(self._openai.files.delete(uploaded.id).deleted)
            report.openai_files.append(entry)
        kept = [f["id"] for f in report.openai_files if not f["deleted"]]
        if kept:
            report.remains.append(
                f"OpenAI files holding the articles, not deleted: {', '.join(kept)} (until deleted: rerun with "
                "--delete-openai-files; OpenAI's own retention then applies)"
            )
        if any(f["purpose"] == "fine-tune" for f in report.openai_files):
            report.remains.append(
                "fine-tuned models trained on those files keep what they learned from the articles: fine-tune "
                "again without them (their label lines are gone) and delete the old models"
            )

    def erase(self, article_ids: list[str], *, delete_openai_files: bool) -> ErasureReport:
        ids = set(article_ids)
        report = ErasureReport()
        markers = self.markers(ids)
        self._golden(ids, report)
        for prefix in (LABELS_PREFIX, RUNS_PREFIX, GOLDEN_PREFIX):
            for key in self._keys(prefix):
                self._rewrite(key, ids, markers, report)
        if self._texts is not None:
            report.texts_deleted = sum(self._texts.erase(article_id) for article_id in sorted(ids))
        for article_id in sorted(ids):
            deleted = self._table.delete_item(Key={"article_id": article_id}, ReturnValues="ALL_OLD")
            if "Attributes" in deleted:
                report.rows_deleted.append(article_id)
        self._openai_files(ids, markers, delete_openai_files, report)
        report.remains += [
            f"ResultsTable point-in-time recovery: a restore to a moment before now brings the rows back, for "
            f"{PITR_DAYS} days (the recovery window)",
            f"ArticleDLQ messages about the articles, if any: until read and deleted (`tools dlq`), at most "
            f"{ARTICLE_DLQ_RETENTION_DAYS} days",
            "function logs name the article ids (never their text) for LogRetentionDays",
            'subscribers\' copies: ArticleRemoved (removal "erased") tells them; each erases its own',
        ]
        return report


def print_report(report: ErasureReport, emit: Emit) -> None:
    emit(f"result rows deleted: {len(report.rows_deleted)} ({', '.join(report.rows_deleted) or 'none'})")
    emit(f"stored texts deleted: {report.texts_deleted}")
    for uri, count in sorted(report.lines_removed.items()):
        emit(f"removed {count} line(s) from {uri}")
    emit(f"earlier object versions deleted: {report.versions_deleted}")
    if report.golden is not None:
        emit(report.golden)
    for file in report.openai_files:
        state = "deleted" if file["deleted"] else "NOT deleted"
        emit(f"OpenAI file {file['id']} ({file['purpose']}, {file['filename']}) holds them: {state}")
    emit("could not be removed here, and when it goes by itself:")
    for line in report.remains:
        emit(f"  - {line}")


def main(argv: list[str] | None = None, emit: Emit = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools erase", description=__doc__.splitlines()[0])
    parser.add_argument("article_ids", nargs="+", metavar="ARTICLE_ID")
    parser.add_argument("--delete-openai-files", action="store_true", help="delete the OpenAI files that hold them")
    parser.add_argument("--table", default=os.environ.get("RESULTS_TABLE_NAME"))
    parser.add_argument("--pipeline-bucket", default=os.environ.get("PIPELINE_BUCKET"))
    parser.add_argument("--text-bucket", default=os.environ.get("TEXT_BUCKET"))
    add_stack_argument(parser)
    args = parser.parse_args(argv)
    invalid = [value for value in args.article_ids if not is_article_id(value)]
    if invalid:
        parser.error(f"not article ids: {', '.join(invalid)}")
    outputs = StackOutputs(args.stack_name)
    s3: S3Client = boto3.client("s3")
    text_bucket = args.text_bucket or outputs.get("TextBucketName")
    eraser = Eraser(
        table=boto3.resource("dynamodb").Table(args.table or outputs.get("ResultsTableName")),
        s3=s3,
        pipeline_bucket=args.pipeline_bucket or outputs.get("PipelineBucketName"),
        texts=TextStore(lambda: s3, text_bucket),
        openai_client=openai.OpenAI() if os.environ.get("OPENAI_API_KEY") else None,
        emit=emit,
    )
    print_report(eraser.erase(args.article_ids, delete_openai_files=args.delete_openai_files), emit)
    return 0
