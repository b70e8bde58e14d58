"""The operator CLI against the pipeline in moto: import, start + follow, list, active, rollback."""

from __future__ import annotations

import json

from categorizer.active_model import write_active_model
from categorizer.models import ActiveModel
from tests.integration.support import BUCKET, PARAMETER, FakeFineTuningOpenAI, JobPlan, PipelineStack
from tests.support.finetune import demo_rows
from tools import finetune as cli


def test_import_start_follow_list_and_rollback(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI, tmp_path
):
    # GIVEN a labelled JSONL file, an earlier active model, and a job that succeeds
    labels = tmp_path / "editors.jsonl"
    labels.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo_rows()), encoding="utf-8")
    previous = ActiveModel(model_id="ft:gpt-4o-mini:test:old:1", taxonomy_version="demo-2", metrics={"top1": 0.1})
    write_active_model(pipeline_stack.ssm, PARAMETER, previous)
    finetuning_openai.plans.append(JobPlan(running_polls=1))
    out: list[str] = []
    common = ["--state-machine-arn", pipeline_stack.state_machine_arn, "--bucket", BUCKET, "--parameter", PARAMETER]
    # WHEN the operator imports, starts a run and follows it
    assert cli.main([*common, "import", str(labels), "--taxonomy-version", "demo-2"], emit=out.append) == 0
    assert out[-1] == f"imported 240 labelled articles to s3://{BUCKET}/labels/editors.jsonl"
    start = ["start", "--taxonomy-version", "demo-2", "--epochs", "1", "--poll-seconds", "0", "--name", "cli-run"]
    assert cli.main([*common, *start], emit=out.append) == 0
    # THEN progress names each step and the run ends promoted
    progress = "\n".join(out)
    for step in (
        "ExportDataset: dataset: 192 train / 48 validation",
        "StartJob: job ftjob-000001: queued",
        "CheckJob: job ftjob-000001: succeeded",
        "Evaluate: evaluated on 48",
        "Promote: promoted",
    ):
        assert step in progress
    assert out[-1].startswith("SUCCEEDED in ")
    # WHEN listing and rolling back, THEN the run is listed and the earlier model is active again
    out.clear()
    assert cli.main([*common, "list"], emit=out.append) == 0
    assert out[0].startswith("cli-run\tSUCCEEDED")
    assert cli.main([*common, "rollback"], emit=out.append) == 0
    assert out[-1] == "active model is now ft:gpt-4o-mini:test:old:1 (taxonomy demo-2)"
    out.clear()
    assert cli.main([*common, "active"], emit=out.append) == 0
    history = [json.loads(line.split("\t")[1])["model_id"] for line in out]
    assert history[0] == history[2] == previous.model_id
    assert history[1].startswith("ft:gpt-4o-mini-2024-07-18:test:categorizer:")


def test_start_can_ask_for_a_backfill_after_the_promotion(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
):
    # GIVEN labels and a job that succeeds
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan())
    out: list[str] = []
    common = ["--state-machine-arn", pipeline_stack.state_machine_arn, "--bucket", BUCKET, "--parameter", PARAMETER]
    # WHEN the operator starts a run with --backfill-after-promote 30
    start = ["start", "--taxonomy-version", "demo-2", "--epochs", "1", "--poll-seconds", "0", "--name", "cli-recat"]
    assert cli.main([*common, *start, "--backfill-after-promote", "30"], emit=out.append) == 0
    # THEN Promote started the backfill of every stored article under that cost, and said so
    (execution,) = pipeline_stack.sfn.list_executions(stateMachineArn=pipeline_stack.backfill_state_machine_arn)[
        "executions"
    ]
    described = pipeline_stack.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"all": True, "max_cost_usd": 30.0}
    assert any(f"started backfill {execution['executionArn']}" in line for line in out)


def test_import_rejects_unknown_category_before_writing(pipeline_stack: PipelineStack, tmp_path):
    rows = demo_rows()[:3]
    rows[1]["category_id"] = "astrology"
    labels = tmp_path / "bad.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out: list[str] = []
    code = cli.main(["--bucket", BUCKET, "import", str(labels), "--taxonomy-version", "demo-2"], emit=out.append)
    assert code == 1 and "astrology" in out[-1]
    assert "Contents" not in pipeline_stack.s3.list_objects_v2(Bucket=BUCKET)
