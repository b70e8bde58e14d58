"""FineTuneStateMachine on the offline stack, then the categorize path with the model it promoted.

moto executes the ASL as template.yaml provisions it (server mode: its Lambda tasks reach the
functions' worker processes through local/lambda_dispatch.py), OpenAI is the local
OpenAI-compatible server, and the run is started the way `make demo` starts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from categorizer.finetune.promotion import current_active_model
from categorizer.models import CategorizationResult
from categorizer.taxonomy import bundled_taxonomy
from local.demo_run import LABELS_KEY, SEED, TAXONOMY_VERSION, fine_tune, load_corpus, publish_articles, split_corpus
from local.stack import OfflineStack, StackOptions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TASK_STATES = ["ExportDataset", "UploadFiles", "StartJob", "CheckJob", "Evaluate", "Promote"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    options = StackOptions(state_dir=tmp_path_factory.mktemp("state"), queue_visibility_timeout=10)
    with OfflineStack.start(options, progress=lambda _: None) as started:
        yield started


def test_pipeline_promotes_a_model_that_categorize_then_uses(stack: OfflineStack) -> None:
    # GIVEN the offline stack without an active model, and the demo corpus split into labels and held out
    parameter = stack.provisioned.parameters["ActiveModelParameterName"]
    ssm, s3 = stack.client("ssm"), stack.client("s3")
    assert current_active_model(ssm, parameter) is None
    train, held_out = split_corpus(load_corpus(), 0.25, SEED)
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)

    # WHEN the demo's fine-tune step runs the state machine on the training labels
    progress: list[str] = []
    tuned = fine_tune(stack, train, taxonomy, report=progress.append)

    # THEN the execution succeeded through every task, each reported as it finished
    sfn = stack.client("stepfunctions")
    assert sfn.describe_execution(executionArn=tuned.execution_arn)["status"] == "SUCCEEDED"
    events = sfn.get_execution_history(executionArn=tuned.execution_arn, maxResults=1000)["events"]
    exited = [e["stateExitedEventDetails"]["name"] for e in events if e["type"] == "TaskStateExited"]
    assert exited[:3] == TASK_STATES[:3] and exited[-3:] == TASK_STATES[-3:]  # CheckJob once per poll
    for task in TASK_STATES:
        assert any(f"] {task}: " in line for line in progress), task
    # AND the labels were the training articles only (no held-out article), and the manifest says so
    labels = s3.get_object(Bucket=stack.provisioned.ref("PipelineBucket"), Key=LABELS_KEY)["Body"].read()
    labelled_ids = {json.loads(line)["article_id"] for line in labels.decode().splitlines()}
    assert labelled_ids == {a["article_id"] for a in train}
    assert not labelled_ids & {a["article_id"] for a in held_out}
    assert tuned.manifest.source["records"] == len(train)
    assert tuned.manifest.counts["train"] + tuned.manifest.counts["validation"] == len(train)
    assert tuned.manifest.input_token_budget == int(stack.provisioned.parameters["InputTokenBudget"])
    # AND the model was promoted: the active-model record holds it with its evaluation
    record = current_active_model(ssm, parameter)
    assert record is not None
    assert record.model_id == tuned.model_id
    assert record.taxonomy_version == TAXONOMY_VERSION
    assert record.metrics["top1"] == tuned.metrics.top1 >= 0.8
    assert record.dataset_manifest is not None and record.dataset_manifest.endswith("/manifest.json")
    # AND the OpenAI side has the one job this run started, tagged with the run
    client = openai.OpenAI(base_url=stack.endpoints.openai_base_url, api_key=stack.openai_api_key)
    job = client.fine_tuning.jobs.retrieve(tuned.job_id)
    assert job.status == "succeeded"
    assert job.fine_tuned_model == tuned.model_id
    assert (job.metadata or {})["pipeline_run"] == tuned.execution_arn.rsplit(":", 1)[-1]

    # WHEN a held-out article is published through the webhook and CategorizeFunction runs
    stack.serve_http_apis(instances=1)
    stack.start_pollers()
    article = held_out[0]
    assert publish_articles(stack, [article]) == 1
    assert stack.wait_until_drained(timeout=30)

    # THEN its row in ResultsTable was categorised by the promoted model
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("ResultsTable")
    )
    item = table.get_item(Key={"article_id": article["article_id"]}, ConsistentRead=True).get("Item")
    assert item is not None
    row = CategorizationResult.model_validate(item)
    assert row.model_id == tuned.model_id
    assert row.taxonomy_version == TAXONOMY_VERSION
    assert row.category_id == article["category_id"]
    assert stack.queue_depth(stack.provisioned.ref("ArticleDLQ")) == 0
