"""The fine-tuning state machine executed by moto, tasks in-process, OpenAI on loopback."""

from __future__ import annotations

import json
from typing import Any

from categorizer.active_model import rollback_active_model, write_active_model
from categorizer.finetune import golden
from categorizer.finetune.errors import TransientError
from categorizer.finetune.models import LabelledArticle
from categorizer.finetune.storage import RunStore
from categorizer.models import ActiveModel
from categorizer.taxonomy import bundled_taxonomy
from local import lambda_dispatch
from tests.integration.support import BUCKET, PARAMETER, FakeFineTuningOpenAI, JobPlan, PipelineStack, _template
from tests.support.finetune import demo_rows

TAXONOMY = bundled_taxonomy("demo-2")
RUN = {"taxonomy_version": "demo-2", "poll_seconds": 0, "hyperparameters": {"n_epochs": 2}, "seed": 7}


def _active(stack: PipelineStack) -> ActiveModel:
    return ActiveModel.model_validate_json(stack.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])


def test_success_promotes_and_writes_manifest_and_report(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
):
    # GIVEN the demo corpus as labels and a job that succeeds after two checks
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(running_polls=2, accuracy=0.9))
    # WHEN the pipeline runs
    run = pipeline_stack.run("run-ok", RUN)
    # THEN it succeeds, promotes the new model, and leaves a manifest and a report in S3
    assert run["status"] == "SUCCEEDED", run
    output = json.loads(run["output"])
    assert output["promotion"]["promoted"] is True
    manifest = pipeline_stack.json_object(output["dataset"]["manifest"])
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 240
    assert manifest["counts"]["validation"] == 48  # 20% of 30 per class, stratified
    assert {c["validation"] for c in manifest["class_counts"].values()} == {6}
    assert manifest["tokens"]["n_epochs"] == 2
    report = pipeline_stack.json_object(output["evaluation"]["report"])
    assert report["metrics"]["n"] == 48
    assert 0.8 <= report["metrics"]["top1"] <= 1.0
    assert report["metrics"]["top3"] == 1.0
    assert finetuning_openai.chat_requests == 48  # every validation example through the classifier
    active = _active(pipeline_stack)
    assert active.model_id == output["evaluation"]["model_id"]
    assert active.taxonomy_version == "demo-2"
    assert active.job_id == output["job"]["job_id"]
    assert active.dataset_manifest == output["dataset"]["manifest"]
    assert active.metrics["top1"] == report["metrics"]["top1"]
    # the job carries the execution name, the hyperparameters and the seed
    (job,) = finetuning_openai.jobs.values()
    assert job.body["metadata"]["pipeline_run"] == "run-ok"
    assert job.body["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    assert job.body["seed"] == 7


def _seed_active(stack: PipelineStack, top1: float) -> ActiveModel:
    record = ActiveModel(
        model_id="ft:gpt-4o-mini:test:previous:abc123", taxonomy_version="demo-2", metrics={"top1": top1}
    )
    write_active_model(stack.ssm, PARAMETER, record)
    return record


def test_promotion_keeps_history_and_rollback_restores_previous(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN an active model with a lower top-1 than the new one will reach
    previous = _seed_active(pipeline_stack, top1=0.5)
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=1.0))
    # WHEN the pipeline runs, THEN the new model replaces it
    run = pipeline_stack.run("run-better", RUN)
    assert run["status"] == "SUCCEEDED", run
    output = json.loads(run["output"])
    assert output["promotion"]["promoted"] is True
    assert output["promotion"]["previous_model_id"] == previous.model_id
    assert _active(pipeline_stack).model_id == output["evaluation"]["model_id"]
    # WHEN the operator rolls back, THEN the previous record is active again
    restored = rollback_active_model(pipeline_stack.ssm, PARAMETER)
    assert restored.model_id == previous.model_id
    assert _active(pipeline_stack).model_id == previous.model_id


def test_worse_model_is_not_promoted(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN an active model with top-1 0.95 and a new model that gets about half right
    previous = _seed_active(pipeline_stack, top1=0.95)
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=0.5))
    # WHEN the pipeline runs
    run = pipeline_stack.run("run-worse", RUN)
    # THEN the run succeeds but the active model stays, and the report says why
    assert run["status"] == "SUCCEEDED", run
    output = json.loads(run["output"])
    assert output["promotion"]["promoted"] is False
    assert "< active 0.9500" in output["promotion"]["reason"]
    assert output["evaluation"]["comparison"]["promote"] is False
    assert _active(pipeline_stack).model_id == previous.model_id


def _failure(run: dict[str, Any]) -> tuple[str, str]:
    assert run["status"] == "FAILED", run
    return run["error"], run["cause"]


def test_failed_job_ends_in_fail_state_with_openai_error(pipeline_stack: PipelineStack, finetuning_openai):
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(final="failed"))
    error, cause = _failure(pipeline_stack.run("run-failed", RUN))
    assert error == "FineTuneJobFailed"
    assert json.loads(cause)["error"] == {
        "code": "invalid_training_file",
        "message": "bad file",
        "param": "training_file",
    }
    assert finetuning_openai.chat_requests == 0
    assert pipeline_stack.ssm.describe_parameters()["Parameters"] == []


