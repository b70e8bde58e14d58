"""The fine-tuning state machine's task functions: one handler per task, thin.

The tasks with a figure to report emit it as an EMF metric (estimated and trained cost,
candidate top-1, promoted, run duration; docs/operations.md#dashboard).

Each handler parses the state data, calls `categorizer.finetune.tasks.Pipeline` and returns
what the task adds (the ASL's ResultPath puts it in place). Errors propagate: their class
names (`TransientError`, `DatasetInvalid`, `CostGuardExceeded`, …) are what the state
machine's Retry and Catch match.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.config import FineTuneSettings
from categorizer.finetune.models import PipelineState
from categorizer.finetune.storage import RunStore
from categorizer.finetune.tasks import Pipeline
from categorizer.openai_client import OpenAIClientProvider
from categorizer.pricing import Prices

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = FineTuneSettings.from_env()
prices = Prices.from_env()
pipeline = Pipeline(
    settings,
    RunStore(boto3.client("s3"), settings.pipeline_bucket, settings.runs_prefix),
    boto3.client("ssm"),
    OpenAIClientProvider(settings),
    prices,
    boto3.client("stepfunctions"),
)


def _state(event: dict[str, Any]) -> PipelineState:
    state = PipelineState.model_validate(event)
    logger.append_keys(run_id=state.run.execution_name)
    return state


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def export_dataset(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = pipeline.export_dataset(event)
    metrics.add_metric(
        name="FineTuneEstimatedCostUSD", unit=MetricUnit.NoUnit, value=result["dataset"]["estimated_cost_usd"]
    )
    logger.info("dataset exported", extra={"dataset": result["dataset"]})
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def upload_files(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.upload_files(_state(event)))
    logger.info("files uploaded", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def start_job(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.start_job(_state(event)))
    logger.info("fine-tuning job started" if not result["reused"] else "found this run's job", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def check_job(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.check_job(_state(event)))
    if result["status"] == "succeeded" and result.get("trained_tokens"):
        # OpenAI's trained_tokens already counts every epoch.
        trained_cost = prices.training_cost(result["trained_tokens"], epochs=1)
        metrics.add_metric(name="FineTuneTrainedCostUSD", unit=MetricUnit.NoUnit, value=trained_cost)
    logger.info("fine-tuning job status", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def evaluate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.evaluate(_state(event)))
    metrics.add_metric(name="CandidateTop1", unit=MetricUnit.NoUnit, value=result["metrics"]["top1"])
    logger.info("model evaluated", extra={"metrics": result["metrics"], "report": result["report"]})
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def promote(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = _state(event)
    result = pipeline.promote(state)
    metrics.add_metric(name="ModelPromoted", unit=MetricUnit.Count, value=1 if result["promoted"] else 0)
    if state.run.started_at:  # the execution's start ($$.Execution.StartTime): the run's duration so far
        started = datetime.fromisoformat(state.run.started_at)
        metrics.add_metric(
            name="FineTuneRunSeconds", unit=MetricUnit.Seconds, value=(datetime.now(UTC) - started).total_seconds()
        )
    logger.info("promotion decided", extra=result)
    return result
