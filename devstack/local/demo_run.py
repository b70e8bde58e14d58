"""`make demo`: the whole system offline, start to finish, with a results table.

1. start the offline stack (moto + the OpenAI-compatible server + template.yaml's resources);
2. split the labelled demo corpus (local/demo/articles.jsonl, taxonomy demo-2) into training
   and held-out articles; the training part becomes the pipeline bucket's labels, the held-out
   part the golden set, and a run of the fine-tuning state machine exports, fine-tunes,
   evaluates (report.html, fetched to .local-state/reports/) and promotes the model;
3. publish the held-out articles through the CMS webhook (HttpApi → IngestFunction → SQS),
   categorised by CategorizeFunction behind the Lambda-like SQS poller into ResultsTable;
4. print each result, held-out accuracy, throughput, tokens and the cost at OpenAI prices,
   and the change events a subscriber received (ResultsTable's stream → ChangeEventsFunction →
   the results bus → a rule → SQS).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from categorizer.finetune import golden
from categorizer.finetune.models import (
    DatasetManifest,
    EvaluationMetrics,
    Hyperparameters,
    LabelledArticle,
    PipelineConfig,
)
from categorizer.finetune.promotion import current_active_model
from categorizer.finetune.storage import RunStore
from categorizer.ingest import webhook_secrets
from categorizer.models import ActiveModel, CategorizationResult
from categorizer.pricing import Prices
from categorizer.taxonomy import Taxonomy, bundled_taxonomy
from local.review_auth import REVIEW_PAGE_SIGN_IN
from local.stack import STATE_DIR, OfflineStack, StackOptions
from local.subscriber import Subscriber
from tools.finetune import fetch_report, follow, import_labels
from tools.publish import publish

CORPUS = Path(__file__).resolve().parent / "demo" / "articles.jsonl"
TAXONOMY_VERSION = "demo-2"
HELD_OUT_FRACTION = 0.25
SEED = 7
N_EPOCHS = 3
LABELS_KEY = "labels/demo.jsonl"
# The local server's jobs finish in seconds: check them every second, not every minute.
POLL_SECONDS = 1
FOLLOW_SECONDS = 0.5
# A reported failure comes back after this long instead of the template's 200 s.
DEMO_VISIBILITY_TIMEOUT = 20
DRAIN_TIMEOUT_SECONDS = 90


def say(message: str) -> None:
    print(message, flush=True)


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_corpus(
    articles: Sequence[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stratified by category and seeded: (training, held out)."""
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for article in articles:
        by_category[article["category_id"]].append(article)
    rng = random.Random(seed)
    train: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    for category in sorted(by_category):
        group = list(by_category[category])
        rng.shuffle(group)
        n_held_out = round(len(group) * fraction)
        held_out.extend(group[:n_held_out])
        train.extend(group[n_held_out:])
    return train, held_out


@dataclass(frozen=True)
class FineTuned:
    model_id: str
    job_id: str
    trained_tokens: int
    execution_arn: str
    manifest: DatasetManifest
    metrics: EvaluationMetrics
    record: ActiveModel
    report_path: Path


