"""ReadFunction: the read API (GET /articles/{article_id}, GET /categories, POST /categories/batch-get).

The routes, ETag/Cache-Control rules and the URL-collision rule are `categorizer.read`; this
handler only wires the table and Powertools. docs/read-api.md documents the API.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.config import ReadSettings
from categorizer.read.api import build_resolver
from categorizer.read.reader import ResultReader

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = ReadSettings.from_env()
table = boto3.resource("dynamodb").Table(settings.results_table_name)
app = build_resolver(ResultReader(lambda: table), cache_max_age_seconds=settings.cache_max_age_seconds)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    metrics.add_metric(name=f"Read{response['statusCode']}", unit=MetricUnit.Count, value=1)
    return response
