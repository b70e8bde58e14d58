"""The fine-tuning state machine's task functions: one handler per task, thin.

Each handler parses the state data, calls `categorizer.finetune.tasks.Pipeline` and returns
what the task adds (the ASL's ResultPath puts it in place). Errors propagate: their class
names (`TransientError`, `DatasetInvalid`, `CostGuardExceeded`, …) are what the state
machine's Retry and Catch match.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.config import FineTuneSettings
from categorizer.finetune.models import PipelineState
from categorizer.finetune.storage import RunStore
from categorizer.finetune.tasks import Pipeline
from categorizer.openai_client import OpenAIClientProvider
from categorizer.pricing import Prices

logger = Logger()
tracer = Tracer()

settings = FineTuneSettings.from_env()
pipeline = Pipeline(
    settings,
    RunStore(boto3.client("s3"), settings.pipeline_bucket, settings.runs_prefix),
    boto3.client("ssm"),
    OpenAIClientProvider(settings),
    Prices.from_env(),
)


def _state(event: dict[str, Any]) -> PipelineState:
    state = PipelineState.model_validate(event)
    logger.append_keys(run_id=state.run.execution_name)
    return state


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def export_dataset(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = pipeline.export_dataset(event)
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
def check_job(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.check_job(_state(event)))
    logger.info("fine-tuning job status", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def evaluate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(pipeline.evaluate(_state(event)))
    logger.info("model evaluated", extra={"metrics": result["metrics"], "report": result["report"]})
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def promote(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = pipeline.promote(_state(event))
    logger.info("promotion decided", extra=result)
    return result