def fine_tune(
    stack: OfflineStack,
    train: Sequence[dict[str, Any]],
    taxonomy: Taxonomy,
    report: Callable[[str], None] = say,
    golden_articles: Sequence[dict[str, Any]] = (),
) -> FineTuned:
    """Fine-tune on the training articles with the pipeline; the promoted model (the one place step 2 happens).

    The articles go to the pipeline bucket's labels/ prefix (validated by `tools.finetune
    import`), one execution of FineTuneStateMachine runs export → upload → job → evaluate →
    promote on the stack's Step Functions, and the active-model record it wrote is read back.
    """
    bucket = stack.provisioned.ref("PipelineBucket")
    s3 = stack.client("s3")
    with tempfile.TemporaryDirectory() as scratch:
        labels = Path(scratch) / LABELS_KEY.rsplit("/", 1)[-1]
        labels.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in train), encoding="utf-8")
        count = import_labels(s3, bucket, labels, LABELS_KEY, taxonomy.version)
    report(f"  labels: {count} articles → s3://{bucket}/{LABELS_KEY}")
    store = RunStore(s3, bucket)
    if golden_articles:
        articles = [LabelledArticle.model_validate(a) for a in golden_articles]
        golden_set = golden.publish(store, "golden/", articles, source="make demo: the held-out articles")
        report(f"  golden set v{golden_set.version}: {golden_set.count} articles → {store.uri(golden_set.key)}")
    run_input = PipelineConfig(
        taxonomy_version=taxonomy.version,
        hyperparameters=Hyperparameters(n_epochs=N_EPOCHS),
        suffix="demo",
        seed=SEED,
        poll_seconds=POLL_SECONDS,
    ).model_dump(mode="json", exclude_unset=True)
    warmed = stack.warm_state_machine_tasks("FineTuneStateMachine")
    report(f"  warmed {len(warmed)} task functions; starting FineTuneStateMachine with {json.dumps(run_input)}")
    sfn = stack.client("stepfunctions")
    execution_arn = sfn.start_execution(
        stateMachineArn=stack.provisioned.ref("FineTuneStateMachine"),
        name=time.strftime("demo-%Y%m%dT%H%M%SZ", time.gmtime()),
        input=json.dumps(run_input),
    )["executionArn"]
    result = follow(sfn, execution_arn, lambda line: report(f"  {line}"), poll_seconds=FOLLOW_SECONDS)
    if result["status"] != "SUCCEEDED":
        raise RuntimeError(
            f"the fine-tuning pipeline ended {result['status']}: {result.get('error')}: {result.get('cause')}"
        )
    output = json.loads(result["output"])
    if not output["promotion"]["promoted"]:
        raise RuntimeError(f"the pipeline did not promote its model: {output['promotion']['reason']}")
    manifest = DatasetManifest.model_validate(store.get_json(store.key_of(output["dataset"]["manifest"])))
    parameter = stack.provisioned.parameters["ActiveModelParameterName"]
    record = current_active_model(stack.client("ssm"), parameter)
    if record is None or record.model_id != output["promotion"]["model_id"]:
        raise RuntimeError(f"{parameter} does not hold the promoted model {output['promotion']['model_id']}")
    tuned = FineTuned(
        model_id=record.model_id,
        job_id=output["job"]["job_id"],
        trained_tokens=output["job"]["trained_tokens"] or manifest.tokens.billed_training_tokens,
        execution_arn=execution_arn,
        manifest=manifest,
        metrics=EvaluationMetrics.model_validate(output["evaluation"]["metrics"]),
        record=record,
        report_path=fetch_report(
            s3, bucket, output["run"]["execution_name"], _report_file(output["run"]["execution_name"])
        ),
    )
    for line in pipeline_summary(tuned, parameter):
        report(f"  {line}")
    return tuned


def _report_file(run: str) -> Path:
    (STATE_DIR / "reports").mkdir(parents=True, exist_ok=True)
    return STATE_DIR / "reports" / f"{run}.html"


def pipeline_summary(tuned: FineTuned, parameter: str) -> list[str]:
    """The run's manifest and evaluation in a few lines."""
    manifest, tokens, m = tuned.manifest, tuned.manifest.tokens, tuned.metrics
    return [
        f"manifest {manifest.files.get('train', '').rsplit('/', 1)[0]}/manifest.json:",
        f"  {manifest.source['records']} labelled articles → {manifest.counts['train']} train / "
        f"{manifest.counts['validation']} validation examples, {manifest.counts['classes']} classes "
        f"(seed {manifest.seed}, validation {manifest.validation_fraction:.0%}, "
        f"input budget {manifest.input_token_budget:,} tokens)",
        f"  training estimate: {tokens.train_tokens:,} tokens × {tokens.n_epochs} epochs = "
        f"{tokens.billed_training_tokens:,} billed, ${tokens.estimated_cost_usd:.4f} "
        f"(cost guard ${manifest.cost_guard_usd:.2f})",
        f"evaluation on {m.n} validation examples: top-1 {m.top1:.3f}, top-3 {m.top3:.3f}, "
        f"macro-F1 {m.macro_f1:.3f}, ECE {m.ece:.3f}, coverage {m.coverage:.3f}, "
        f"no valid label {m.no_valid_label}, cost ${m.eval_cost_usd:.4f}",
        f"active model ({parameter}): {tuned.record.model_id}, taxonomy {tuned.record.taxonomy_version}, "
        f"job {tuned.record.job_id}",
        f"evaluation report: {tuned.report_path}",
    ]