def test_cancelled_job_ends_in_fail_state(pipeline_stack: PipelineStack, finetuning_openai):
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(final="cancelled"))
    error, cause = _failure(pipeline_stack.run("run-cancelled", RUN))
    assert error == "FineTuneJobCancelled"
    assert json.loads(cause)["status"] == "cancelled"


def test_poll_limit_ends_the_run(pipeline_stack: PipelineStack, finetuning_openai):
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(running_polls=50))
    error, _ = _failure(pipeline_stack.run("run-slow", {**RUN, "max_polls": 3}))
    assert error == "PollLimitExceeded"
    (job,) = finetuning_openai.jobs.values()
    assert job.retrievals == 3


def test_cost_guard_stops_before_any_upload(pipeline_stack: PipelineStack, finetuning_openai):
    pipeline_stack.put_labels(demo_rows())
    error, cause = _failure(pipeline_stack.run("run-costly", {**RUN, "max_cost_usd": 0.0001}))
    assert error == "CostGuardExceeded"
    assert "exceeds the guard $0.0001" in cause
    assert finetuning_openai.files == {} and finetuning_openai.jobs == {}
    assert "Contents" not in pipeline_stack.s3.list_objects_v2(Bucket="pipeline-test-bucket", Prefix="runs/")


def test_too_few_examples_is_an_invalid_dataset(pipeline_stack: PipelineStack, finetuning_openai):
    pipeline_stack.put_labels(demo_rows()[:6])
    error, cause = _failure(pipeline_stack.run("run-tiny", RUN))
    assert error == "DatasetInvalid"
    assert "OpenAI needs at least 10" in cause
    assert finetuning_openai.files == {}


def test_unknown_label_is_an_invalid_dataset(pipeline_stack: PipelineStack, finetuning_openai):
    rows = demo_rows()
    rows[3] = {**rows[3], "category_id": "astrology"}
    pipeline_stack.put_labels(rows)
    error, cause = _failure(pipeline_stack.run("run-unknown", RUN))
    assert error == "DatasetInvalid"
    assert "'astrology'" in cause and "demo-2" in cause
    assert finetuning_openai.files == {}


def test_retried_start_job_finds_its_job_instead_of_creating_another(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN StartJob times out once after OpenAI created the job (the Lambda dies before answering)
    start_job = pipeline_stack.functions["StartJob"]
    calls = []

    def times_out_once(event):
        result = start_job(event)
        calls.append(result)
        if len(calls) == 1:
            raise TransientError("Task timed out after the job was created")
        return result

    lambda_dispatch.route(start_job.name, times_out_once)
    pipeline_stack.put_labels(demo_rows())
    # WHEN the pipeline runs (Step Functions retries StartJob)
    run = pipeline_stack.run("run-retry", RUN)
    # THEN the retry found the first job: one job at OpenAI, the run succeeds with it
    assert run["status"] == "SUCCEEDED", run
    assert len(finetuning_openai.jobs) == 1
    assert [c["reused"] for c in calls] == [False, True]
    assert calls[0]["job_id"] == calls[1]["job_id"] == json.loads(run["output"])["job"]["job_id"]
    failed = [e for e in pipeline_stack.history(run["executionArn"]) if e["type"] == "LambdaFunctionFailed"]
    assert len(failed) == 1 and failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "TransientError"


def _backfill_runs(stack: PipelineStack) -> list[dict[str, Any]]:
    executions = stack.sfn.list_executions(stateMachineArn=stack.backfill_state_machine_arn)["executions"]
    return [dict(stack.sfn.describe_execution(executionArn=e["executionArn"])) for e in executions]


def test_promote_starts_the_backfill_when_the_run_asks(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN a run that asks for a re-categorisation of every stored article after its promotion
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=0.9))
    backfill = {"all": True, "max_cost_usd": 25}
    # WHEN the pipeline runs and promotes its model
    run = pipeline_stack.run("run-recat", {**RUN, "backfill_after_promote": backfill})
    # THEN Promote started one BackfillStateMachine execution, named after the run, with that input
    assert run["status"] == "SUCCEEDED", run
    promotion = json.loads(run["output"])["promotion"]
    assert promotion["promoted"] is True
    (started,) = _backfill_runs(pipeline_stack)
    assert started["executionArn"] == promotion["backfill_execution_arn"]
    assert started["name"] == "run-recat-backfill"
    assert json.loads(started["input"]) == backfill


def test_a_retried_promote_starts_no_second_backfill(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN a run whose Promote fails transiently once, after it started the backfill
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=0.9))
    promote = pipeline_stack.functions["Promote"]
    calls = []

    def reply_lost_once(event):
        result = promote(event)
        calls.append(result)
        if len(calls) == 1:
            raise TransientError("Task timed out after the backfill was started")
        return result

    lambda_dispatch.route(promote.name, reply_lost_once)
    # WHEN the pipeline runs (the ASL retries Promote)
    run = pipeline_stack.run("run-retried", {**RUN, "backfill_after_promote": {"all": True}})
    # THEN the retry found the execution the first attempt started
    assert run["status"] == "SUCCEEDED", run
    (started,) = _backfill_runs(pipeline_stack)
    assert [c["backfill_execution_arn"] for c in calls] == [started["executionArn"]] * 2
    assert json.loads(run["output"])["promotion"]["backfill_execution_arn"] == started["executionArn"]


