"""`python -m tools.finetune start|list|rollback|active|import`: the fine-tuning pipeline's operator CLI.

    start     start a run with its hyperparameters and follow it to the end with progress
    list      recent runs and their status
    rollback  re-activate the previous model (the active-model parameter's history)
    active    the active-model record
    import    validate a labelled JSONL file and put it under the bucket's labels/ prefix

AWS comes from boto3's defaults, so the same commands work against an account and against
the offline stack (AWS_ENDPOINT_URL). Resource names come from flags, the environment, or
the stack's outputs (`--stack-name`; tools/stack.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import ValidationError

from categorizer.active_model import active_model_history, rollback_active_model
from categorizer.finetune.dataset import SourceLine, parse_labelled
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.models import PipelineConfig
from categorizer.taxonomy import bundled_taxonomy
from tools.stack import StackOutputs, add_stack_argument

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import HistoryEventTypeDef

Emit = Callable[[str], None]
_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def run_input(args: argparse.Namespace) -> dict[str, Any]:
    """The execution input from the flags, validated like ExportDataset will validate it."""
    hyperparameters: dict[str, Any] = {"n_epochs": args.epochs}
    if args.batch_size is not None:
        hyperparameters["batch_size"] = args.batch_size
    if args.learning_rate_multiplier is not None:
        hyperparameters["learning_rate_multiplier"] = args.learning_rate_multiplier
    document: dict[str, Any] = {"taxonomy_version": args.taxonomy_version, "hyperparameters": hyperparameters}
    for name in ("base_model", "suffix", "seed", "poll_seconds", "max_polls", "max_cost_usd", "labels_prefix"):
        if getattr(args, name) is not None:
            document[name] = getattr(args, name)
    if args.force_promote:
        document["force_promote"] = True
    if args.backfill_after_promote is not None:
        document["backfill_after_promote"] = {"all": True, "max_cost_usd": args.backfill_after_promote}
    PipelineConfig.model_validate(document)
    return document


def history(sfn: SFNClient, execution_arn: str) -> Iterator[HistoryEventTypeDef]:
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        yield from page["events"]
        if "nextToken" not in page:
            return
        kwargs["nextToken"] = page["nextToken"]


def describe_step(name: str, output: dict[str, Any]) -> str:
    """One progress line for a finished task, from what it added to the state."""
    if "error" in output:  # the task's Catch put its error there on the way to PipelineFailed
        return f"failed: {output['error'].get('Error')}"
    if name == "ExportDataset":
        d = output["dataset"]
        return (
            f"dataset: {d['counts']['train']} train / {d['counts']['validation']} validation examples, "
            f"{d['counts']['classes']} classes, estimated training cost ${d['estimated_cost_usd']:.4f}"
            + (
                f"; few examples: {', '.join(d['classes_with_too_few_examples'])}"
                if d["classes_with_too_few_examples"]
                else ""
            )
        )
    if name == "UploadFiles":
        return f"uploaded: {output['files']['training_file']}, {output['files']['validation_file']}"
    if name in ("StartJob", "CheckJob"):
        job = output["job"]
        line = f"job {job['job_id']}: {job['status']}"
        if name == "StartJob" and job["reused"]:
            line += " (found this run's job)"
        if job.get("trained_tokens"):
            line += f", {job['trained_tokens']} trained tokens"
        if job.get("fine_tuned_model"):
            line += f", model {job['fine_tuned_model']}"
        return line
    if name == "Evaluate":
        m = output["evaluation"]["metrics"]
        return (
            f"evaluated on {m['n']}: top-1 {m['top1']:.4f}, top-3 {m['top3']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
            f"ECE {m['ece']:.4f}, coverage {m['coverage']:.4f} — report {output['evaluation']['report']}"
        )
    if name == "Promote":
        p = output["promotion"]
        started = f"; started backfill {p['backfill_execution_arn']}" if p.get("backfill_execution_arn") else ""
        return f"{'promoted' if p['promoted'] else 'not promoted'}: {p['reason']}{started}"
    return "done"


def follow(sfn: SFNClient, execution_arn: str, emit: Emit, poll_seconds: float = 2.0) -> dict[str, Any]:
    """Print each finished step until the execution ends; returns describe_execution."""
    seen = 0
    started = time.monotonic()
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        events = list(history(sfn, execution_arn))
        for event in events[seen:]:
            elapsed = f"[{time.monotonic() - started:7.1f}s]"
            if event["type"] == "TaskStateExited":
                details = event["stateExitedEventDetails"]
                emit(f"{elapsed} {details['name']}: {describe_step(details['name'], json.loads(details['output']))}")
            elif event["type"] == "LambdaFunctionFailed":
                failure = event["lambdaFunctionFailedEventDetails"]
                emit(f"{elapsed} task error {failure.get('error')} (retried if transient)")
        seen = len(events)
        if described["status"] in _TERMINAL:
            return dict(described)
        time.sleep(poll_seconds)


def import_labels(s3: Any, bucket: str, path: Path, key: str, taxonomy_version: str | None) -> int:
    """Validate every line (and, with a version, every category id) before anything is written."""
    text = path.read_text(encoding="utf-8")
    articles, _ = parse_labelled(SourceLine(f"{path.name}:{n}", line) for n, line in enumerate(text.splitlines(), 1))
    if taxonomy_version is not None:
        known = bundled_taxonomy(taxonomy_version).by_id
        unknown = sorted({a.category_id for a in articles if a.category_id not in known})
        if unknown:
            raise DatasetInvalid(f"category ids not in taxonomy {taxonomy_version}: {unknown}")
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/jsonl")
    return len(articles)


def main(argv: list[str] | None = None, emit: Emit = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.finetune", description=__doc__.split("\n\n")[0])
    add_stack_argument(parser)
    parser.add_argument(
        "--state-machine-arn", help="(or FINETUNE_STATE_MACHINE_ARN; default the stack's FineTuneStateMachineArn)"
    )
    parser.add_argument("--bucket", help="(or PIPELINE_BUCKET; default the stack's PipelineBucketName)")
    parser.add_argument(
        "--parameter", help="active-model parameter (or ACTIVE_MODEL_PARAMETER; default the stack's output)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start a run and follow it")
    start.add_argument("--taxonomy-version", required=True)
    start.add_argument("--epochs", type=int, default=3)
    start.add_argument("--batch-size", type=int)
    start.add_argument("--learning-rate-multiplier", type=float)
    start.add_argument("--base-model")
    start.add_argument("--suffix")
    start.add_argument("--seed", type=int)
    start.add_argument("--labels-prefix", help="a folder under labels/ (default: all of labels/)")
    start.add_argument("--poll-seconds", type=int, help="wait between job checks (default 60)")
    start.add_argument("--max-polls", type=int)
    start.add_argument("--max-cost-usd", type=float, help="lower the deployed cost guard for this run")
    start.add_argument("--force-promote", action="store_true", help="promote even if top-1 is lower")
    start.add_argument(
        "--backfill-after-promote",
        type=float,
        metavar="MAX_COST_USD",
        help="once promoted, re-categorise every stored article with the new model (Batch API, at most this cost)",
    )
    start.add_argument("--name", help="execution name (default: finetune-<UTC time>)")
    start.add_argument("--no-follow", action="store_true")

    listing = commands.add_parser("list", help="recent runs")
    listing.add_argument("--max", type=int, default=20)
    commands.add_parser("rollback", help="re-activate the previous model")
    commands.add_parser("active", help="the active-model record and its history")
    importing = commands.add_parser("import", help="put a labelled JSONL file under labels/")
    importing.add_argument("file", type=Path)
    importing.add_argument("--key", help="object key (default labels/<file name>)")
    importing.add_argument("--taxonomy-version", help="also check every category id against this taxonomy")

    args = parser.parse_args(argv)
    stack = StackOutputs(args.stack_name)
    if args.command == "start":
        arn = stack.resolve(args.state_machine_arn, "FINETUNE_STATE_MACHINE_ARN", "FineTuneStateMachineArn")
        try:
            document = run_input(args)
        except ValidationError as error:
            raise SystemExit(f"error: invalid run input: {error}") from None
        sfn = boto3.client("stepfunctions")
        name = args.name or time.strftime("finetune-%Y%m%dT%H%M%SZ", time.gmtime())
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(document))
        emit(f"started {execution['executionArn']}")
        if args.no_follow:
            return 0
        result = follow(
            sfn, execution["executionArn"], emit, poll_seconds=min(2.0, max(0.2, document.get("poll_seconds", 2)))
        )
        if result["status"] != "SUCCEEDED":
            emit(f"{result['status']}: {result.get('error', '')}: {result.get('cause', '')}")
            return 1
        emit(f"SUCCEEDED in {(result['stopDate'] - result['startDate']).total_seconds():.1f}s")
        return 0
    if args.command == "list":
        arn = stack.resolve(args.state_machine_arn, "FINETUNE_STATE_MACHINE_ARN", "FineTuneStateMachineArn")
        runs = boto3.client("stepfunctions").list_executions(stateMachineArn=arn, maxResults=args.max)["executions"]
        for run in runs:
            stop = run.get("stopDate")
            emit(f"{run['name']}\t{run['status']}\t{run['startDate'].isoformat()}\t{stop.isoformat() if stop else '-'}")
        return 0
    ssm = boto3.client("ssm")
    if args.command in ("rollback", "active"):
        parameter = stack.resolve(args.parameter, "ACTIVE_MODEL_PARAMETER", "ActiveModelParameterName")
    if args.command == "rollback":
        try:
            record = rollback_active_model(ssm, parameter)
        except LookupError as error:
            emit(f"error: {error}")
            return 1
        emit(f"active model is now {record.model_id} (taxonomy {record.taxonomy_version})")
        return 0
    if args.command == "active":
        for version, record in active_model_history(ssm, parameter):
            emit(f"v{version}\t{record.model_dump_json()}")
        return 0
    bucket = stack.resolve(args.bucket, "PIPELINE_BUCKET", "PipelineBucketName")
    key = args.key or f"labels/{args.file.name}"
    try:
        count = import_labels(boto3.client("s3"), bucket, args.file, key, args.taxonomy_version)
    except DatasetInvalid as error:
        emit(f"error: {error}")
        return 1
    emit(f"imported {count} labelled articles to s3://{bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
