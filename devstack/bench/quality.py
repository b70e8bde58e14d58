"""`make bench-quality`: one turn of the quality loop on livedoor — review, retrain, champion vs challenger.

Drives the product's modules directly (the fine-tuning tasks of `categorizer.finetune.tasks.Pipeline`,
`golden`, `promotion`, the production `OpenAIClassifier`) in one process, with AWS in moto's
`mock_aws` and OpenAI served by the offline emulator (local.openai_server, which really
fine-tunes a local classifier). Not the whole stack: no Step Functions, SQS or HTTP API — they
add minutes and measure nothing about quality.

1. the editors' labels: `--initial` livedoor articles (split by a hash of the id) whose labels
   carry a `--noise` share of mistakes (a fixed wrong category), as a CMS export would;
2. model v1 is fine-tuned on them and promoted (the first model);
3. live traffic: `--live` other articles categorised by v1 through the production classifier;
   the review queue takes every result under the low-confidence threshold plus a random share of
   the confident ones, and the reviewer's label is the corpus's true label (a label line per item
   in the review queue's format, under labels/reviewed/);
4. the golden set is built from the reviewed items (`python -m tools golden build`'s logic);
5. a retrain on the editors' labels plus the corrections (golden articles left out), then
   Evaluate scores the candidate and v1 on the same golden set and Promote applies the rule.

Prints one JSON line: candidate and active golden top-1, the paired test's p-value and counts,
promoted or not (and the rule's branch), items reviewed (low confidence / sample), corrections,
golden size, and the validation top-1 of both models.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from bench.backfill import CATEGORY_OF
from bench.livedoor_finetune import strip_tags
from categorizer.classifier import OpenAIClassifier
from categorizer.config import FineTuneSettings
from categorizer.finetune import evaluation, golden
from categorizer.finetune.models import LabelledArticle, PipelineState
from categorizer.finetune.storage import RunStore
from categorizer.finetune.tasks import Pipeline
from categorizer.openai_client import OpenAIClientProvider
from categorizer.pricing import Prices
from categorizer.prompt import build_prompt, build_training_example
from categorizer.taxonomy import bundled_taxonomy
from local.demo_run import TAXONOMY_VERSION
from local.openai_server.server import serve_in_thread
from tools.finetune import fetch_report
from tools.golden import build as build_golden

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
RESULTS = Path(__file__).resolve().parent / "results"
BUCKET = "bench-quality-pipeline"
PARAMETER = "/bench-quality/active-model"
REGION = "us-east-1"
# The categorize function's default threshold (LOW_CONFIDENCE_THRESHOLD) and a sample of the rest.
LOW_CONFIDENCE = 0.5


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rank(article_id: str, salt: str = "") -> float:
    return int.from_bytes(hashlib.sha256(f"{salt}{article_id}".encode()).digest()[:8], "big") / 2**64


def load(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    articles = [
        {
            "article_id": row["id"],
            "title": strip_tags(row["title"]) or row["title"],
            "body": row["body"],
            "body_format": "text",
            "category_id": CATEGORY_OF[row["category"]],
            "version": 1,
        }
        for row in rows
    ]
    return sorted(articles, key=lambda a: _rank(a["article_id"]))


def with_noise(articles: list[dict[str, Any]], share: float, categories: list[str]) -> list[dict[str, Any]]:
    """An editor's mistakes: for `share` of the articles, the next category in a fixed order."""
    noisy = []
    for article in articles:
        if _rank(article["article_id"], "noise") < share:
            wrong = categories[(categories.index(article["category_id"]) + 1) % len(categories)]
            article = {**article, "category_id": wrong}
        noisy.append(article)
    return noisy


