"""`python -m tools erase` (docs/design.md invariant 10): every store the system wrote the article to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx2
import openai
import pytest
from moto import mock_aws

from categorizer.finetune import golden
from categorizer.finetune.models import LabelledArticle
from categorizer.finetune.storage import RunStore
from categorizer.prompt import build_prompt, build_training_example
from categorizer.store import ResultStore
from categorizer.textstore import StoredText, TextStore
from tests.support.read import result
from tests.support.results_table import create_results_table
from tools.erase import Eraser, print_report

GONE = {"article_id": "gone-1", "title": "Erase me", "body": "A body about a private matter. " * 5, "category_id": "c"}
KEPT = {"article_id": "kept-1", "title": "Keep me", "body": "A body about chips and laptops. " * 5, "category_id": "c"}


def _example(article: dict[str, Any]) -> dict[str, Any]:
    return build_training_example(build_prompt(article["title"], article["body"], 1024), "0")


class FakeFiles:
    """The OpenAI files endpoints over HTTP: list, content, delete."""

    def __init__(self, files: dict[str, tuple[str, str]]) -> None:
        self.files = files  # id → (purpose, content)
        self.deleted: list[str] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1")
        if path == "/files" and request.method == "GET":
            data = [
                {
                    "id": i,
                    "object": "file",
                    "bytes": len(c),
                    "created_at": 0,
                    "filename": f"{i}.jsonl",
                    "purpose": p,
                    "status": "processed",
                }
                for i, (p, c) in self.files.items()
            ]
            return httpx2.Response(200, json={"object": "list", "data": data, "has_more": False})
        file_id = path.split("/")[2]
        if path.endswith("/content"):
            return httpx2.Response(200, text=self.files[file_id][1])
        self.deleted.append(file_id)
        return httpx2.Response(200, json={"id": file_id, "object": "file", "deleted": True})


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="pipeline")
        s3.put_bucket_versioning(Bucket="pipeline", VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket="texts")
        lines = "".join(json.dumps(a) + "\n" for a in (GONE, KEPT))
        s3.put_object(Bucket="pipeline", Key="labels/editors.jsonl", Body=lines.encode())
        train = "".join(json.dumps(_example(a)) + "\n" for a in (GONE, KEPT))
        s3.put_object(Bucket="pipeline", Key="runs/run-1/train.jsonl", Body=train.encode())
        texts = TextStore(lambda: s3, "texts")
        for revision in (1, 2):
            texts.put(
                StoredText(
                    article_id="gone-1",
                    revision=revision,
                    content_hash="h",
                    title="Erase me",
                    body=GONE["body"].strip(),
                    truncated=False,
                    input_token_budget=1024,
                    url="https://x.example/g",
                )
            )
        table = create_results_table()
        ResultStore(lambda: table).put_if_not_older(result("gone-1"))
        ResultStore(lambda: table).put_if_not_older(result("kept-1"))
        batch_line = {"custom_id": "gone-1@2", "method": "POST", "url": "/v1/chat/completions", "body": {}}
        fake = FakeFiles(
            {
                "file-train": ("fine-tune", train),
                "file-batch": ("batch", json.dumps(batch_line) + "\n"),
                "file-other": ("fine-tune", json.dumps(_example(KEPT)) + "\n"),
            }
        )
        client = openai.OpenAI(
            api_key="sk-test",
            base_url="http://openai.test/v1",
            http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handle)),
        )
        yield {"s3": s3, "table": table, "texts": texts, "fake": fake, "client": client}


def _eraser(world: dict[str, Any]) -> Eraser:
    return Eraser(
        table=world["table"],
        s3=world["s3"],
        pipeline_bucket="pipeline",
        texts=world["texts"],
        openai_client=world["client"],
    )


def _body(s3: Any, key: str) -> str:
    return str(s3.get_object(Bucket="pipeline", Key=key)["Body"].read().decode())


def test_erase_removes_the_article_everywhere_and_keeps_the_others(world: dict[str, Any]) -> None:
    # GIVEN an article in the labels, a training set, the text store, the table and two OpenAI files
    s3 = world["s3"]
    # WHEN it is erased, deleting its OpenAI files
    report = _eraser(world).erase(["gone-1"], delete_openai_files=True)
    # THEN its row, texts and lines are gone, the other article's are not
    assert (
        report.rows_deleted == ["gone-1"] and world["table"].get_item(Key={"article_id": "gone-1"}).get("Item") is None
    )
    assert world["table"].get_item(Key={"article_id": "kept-1"}).get("Item") is not None
    assert report.texts_deleted == 2
    assert "gone-1" not in _body(s3, "labels/editors.jsonl") and "kept-1" in _body(s3, "labels/editors.jsonl")
    assert "Erase me" not in _body(s3, "runs/run-1/train.jsonl") and "Keep me" in _body(s3, "runs/run-1/train.jsonl")
    assert report.lines_removed == {"s3://pipeline/labels/editors.jsonl": 1, "s3://pipeline/runs/run-1/train.jsonl": 1}
    # AND the rewritten files' earlier versions are deleted (a versioned bucket keeps them otherwise)
    for key in ("labels/editors.jsonl", "runs/run-1/train.jsonl"):
        assert len(s3.list_object_versions(Bucket="pipeline", Prefix=key)["Versions"]) == 1
    # AND exactly the OpenAI files holding it are reported and deleted
    assert sorted(f["id"] for f in report.openai_files) == ["file-batch", "file-train"]
    assert sorted(world["fake"].deleted) == ["file-batch", "file-train"]


def test_erase_reports_what_remains_and_when_it_goes(world: dict[str, Any]) -> None:
    # GIVEN OpenAI files are not to be deleted WHEN the article is erased
    report = _eraser(world).erase(["gone-1"], delete_openai_files=False)
    lines: list[str] = []
    print_report(report, lines.append)
    text = "\n".join(lines)
    # THEN the files are named as not deleted, and what stays elsewhere says until when
    assert "file-train" in text and "NOT deleted" in text and world["fake"].deleted == []
    assert "point-in-time recovery" in text and "35 days" in text
    assert "fine-tuned models" in text


def _golden_articles(s3: Any) -> tuple[dict[str, Any], list[str]]:
    manifest = json.loads(_body(s3, "golden/manifest.json"))
    return manifest, [json.loads(line)["article_id"] for line in _body(s3, manifest["key"]).splitlines()]


def test_erase_takes_the_article_out_of_the_golden_set_and_its_history(world: dict[str, Any]) -> None:
    # GIVEN a golden set (v1) holding the article and another one
    s3 = world["s3"]
    store = RunStore(s3, "pipeline")
    golden.publish(store, "golden/", [LabelledArticle.model_validate(a) for a in (GONE, KEPT)], "test")
    # WHEN the article is erased
    report = _eraser(world).erase(["gone-1"], delete_openai_files=False)
    # THEN the current golden set is a new version without it, whose manifest still matches its file
    manifest, members = _golden_articles(s3)
    assert manifest["version"] == 2 and members == ["kept-1"] and manifest["count"] == 1
    assert golden.load_articles(store, golden.GoldenManifest.model_validate(manifest).ref())
    assert report.golden == "golden v1 → v2 without them, 1 left"
    # AND the version it was in is rewritten without it, its earlier object versions deleted
    assert "gone-1" not in _body(s3, "golden/v1.jsonl")
    assert len(s3.list_object_versions(Bucket="pipeline", Prefix="golden/v1.jsonl")["Versions"]) == 1


def test_erasing_the_only_golden_articles_leaves_no_golden_set(world: dict[str, Any]) -> None:
    # GIVEN a golden set holding only the article
    s3 = world["s3"]
    store = RunStore(s3, "pipeline")
    golden.publish(store, "golden/", [LabelledArticle.model_validate(GONE)], "test")
    # WHEN it is erased
    report = _eraser(world).erase(["gone-1"], delete_openai_files=False)
    # THEN there is no current golden set (Evaluate falls back to today's rule) and no copy of it
    assert golden.current_manifest(store, "golden/") is None
    assert report.golden is not None and "gone" in report.golden
    assert "gone-1" not in _body(s3, "golden/v1.jsonl")
