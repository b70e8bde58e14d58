"""`python -m tools finetune shadow start|stop` and `shadow-report`: a candidate on live traffic.

    shadow start MODEL --share 0.1   name MODEL as the active record's shadow candidate
    shadow stop                      remove the candidate (a new record version without it)
    shadow-report [--model MODEL]    agreement with the active model and, on reviewed items, both accuracies

The report reads the candidate's rows from ResultsTable's ShadowIndex and the reviewed label
lines under labels/reviewed/ of the pipeline bucket; it prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from categorizer.finetune import shadow
from categorizer.finetune.promotion import current_active_model
from tools.stack import StackOutputs

Emit = Callable[[str], None]
REVIEWED_PREFIX = "labels/reviewed/"


def add_commands(commands: Any) -> None:
    """The two subcommands, on `python -m tools finetune`'s parser."""
    shadowing = commands.add_parser("shadow", help="start or stop a shadow candidate on live traffic")
    actions = shadowing.add_subparsers(dest="shadow_command", required=True)
    start = actions.add_parser("start", help="ask MODEL beside the active model for a share of live articles")
    start.add_argument("model")
    start.add_argument("--share", type=float, default=0.1, help="share of article revisions, 0 < share ≤ 1")
    actions.add_parser("stop", help="stop asking the candidate")
    report = commands.add_parser("shadow-report", help="the candidate's agreement and accuracy on reviewed items")
    report.add_argument("--model", help="the candidate (default: the active record's shadow)")
    report.add_argument("--table", help="(or RESULTS_TABLE_NAME; default the stack's ResultsTableName)")


def reviewed_lines(s3: Any, bucket: str, prefix: str = REVIEWED_PREFIX) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode("utf-8")
            yield from (json.loads(line) for line in body.splitlines() if line.strip())


def run(args: argparse.Namespace, stack: StackOutputs, emit: Emit) -> int:
    ssm = boto3.client("ssm")
    parameter = stack.resolve(args.parameter, "ACTIVE_MODEL_PARAMETER", "ActiveModelParameterName")
    if args.command == "shadow":
        if args.shadow_command == "start":
            if not 0 < args.share <= 1:
                emit("error: --share must be above 0 and at most 1")
                return 2
            try:
                record = shadow.start_shadow(ssm, parameter, args.model, args.share)
            except (LookupError, ValueError) as error:
                emit(f"error: {error}")
                return 1
            emit(f"shadowing {args.model} on {args.share:g} of live articles beside {record.model_id}")
            return 0
        stopped = shadow.stop_shadow(ssm, parameter)
        emit("no shadow candidate to stop" if stopped is None else f"stopped; {stopped.model_id} alone categorises")
        return 0
    model_id = args.model
    if model_id is None:
        active = current_active_model(ssm, parameter)
        if active is None or active.shadow is None:
            emit("error: no shadow candidate in the active record; give --model")
            return 1
        model_id = active.shadow.model_id
    table = boto3.resource("dynamodb").Table(stack.resolve(args.table, "RESULTS_TABLE_NAME", "ResultsTableName"))
    bucket = stack.resolve(args.bucket, "PIPELINE_BUCKET", "PipelineBucketName")
    labels = shadow.label_truths(reviewed_lines(boto3.client("s3"), bucket))
    report = shadow.build_report(model_id, shadow.shadow_rows(table, model_id), labels)
    emit(json.dumps(report.as_dict(), indent=2))
    return 0