def ensure_active_model(stack: OfflineStack) -> None:
    """Give a fresh stack a model (trained on the whole demo corpus) unless one is active."""
    parameter = stack.provisioned.parameters["ActiveModelParameterName"]
    if current_active_model(stack.client("ssm"), parameter) is not None:
        return
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    fine_tune(stack, load_corpus(), taxonomy, report=lambda line: print(line, file=sys.stderr, flush=True))


def publish_articles(stack: OfflineStack, articles: Sequence[dict[str, Any]]) -> int:
    """Send articles the way the CMS does: signed webhook batches to POST /articles."""
    url = stack.http_api_urls["IngestApi"] + "/articles"
    secret_value = stack.client("secretsmanager").get_secret_value(
        SecretId=stack.provisioned.parameters["WebhookSecretArn"]
    )["SecretString"]
    events = [{key: value for key, value in a.items() if key != "category_id"} for a in articles]
    batches = (events[start : start + 25] for start in range(0, len(events), 25))
    with httpx2.Client(timeout=30.0) as client:
        summary = publish(client, url, webhook_secrets(secret_value)[0], batches)
    if summary.rejected or summary.failed:
        raise RuntimeError(f"the ingest endpoint did not accept every article: {summary.to_json()}")
    return summary.accepted


def _cut(text: str, width: int) -> str:
    """Truncate to a display width (CJK characters take two columns) and pad."""
    out, used = "", 0
    for char in text:
        w = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used + w > width - 1 and len(text) > len(out) + 1:
            out += "…"
            used += 1
            break
        out += char
        used += w
    return out + " " * max(0, width - used)


def results_report(
    results: dict[str, CategorizationResult], held_out: Sequence[dict[str, Any]], taxonomy: Taxonomy
) -> tuple[list[str], int]:
    """Table lines and the number of correct top-1 answers."""
    lines = [f"  {_cut('title', 44)} {_cut('category', 14)} {'conf':>5}  top-3", "  " + "-" * 110]
    correct = 0
    for article in held_out:
        row = results.get(article["article_id"])
        if row is None:
            lines.append(f"  {_cut(article['title'], 44)} (no result)")
            continue
        ok = row.category_id == article["category_id"]
        correct += ok
        top3 = ", ".join(f"{p.name} {p.probability:.2f}" for p in row.top_k[:3])
        mark = "✓" if ok else f"✗ (is {taxonomy.by_id[article['category_id']].name})"
        lines.append(
            f"  {_cut(article['title'], 44)} {_cut(row.category_name, 14)} {row.probability:5.2f}  {top3}  {mark}"
        )
    return lines, correct


def events_report(received: Sequence[dict[str, Any]], shown: int = 5) -> list[str]:
    """What the subscriber received: counts by type and the first few events, each with its path
    (tier 1 → leaf, by the taxonomy's ids: demo-2 has two levels)."""
    counts: dict[str, int] = defaultdict(int)
    for event in received:
        counts[event["detail-type"]] += 1
    by_type = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())) or "none"
    lines = ["", f"  change events a subscriber received (results bus → rule → SQS): {by_type}"]
    for event in received[:shown]:
        detail = event["detail"]
        path = " > ".join(f"{tier['name']} ({tier['id']})" for tier in detail.get("path", [])) or "—"
        lines.append(
            f"    {event['detail-type']:<22} {detail['article_id']:<14} revision {detail['revision']:<4} {path}"
        )
    if len(received) > shown:
        lines.append(f"    … and {len(received) - shown} more")
    return lines


