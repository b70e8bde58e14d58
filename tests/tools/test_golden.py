"""`python -m tools golden build|import|show` and `finetune report` against moto S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from categorizer.finetune import golden as golden_set
from categorizer.finetune.storage import RunStore
from tests.support.finetune import demo_rows, reviewed_label
from tools import finetune
from tools import golden as cli

BUCKET = "pipeline-tools-bucket"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_build_from_reviewed_labels_then_import_then_show(s3: Any, tmp_path):
    # GIVEN 100 reviewed label lines as the review queue writes them
    for row in demo_rows()[:100]:
        key, line = reviewed_label(row, decision="accept", reason="sample")
        s3.put_object(Bucket=BUCKET, Key=key, Body=line.encode())
    out: list[str] = []
    # WHEN the operator builds the golden set
    assert cli.main(["--bucket", BUCKET, "build"], emit=out.append) == 0
    # THEN v1 holds the hash share of them
    store = RunStore(s3, BUCKET)
    first = golden_set.current_manifest(store, "golden/")
    assert first is not None and first.version == 1
    assert out[-1].startswith(f"golden v1: {first.count} articles → s3://{BUCKET}/golden/v1.jsonl")
    # WHEN a file is imported, THEN v2 adds its articles to v1's
    extra = tmp_path / "curated.jsonl"
    extra.write_text("".join(json.dumps(r) + "\n" for r in demo_rows()[200:210]), encoding="utf-8")
    assert cli.main(["--bucket", BUCKET, "import", str(extra), "--taxonomy-version", "demo-2"], emit=out.append) == 0
    second = golden_set.current_manifest(store, "golden/")
    assert second is not None and (second.version, second.count) == (2, first.count + 10)
    # WHEN shown, THEN the manifest and the counts per category
    out.clear()
    assert cli.main(["--bucket", BUCKET, "show"], emit=out.append) == 0
    assert json.loads(out[0])["version"] == 2
    assert sum(int(line.split("\t")[1]) for line in out[1:]) == second.count


def test_import_refuses_unknown_categories_and_show_without_a_set(s3: Any, tmp_path):
    out: list[str] = []
    assert cli.main(["--bucket", BUCKET, "show"], emit=out.append) == 1
    assert "no golden set" in out[-1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**demo_rows()[0], "category_id": "astrology"}) + "\n", encoding="utf-8")
    assert cli.main(["--bucket", BUCKET, "import", str(bad), "--taxonomy-version", "demo-2"], emit=out.append) == 1
    assert "astrology" in out[-1]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_finetune_report_fetches_the_runs_page(s3: Any, tmp_path):
    # GIVEN a run whose Evaluate wrote its page
    s3.put_object(Bucket=BUCKET, Key="runs/run-7/report.html", Body=b"<!DOCTYPE html><p>run 7</p>")
    out: list[str] = []
    target = tmp_path / "r.html"
    # WHEN fetched, THEN the file holds it and its path is printed
    assert finetune.main(["--bucket", BUCKET, "report", "run-7", "--out", str(target)], emit=out.append) == 0
    assert out == [str(target.resolve())] and target.read_bytes() == b"<!DOCTYPE html><p>run 7</p>"
    # AND a run without one is an error that says why
    assert finetune.main(["--bucket", BUCKET, "report", "run-8", "--out", str(target)], emit=out.append) == 1
    assert "has not reached Evaluate" in out[-1]
