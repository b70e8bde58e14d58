"""The backfill state machine's task functions: one handler per task, thin.

Each handler parses the state data, calls `categorizer.backfill.tasks.Backfill` and returns what
the task adds (the ASL's ResultPath puts it in place). Errors propagate: their class names
(`TransientError`, `DatasetInvalid`, `CostGuardExceeded`) are what the state machine's Retry and
Catch match.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.backfill.models import ShardState
from categorizer.backfill.tasks import Backfill
from categorizer.config import BackfillSettings
from categorizer.dlq import DeadLetterQueue
from categorizer.finetune.storage import RunStore
from categorizer.openai_client import OpenAIClientProvider
from categorizer.pricing import Prices
from categorizer.store import ResultStore
from categorizer.textstore import TextStore

logger = Logger()
tracer = Tracer()

settings = BackfillSettings.from_env()
s3 = boto3.client("s3")
backfill = Backfill(
    settings,
    RunStore(s3, settings.pipeline_bucket, settings.runs_prefix),
    TextStore(lambda: s3, settings.text_bucket),
    ResultStore(lambda: boto3.resource("dynamodb").Table(settings.results_table_name)),
    DeadLetterQueue(boto3.client("sqs"), settings.dlq_url),
    OpenAIClientProvider(settings),
    Prices.from_env(),
)


def _state(event: dict[str, Any]) -> ShardState:
    state = ShardState.model_validate(event)
    logger.append_keys(run_id=state.shard.run_id, shard=state.shard.shard, round=state.shard.round)
    return state


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = backfill.plan(event)
    logger.info("backfill planned", extra={k: v for k, v in result["plan"].items() if k != "shards"})
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def submit_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(backfill.submit(_state(event)))
    logger.info("found this shard's batch" if result["reused"] else "batch created", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def check_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(backfill.check(_state(event)))
    logger.info("batch status", extra=result)
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def collect_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = asyncio.run(backfill.collect(_state(event)))
    logger.info("batch collected", extra={"totals": result["totals"], "resubmits": result["next"] is not None})
    return result