def run() -> int:
    started = time.monotonic()
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    corpus = load_corpus()
    train, held_out = split_corpus(corpus, HELD_OUT_FRACTION, SEED)
    # The accuracy below means something only if no held-out article is among the labels.
    assert not {a["article_id"] for a in train} & {a["article_id"] for a in held_out}
    prices = Prices.from_env()

    say("[1/4] starting the offline stack")
    options = StackOptions(queue_visibility_timeout=DEMO_VISIBILITY_TIMEOUT)
    with OfflineStack.start(options, progress=lambda line: say(f"  {line}")) as stack:
        languages = sorted({a["language"] for a in corpus})
        say(
            f"  taxonomy {taxonomy.version}: {len(taxonomy.categories)} categories; corpus: {len(corpus)} "
            f"articles ({', '.join(languages)}), {len(train)} for training, {len(held_out)} held out"
        )

        say("[2/4] fine-tuning with the pipeline (FineTuneStateMachine) through the local OpenAI-compatible server")
        tuned = fine_tune(stack, train, taxonomy, golden_articles=held_out)

        say("[3/4] publishing the held-out articles through the CMS webhook")
        stack.serve_http_apis()
        say(
            f"  review page (while the demo runs; `make local-up` keeps one): "
            f"{stack.local_outputs()['ReviewApiUrl']}/review; {REVIEW_PAGE_SIGN_IN}"
        )
        subscriber = Subscriber(stack)
        stack.start_pollers()
        publish_started = time.monotonic()
        accepted = publish_articles(stack, held_out)
        say(f"  POST /articles accepted {accepted}; CategorizeFunction is working through the queue")
        last = [-1]

        def show(depth: int) -> None:
            if depth != last[0]:
                say(f"  queue: {depth} message(s) waiting or in flight")
                last[0] = depth

        drained = stack.wait_until_drained(DRAIN_TIMEOUT_SECONDS, progress=show)
        elapsed = time.monotonic() - publish_started
        table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
            stack.provisioned.ref("ResultsTable")
        )
        results = {
            str(item["article_id"]): CategorizationResult.model_validate(item)
            for item in table.scan(ConsistentRead=True)["Items"]
        }
        dead_letters = stack.queue_depth(stack.provisioned.ref("ArticleDLQ"))
        stats = [poller.stats for poller in stack.pollers]
        received = subscriber.received()

    say("[4/4] results (held-out articles)")
    lines, correct = results_report(results, held_out, taxonomy)
    for line in lines:
        say(line)
    prompt_tokens = sum(row.prompt_tokens for row in results.values())
    completion_tokens = sum(row.completion_tokens for row in results.values())
    inference_cost = sum(row.cost_usd for row in results.values())
    training_cost = prices.training_cost(tuned.trained_tokens, 1)
    invocations = sum(s.invocations for s in stats)
    [source] = [s for s in stack.provisioned.sqs_event_sources if s.function_id == "CategorizeFunction"]
    say("")
    say(f"  accuracy (top-1, held out): {correct}/{len(held_out)} = {correct / len(held_out):.1%}")
    say(
        f"  throughput: {len(results)} articles in {elapsed:.1f} s = {len(results) / elapsed:.1f} articles/s "
        f"({invocations} invocations, MaximumConcurrency {source.maximum_concurrency}, "
        f"{stack.provisioned.parameters['InstanceRequestsPerMinute']} requests/min per instance)"
    )
    say(
        f"  tokens: {prompt_tokens:,} prompt + {completion_tokens:,} completion "
        f"({prompt_tokens / max(len(results), 1):.0f} per article); training: {tuned.trained_tokens:,} billed"
    )
    say(
        f"  estimated cost at OpenAI prices: inference ${inference_cost:.6f} "
        f"(${inference_cost / max(len(results), 1) * 1000:.4f} per 1,000 articles), "
        f"training ${training_cost:.4f}"
    )
    say(f"  dead-lettered: {dead_letters}; total time {time.monotonic() - started:.0f} s")
    say(f"  evaluation report (candidate and active model, golden and validation sets): {tuned.report_path}")
    for line in events_report(received):
        say(line)
    told = {e["detail"]["article_id"] for e in received if e["detail-type"] == "ArticleCategorized"}
    ok = drained and len(results) == len(held_out) and dead_letters == 0 and told == set(results)
    if not ok:
        say("demo FAILED: not every held-out article was categorised (logs: .local-state/logs/)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())