def reviewed_line(article: dict[str, Any], predicted: str, model_id: str, reason: str) -> tuple[str, bytes]:
    """The review queue's label line (issue 12's contract): the true label as the reviewer's."""
    at = datetime.now(UTC).isoformat()
    document = {
        **article,
        "updated_at": at,
        "review": {
            "decision": "accept" if predicted == article["category_id"] else "correct",
            "by": "bench-quality",
            "at": at,
            "model_id": model_id,
            "predicted_category_id": predicted,
            "reason": reason,
        },
    }
    encoded = base64.urlsafe_b64encode(article["article_id"].encode()).decode().rstrip("=")
    key = f"labels/reviewed/{at[:10]}/{encoded}-r{article['version']}.jsonl"
    return key, (json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8")


def run_pipeline(pipeline: Pipeline, name: str, run_input: dict[str, Any], report: Callable[[str], None]) -> Any:
    """The state machine's path through the tasks (ExportDataset … Promote), without Step Functions."""
    state: dict[str, Any] = pipeline.export_dataset({**run_input, "run": {"execution_name": name}})
    report(f"  {name}: dataset {state['dataset']['counts']['train']} train / "
           f"{state['dataset']['counts']['validation']} validation, golden {state['dataset']['golden']}")  # fmt: skip
    state["files"] = asyncio.run(pipeline.upload_files(PipelineState.model_validate(state)))
    state["job"] = asyncio.run(pipeline.start_job(PipelineState.model_validate(state)))
    while state["job"]["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        state["job"] = asyncio.run(pipeline.check_job(PipelineState.model_validate(state)))
    if state["job"]["status"] != "succeeded":
        raise RuntimeError(f"{name}: the fine-tuning job ended {state['job']}")
    state["evaluation"] = asyncio.run(pipeline.evaluate(PipelineState.model_validate(state)))
    state["promotion"] = pipeline.promote(PipelineState.model_validate(state))
    report(f"  {name}: {'promoted' if state['promotion']['promoted'] else 'not promoted'}: "
           f"{state['promotion']['reason']}")  # fmt: skip
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--initial", type=int, default=1500, help="editor-labelled articles for model v1")
    parser.add_argument("--live", type=int, default=2000, help="articles v1 categorises before the review")
    parser.add_argument("--noise", type=float, default=0.25, help="share of wrong editor labels")
    parser.add_argument("--sample", type=float, default=0.1, help="random share of confident results reviewed")
    parser.add_argument("--golden-share", type=float, default=golden.DEFAULT_SHARE)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()

    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    categories = sorted(c.id for c in taxonomy.categories)
    articles = load(args.data)
    initial = with_noise(articles[: args.initial], args.noise, categories)
    live = articles[args.initial : args.initial + args.live]
    run_input = {"taxonomy_version": taxonomy.version, "hyperparameters": {"n_epochs": args.epochs}, "seed": 7}

    with serve_in_thread() as server, mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="bench-openai", SecretString=json.dumps({"api_key": "sk-bench-offline"})
        )["ARN"]
        settings = FineTuneSettings.model_validate(
            {
                "PIPELINE_BUCKET": BUCKET,
                "ACTIVE_MODEL_PARAMETER": PARAMETER,
                "COST_GUARD_USD": 50,
                "OPENAI_API_KEY_SECRET_ARN": secret,
                "OPENAI_BASE_URL": server.base_url,
                "FILE_POLL_SECONDS": 0.1,
            }
        )
        store = RunStore(s3, BUCKET)
        openai_client = OpenAIClientProvider(settings)
        pipeline = Pipeline(settings, store, boto3.client("ssm", region_name=REGION), openai_client, Prices.from_env())

        say(f"[1/4] model v1 on {len(initial)} editor labels ({args.noise:.0%} of them wrong)")
        store.put_bytes(
            "labels/cms.jsonl",
            "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in initial).encode("utf-8"),
            "application/jsonl",
        )
        first = run_pipeline(pipeline, "quality-v1", run_input, say)
        active_id = first["promotion"]["model_id"]

        say(f"[2/4] v1 categorises {len(live)} live articles; the review queue takes low confidence + a sample")
        classifier = OpenAIClassifier(
            openai_client, top_k=settings.top_k, label_logit_bias=settings.label_logit_bias, prices=Prices.from_env()
        )
        examples = [
            build_training_example(
                build_prompt(a["title"], LabelledArticle.model_validate(a).text, settings.input_token_budget),
                taxonomy.by_id[a["category_id"]].label,
            )
            for a in live
        ]
        scored = asyncio.run(
            evaluation.score_examples(classifier, examples, active_id, taxonomy, settings.eval_concurrency)
        )
        reviewed = {"low_confidence": 0, "sample": 0}
        corrections = 0
        for article, result in zip(live, scored, strict=True):
            if result.confidence < LOW_CONFIDENCE:
                reason = "low_confidence"
            elif _rank(article["article_id"], "sample") < args.sample:
                reason = "sample"
            else:
                continue
            predicted = taxonomy.by_label[result.ranked[0]].id if result.ranked else ""
            corrections += predicted != article["category_id"]
            reviewed[reason] += 1
            key, body = reviewed_line(article, predicted, active_id, reason)
            store.put_bytes(key, body, "application/jsonl")
        say(f"  reviewed {sum(reviewed.values())} ({reviewed}), {corrections} corrections")

        say("[3/4] golden set from the reviewed items")
        manifest = build_golden(store, settings.golden_prefix, args.golden_share)
        say(f"  golden v{manifest.version}: {manifest.count} articles ({manifest.source})")

        say("[4/4] retrain with the corrections; champion (v1) against challenger on the golden set")
        second = run_pipeline(pipeline, "quality-v2", run_input, say)
        RESULTS.mkdir(parents=True, exist_ok=True)
        page = fetch_report(s3, BUCKET, "quality-v2", RESULTS / "quality-report.html")

    evaluated = second["evaluation"]
    paired = second["promotion"]["paired"] or {}
    report = json.dumps(
        {
            "candidate_golden_top1": paired.get("candidate_top1"),
            "active_golden_top1": paired.get("active_top1"),
            "p_value": paired.get("p_value"),
            "candidate_only": paired.get("candidate_only"),
            "active_only": paired.get("active_only"),
            "difference_interval_95": [paired.get("difference_low"), paired.get("difference_high")],
            "promoted": second["promotion"]["promoted"],
            "rule": second["promotion"]["rule"],
            "reason": second["promotion"]["reason"],
            "items_reviewed": sum(reviewed.values()),
            "reviewed_low_confidence": reviewed["low_confidence"],
            "reviewed_sample": reviewed["sample"],
            "corrections": corrections,
            "golden_n": paired.get("n"),
            "candidate_validation_top1": evaluated["metrics"]["top1"],
            "active_v1_validation_top1_at_its_run": first["evaluation"]["metrics"]["top1"],
            "initial_labels": len(initial),
            "label_noise": args.noise,
            "live_articles": len(live),
            "mode": "product modules in-process (Pipeline tasks, golden, promotion, OpenAIClassifier), "
            "moto mock_aws, offline OpenAI emulator; no Step Functions/SQS/API",
            "report_html": str(page),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    print(report)


if __name__ == "__main__":
    main()
