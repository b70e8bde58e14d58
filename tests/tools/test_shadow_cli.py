"""`python -m tools finetune shadow start|stop` and `shadow-report` against moto, on constructed rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from categorizer.active_model import write_active_model
from categorizer.finetune.shadow import build_report, label_truths
from categorizer.models import ActiveModel
from tests.support.template import of_type
from tools import finetune as cli

PARAMETER = "/test/active-model"
BUCKET = "pipeline"
TABLE = "results"
ACTIVE = "ft:gpt-4o-mini:acme::active"
CANDIDATE = "ft:gpt-4o-mini:acme::candidate"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """ResultsTable as the template declares it (ShadowIndex), the bucket and the active record."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        declared = of_type("AWS::DynamoDB::Table")["ResultsTable"]["Properties"]
        table = boto3.resource("dynamodb").create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            **{k: declared[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")},
        )
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        write_active_model(boto3.client("ssm"), PARAMETER, ActiveModel(model_id=ACTIVE, taxonomy_version="iab-3.1"))
        yield table


def run(*argv: str) -> tuple[int, list[str]]:
    out: list[str] = []
    common = ["--parameter", PARAMETER, "--bucket", BUCKET]
    code = cli.main([*common, *argv], emit=out.append)
    return code, out


def shadow_row(article_id: str, active: str, candidate: str, review: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "article_id": article_id,
        "revision": 1,
        "category_id": active,
        "shadow_model_id": CANDIDATE,
        "shadow": {
            "model_id": CANDIDATE,
            "category_id": candidate,
            "probability": Decimal("0.9"),
            "active_model_id": ACTIVE,
            "active_category_id": active,
            "prompt_tokens": 400,
            "completion_tokens": 1,
            "cost_usd": Decimal("0.0001212"),
            "compared_at": datetime.now(UTC).isoformat(),
        },
    }
    if review is not None:
        row["review"] = review
    return row


def active_record() -> ActiveModel:
    value = boto3.client("ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    return ActiveModel.model_validate_json(value)


def test_start_and_stop_write_new_record_versions(aws: Any) -> None:
    # WHEN the operator starts a candidate at share 0.1
    code, out = run("shadow", "start", CANDIDATE, "--share", "0.1")
    # THEN the active record names it, the active model unchanged
    assert code == 0 and out == [f"shadowing {CANDIDATE} on 0.1 of live articles beside {ACTIVE}"]
    record = active_record()
    assert record.model_id == ACTIVE
    assert record.shadow is not None and (record.shadow.model_id, record.shadow.share) == (CANDIDATE, 0.1)
    # WHEN stopped, THEN the record has no shadow; a second stop says there is none
    assert run("shadow", "stop")[0] == 0
    assert active_record().shadow is None
    assert run("shadow", "stop")[1] == ["no shadow candidate to stop"]


def test_start_refuses_the_active_model_and_a_share_out_of_range(aws: Any) -> None:
    # WHEN the candidate is the active model, or the share is 0 or above 1, THEN nothing is written
    assert run("shadow", "start", ACTIVE)[0] == 1
    assert run("shadow", "start", CANDIDATE, "--share", "0")[0] == 2
    assert run("shadow", "start", CANDIDATE, "--share", "1.5")[0] == 2
    assert active_record().shadow is None


def test_report_gives_agreement_and_both_accuracies_on_reviewed_items(aws: Any) -> None:
    # GIVEN 5 shadowed rows: 3 agree; reviewed are r-1 (accepted: the active answer is right),
    # r-2 (corrected to the candidate's answer) and, through a label line, r-5 (the truth is neither)
    rows = [
        shadow_row("r-1", "a", "a", {"decision": "accept", "by": "ed", "at": "2026-01-01T00:00:00Z"}),
        shadow_row("r-2", "a", "b", {"decision": "correct", "by": "ed", "category_id": "b"}),
        shadow_row("r-3", "c", "c", {"decision": "skip", "by": "ed"}),
        shadow_row("r-4", "d", "d"),
        shadow_row("r-5", "e", "f"),
    ]
    for row in rows:
        aws.put_item(Item=row)
    aws.put_item(Item={"article_id": "not-shadowed", "revision": 1, "category_id": "a"})
    label = {"article_id": "r-5", "version": 1, "category_id": "g", "review": {"decision": "correct"}}
    stale_label = {"article_id": "r-4", "version": 0, "category_id": "z", "review": {"decision": "correct"}}
    body = "\n".join(json.dumps(line) for line in (label, stale_label)) + "\n"
    boto3.client("s3").put_object(Bucket=BUCKET, Key="labels/reviewed/2026-01-01/x.jsonl", Body=body.encode())
    run("shadow", "start", CANDIDATE)
    # WHEN the report runs for the active record's candidate
    code, out = run("shadow-report", "--table", TABLE)
    # THEN: 5 compared, 3 agreed; 3 reviewed (a label of another revision does not count),
    # the active right on r-1, the candidate on r-1 and r-2, neither on r-5; cost summed
    assert code == 0
    report = json.loads(out[0])
    assert report["model_id"] == CANDIDATE
    assert (report["compared"], report["agreed"]) == (5, 3)
    assert report["agreement"] == pytest.approx(0.6)
    assert report["shadow_cost_usd"] == pytest.approx(5 * 0.0001212)
    assert report["reviewed"] == {
        "n": 3,
        "active_accuracy": pytest.approx(1 / 3),
        "candidate_accuracy": pytest.approx(2 / 3),
        "only_active_correct": 0,
        "only_candidate_correct": 1,
    }


def test_report_without_a_candidate_asks_for_one(aws: Any) -> None:
    # GIVEN no shadow in the active record, WHEN the report runs without --model, THEN it says so
    expected = ["error: no shadow candidate in the active record; give --model"]
    assert run("shadow-report", "--table", TABLE) == (1, expected)


def test_report_of_no_rows_has_no_ratios() -> None:
    # GIVEN no rows and no labels, WHEN reported, THEN counts are 0 and the ratios None (not 0)
    report = build_report(CANDIDATE, [], label_truths([])).as_dict()
    assert report["compared"] == 0 and report["agreement"] is None
    assert report["reviewed"]["active_accuracy"] is None and report["reviewed"]["candidate_accuracy"] is None
