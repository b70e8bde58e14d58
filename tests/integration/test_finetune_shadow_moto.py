"""Promote's minimum shadow sample in the fine-tuning state machine (moto executes the ASL)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from categorizer.active_model import active_model_history, write_active_model
from categorizer.models import ActiveModel
from tests.integration.support import PARAMETER, REGION, RESULTS_TABLE, FakeFineTuningOpenAI, JobPlan, PipelineStack
from tests.support.finetune import demo_rows

PREVIOUS = ActiveModel(model_id="ft:gpt-4o-mini:test:old:1", taxonomy_version="demo-2", metrics={"top1": 0.1})
RUN: dict[str, Any] = {
    "taxonomy_version": "demo-2",
    "poll_seconds": 0,
    "hyperparameters": {"n_epochs": 1},
    "min_shadow_sample": 3,
    "shadow_share": 0.25,
}


def _active(stack: PipelineStack) -> ActiveModel:
    return ActiveModel.model_validate_json(stack.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])


def test_a_short_shadow_sample_shadows_the_candidate_then_keeps_the_active_model(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
) -> None:
    # GIVEN an active model the candidate beats on top-1, and a run that needs 3 shadowed rows,
    # checking twice without waiting
    write_active_model(pipeline_stack.ssm, PARAMETER, PREVIOUS)
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=1.0))
    # WHEN the pipeline runs and live traffic adds no shadow sample
    run = pipeline_stack.run("shadow-short", {**RUN, "shadow_poll_seconds": 0, "max_shadow_polls": 2})
    # THEN it succeeds without promoting, says why, and the candidate was shadowed at the run's
    # share meanwhile and is no longer
    assert run["status"] == "SUCCEEDED", run
    output = json.loads(run["output"])
    candidate = output["evaluation"]["model_id"]
    assert output["promotion"]["promoted"] is False
    assert output["promotion"]["reason"] == "shadow sample 0 < 3 after 2 checks; the active model stays"
    shadows = [record.shadow for _, record in active_model_history(pipeline_stack.ssm, PARAMETER) if record.shadow]
    assert [(s.model_id, s.share) for s in shadows] == [(candidate, 0.25)]
    active = _active(pipeline_stack)
    assert active.model_id == PREVIOUS.model_id and active.shadow is None


def test_the_candidate_is_promoted_once_its_shadow_sample_is_large_enough(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
) -> None:
    # GIVEN the same run, checking every second
    write_active_model(pipeline_stack.ssm, PARAMETER, PREVIOUS)
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=1.0))
    arn = pipeline_stack.sfn.start_execution(
        stateMachineArn=pipeline_stack.state_machine_arn,
        name="shadow-enough",
        input=json.dumps({**RUN, "shadow_poll_seconds": 1, "max_shadow_polls": 20}),
    )["executionArn"]
    # WHEN the candidate starts shadowing and live traffic then gives it three rows
    deadline = time.monotonic() + 30
    while (shadow := _active(pipeline_stack).shadow) is None:
        assert time.monotonic() < deadline, "Promote never started the shadow"
        time.sleep(0.05)
    table = boto3.resource("dynamodb", region_name=REGION).Table(RESULTS_TABLE)
    for i in range(3):
        table.put_item(Item={"article_id": f"a-{i}", "revision": 1, "shadow_model_id": shadow.model_id})
    while (described := pipeline_stack.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.05)
    # THEN the run promotes the candidate, and the new record has no shadow
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["promotion"]["promoted"] is True
    active = _active(pipeline_stack)
    assert active.model_id == shadow.model_id == output["evaluation"]["model_id"]
    assert active.shadow is None


def test_without_a_minimum_promote_never_waits(
    pipeline_stack: PipelineStack, finetuning_openai: FakeFineTuningOpenAI
) -> None:
    # GIVEN a run with the deployed minimum (0)
    write_active_model(pipeline_stack.ssm, PARAMETER, PREVIOUS)
    pipeline_stack.put_labels(demo_rows())
    finetuning_openai.plans.append(JobPlan(accuracy=1.0))
    # WHEN it runs, THEN it promotes at once and never shadows
    run = pipeline_stack.run("no-minimum", {k: v for k, v in RUN.items() if k != "min_shadow_sample"})
    assert json.loads(run["output"])["promotion"]["promoted"] is True
    assert all(record.shadow is None for _, record in active_model_history(pipeline_stack.ssm, PARAMETER))