def test_no_backfill_without_the_option_or_without_a_promotion(pipeline_stack: PipelineStack, finetuning_openai):
    # GIVEN a run without the option, and a run with it whose model is worse than the active one
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans += [JobPlan(accuracy=0.9), JobPlan(accuracy=0.5)]
    plain = pipeline_stack.run("run-plain", RUN)
    worse = pipeline_stack.run("run-worse-recat", {**RUN, "backfill_after_promote": {"all": True}})
    # THEN neither started a backfill (off by default; only a promoted model re-categorises)
    assert json.loads(plain["output"])["promotion"]["backfill_execution_arn"] is None
    assert json.loads(worse["output"])["promotion"]["promoted"] is False
    assert _backfill_runs(pipeline_stack) == []


def _seed_golden(stack: PipelineStack, openai: FakeFineTuningOpenAI, rows: list[dict[str, Any]]) -> int:
    """Golden v1 from `rows` (imported), and the fake told their true labels."""
    store = RunStore(stack.s3, BUCKET)
    manifest = golden.publish(store, "golden/", [LabelledArticle.model_validate(r) for r in rows], source="test")
    budget = int(_template()["Parameters"]["InputTokenBudget"]["Default"])
    examples, _ = golden.examples(golden.load_articles(store, manifest.ref()), TAXONOMY, budget)
    openai.known_answers |= {e["messages"][1]["content"]: e["messages"][-1]["content"] for e in examples}
    return manifest.version


def test_candidate_significantly_worse_on_the_golden_set_is_not_promoted(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
):
    # GIVEN an active model whose stored top-1 is low but which is right on ~95% of the golden set,
    # a golden set of 80 articles, and a candidate right on about half
    previous = _seed_active(pipeline_stack, top1=0.1)
    finetuning_openai.served[previous.model_id] = 0.95
    rows = demo_rows()
    version = _seed_golden(pipeline_stack, finetuning_openai, rows[::3])
    pipeline_stack.put_labels(rows)
    finetuning_openai.plans.append(JobPlan(accuracy=0.5))
    # WHEN the pipeline runs
    run = pipeline_stack.run("run-golden-worse", RUN, timeout=60)
    # THEN both models were scored on the same golden set, and the paired test keeps the active model
    assert run["status"] == "SUCCEEDED", run
    output = json.loads(run["output"])
    promotion = output["promotion"]
    assert promotion["promoted"] is False and promotion["rule"] == "paired_test"
    assert "significantly worse" in promotion["reason"] and promotion["promotion_rule"]
    paired = promotion["paired"]
    assert paired["golden_version"] == version and paired["n"] == 80
    assert paired["p_value"] < 0.05 and paired["active_top1"] > paired["candidate_top1"]
    assert _active(pipeline_stack).model_id == previous.model_id
    # AND the golden articles were never in the training files
    assert output["dataset"]["golden"]["excluded_articles"] == 80
    assert output["dataset"]["counts"]["train"] + output["dataset"]["counts"]["validation"] == 160
    # AND the report holds both models on both sets, and the HTML page is next to it
    report = pipeline_stack.json_object(output["evaluation"]["report"])
    assert report["golden"]["candidate"]["metrics"]["n"] == 80 and report["golden"]["active"]["metrics"]["n"] == 80
    assert report["validation"]["active"]["metrics"]["n"] == report["metrics"]["n"]
    assert set(finetuning_openai.chat_models) == {previous.model_id, output["evaluation"]["model_id"]}
    html_key = output["evaluation"]["html_report"].split(f"s3://{BUCKET}/", 1)[1]
    assert html_key == "runs/run-golden-worse/report.html"
    page = pipeline_stack.s3.get_object(Bucket=BUCKET, Key=html_key)
    assert page["ContentType"] == "text/html" and b"reliability diagram" in page["Body"].read()


def test_candidate_as_good_on_the_golden_set_is_promoted_over_a_better_stored_figure(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
):
    # GIVEN an active model with a high stored top-1 (measured elsewhere) that is as good as the
    # candidate on the golden set
    previous = _seed_active(pipeline_stack, top1=0.99)
    finetuning_openai.served[previous.model_id] = 0.9
    rows = demo_rows()
    _seed_golden(pipeline_stack, finetuning_openai, rows[::3])
    pipeline_stack.put_labels(rows)
    finetuning_openai.plans.append(JobPlan(accuracy=0.9))
    # WHEN the pipeline runs, THEN the paired test (not the stored figure) decides: promoted
    run = pipeline_stack.run("run-golden-equal", RUN, timeout=60)
    assert run["status"] == "SUCCEEDED", run
    promotion = json.loads(run["output"])["promotion"]
    assert promotion["promoted"] is True and promotion["rule"] == "paired_test", promotion
    assert _active(pipeline_stack).model_id != previous.model_id
