"""template.yaml provisioned in moto: resources, wiring and function environments as the template says."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import OfflineStack, StackOptions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    options = StackOptions(
        parameter_overrides={"MaxReceiveCount": "3", "TopK": "7"},
        state_dir=tmp_path_factory.mktemp("state"),
        start_openai=False,
    )
    with OfflineStack.start(options, progress=lambda _: None) as started:
        yield started


def test_every_resource_of_the_template_is_created(stack: OfflineStack) -> None:
    # THEN every resource has a physical identity (but the e-mail subscription, whose condition is
    # false without AlarmEmail), and outputs resolve to them
    provisioned = stack.provisioned
    assert set(provisioned.resources) == set(provisioned.resource_types)
    assert {name for name, resource in provisioned.resources.items() if not resource.ref} == {"AlarmEmailSubscription"}
    assert provisioned.outputs["ArticleQueueUrl"] == provisioned.ref("ArticleQueue")


def test_queues_tables_and_state_machines_exist_in_moto_as_configured(stack: OfflineStack) -> None:
    provisioned = stack.provisioned
    # GIVEN the MaxReceiveCount override WHEN reading the queue THEN its redrive policy has it
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=provisioned.ref("ArticleQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": provisioned.attribute("ArticleDLQ", "Arn"),
        "maxReceiveCount": 3,
    }
    assert attributes["VisibilityTimeout"] == "200"
    table = stack.client("dynamodb").describe_table(TableName=provisioned.ref("ResultsTable"))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "article_id", "KeyType": "HASH"}]
    for logical_id, kind in provisioned.resource_types.items():
        if kind == "AWS::Serverless::StateMachine":
            machine = stack.client("stepfunctions").describe_state_machine(stateMachineArn=provisioned.ref(logical_id))
            # DefinitionSubstitutions were applied: no ${...} placeholder is left
            assert "${" not in machine["definition"]


def test_function_environment_is_the_templates_with_globals_merged(stack: OfflineStack) -> None:
    provisioned = stack.provisioned
    env = stack.function_env("CategorizeFunction")
    assert env["POWERTOOLS_SERVICE_NAME"] == "article-categorizer"  # from Globals
    assert env["RESULTS_TABLE_NAME"] == provisioned.ref("ResultsTable")
    assert env["DLQ_URL"] == provisioned.ref("ArticleDLQ")
    assert env["MAX_RECEIVE_COUNT"] == "3"
    assert env["TOP_K"] == "7"
    assert env["AWS_ENDPOINT_URL"] == stack.endpoints.aws_endpoint_url
    assert env["LAMBDA_TASK_ROOT"] == str(provisioned.functions["CategorizeFunction"].code_dir)
    # The secret ARN parameter got a real secret offline
    secret = stack.client("secretsmanager").get_secret_value(SecretId=env["OPENAI_API_KEY_SECRET_ARN"])
    assert secret["SecretString"] == stack.openai_api_key
    assert Path(provisioned.functions["CategorizeFunction"].layer_dirs[0]).name == "shared"


def test_sqs_event_source_carries_the_templates_scaling(stack: OfflineStack) -> None:
    [source] = [s for s in stack.provisioned.sqs_event_sources if s.function_id == "CategorizeFunction"]
    assert source.batch_size == 10
    assert source.batching_window_seconds == 1
    assert source.maximum_concurrency == 2
    assert source.report_batch_item_failures
    assert source.queue_url == stack.provisioned.ref("ArticleQueue")


def test_step_functions_reach_this_moto_server_and_the_pipeline_bucket_is_usable(stack: OfflineStack) -> None:
    # GIVEN the stack's moto server WHEN Step Functions builds its task clients (localhost:$MOTO_PORT)
    # THEN MOTO_PORT is this server's port, not moto's default 5000
    assert stack.endpoints.aws_endpoint_url.endswith(f":{os.environ['MOTO_PORT']}")
    # AND the pipeline bucket's policy was applied without its TLS-only Deny (moto ignores the
    # Condition, so the Deny would refuse every plain-HTTP request offline): objects can be written and read
    bucket = stack.provisioned.ref("PipelineBucket")
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="labels/probe.jsonl", Body=b"{}\n")
    assert s3.get_object(Bucket=bucket, Key="labels/probe.jsonl")["Body"].read() == b"{}\n"


def test_alarms_dashboard_schedule_rule_alias_and_log_groups_exist_in_moto(stack: OfflineStack) -> None:
    provisioned = stack.provisioned
    alarm_ids = [name for name, kind in provisioned.resource_types.items() if kind == "AWS::CloudWatch::Alarm"]
    # GIVEN the provisioned stack WHEN reading CloudWatch THEN every alarm is there, notifying the topic
    alarms = {a["AlarmName"]: a for a in stack.client("cloudwatch").describe_alarms(MaxRecords=100)["MetricAlarms"]}
    assert set(alarms) == {provisioned.ref(name) for name in alarm_ids}
    topic = provisioned.ref("AlarmTopic")
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms.values())
    math = alarms[provisioned.ref("OpenAIThrottleRateAlarm")]["Metrics"]
    assert [q["Id"] for q in math] == ["throttles", "requests", "throttle_percent"]
    # AND the dashboard, with its widgets
    dashboard = stack.client("cloudwatch").get_dashboard(DashboardName=provisioned.ref("OperationsDashboard"))
    assert len(json.loads(dashboard["DashboardBody"])["widgets"]) >= 8
    # AND the fine-tuning schedule, disabled, starting the state machine
    [summary] = stack.client("scheduler").list_schedules()["Schedules"]
    schedule = stack.client("scheduler").get_schedule(Name=summary["Name"])
    assert schedule["State"] == "DISABLED"
    assert schedule["Target"]["Arn"] == provisioned.ref("FineTuneStateMachine")
    # AND the failed-run rule targeting the topic, the `live` aliases, the log groups' retention
    [target] = stack.client("events").list_targets_by_rule(Rule=provisioned.ref("FineTuneFailureRule"))["Targets"]
    assert target["Arn"] == topic
    for function in ("CategorizeFunction", "IngestFunction"):
        aliases = stack.client("lambda").list_aliases(FunctionName=provisioned.ref(function))["Aliases"]
        assert [alias["Name"] for alias in aliases] == ["live"]
    group = f"/aws/lambda/{provisioned.ref('CategorizeFunction')}"
    [described] = stack.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["retentionInDays"] == int(provisioned.parameters["LogRetentionDays"])


@pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudFormation..WaitConditionHandle")  # a placeholder
def test_the_tools_find_the_offline_stack_from_its_recorded_outputs(
    stack: OfflineStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import dlq

    # GIVEN the offline stack's outputs recorded in moto, and a dead letter in its DLQ
    stack.record_outputs()
    stack.client("sqs").send_message(QueueUrl=stack.provisioned.ref("ArticleDLQ"), MessageBody='{"article_id": "x"}')
    for variable in ("DLQ_URL", "ARTICLE_QUEUE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoints.aws_endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "offline")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "offline")
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.endpoints.region)
    # WHEN the operator lists the DLQ with no flag and no variable
    assert dlq.main(["list"]) == 0
    # THEN the offline DLQ was found through the stack's outputs
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["article_id"] for line in lines if "article_id" in line] == ["x"]
