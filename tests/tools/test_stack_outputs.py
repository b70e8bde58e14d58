"""The operator commands find the stack's resources in its CloudFormation outputs (tools/stack.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from moto import mock_aws

from tools import alarms, dlq, finetune
from tools.stack import StackOutputs, default_stack_name

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_OUTPUTS = set(cfn_yaml.load(str(REPO / "template.yaml"))["Outputs"])
OVERRIDING_VARIABLES = ("DLQ_URL", "ARTICLE_QUEUE_URL", "FINETUNE_STATE_MACHINE_ARN", "PIPELINE_BUCKET")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in OVERRIDING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def _stack_with_outputs(name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack carrying these outputs (what `sam deploy` or the offline stack leaves)."""
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def _dead_letter(sqs: Any, name: str) -> str:
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"article_id": f"from-{name}"}))
    return url


def _listed(capsys: pytest.CaptureFixture[str]) -> set[str]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {line["article_id"] for line in lines if "article_id" in line}


@pytest.mark.filterwarnings("ignore::UserWarning")  # moto does not model WaitConditionHandle
def test_dlq_list_reads_the_queue_from_the_default_stacks_outputs(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the stack samconfig.toml deploys, with its DLQ in the outputs
    sqs = boto3.client("sqs")
    _stack_with_outputs(default_stack_name(), {"ArticleDLQUrl": _dead_letter(sqs, "stack-dlq")})
    # WHEN the operator lists the DLQ with no flag and no variable
    assert dlq.main(["list"]) == 0
    # THEN the stack's DLQ was read
    assert _listed(capsys) == {"from-stack-dlq"}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_flag_beats_the_variable_which_beats_the_output(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three queues: the stack's output, the variable's, the flag's
    sqs = boto3.client("sqs")
    _stack_with_outputs("other-stack", {"ArticleDLQUrl": _dead_letter(sqs, "output")})
    monkeypatch.setenv("DLQ_URL", _dead_letter(sqs, "variable"))
    flag = _dead_letter(sqs, "flag")
    # WHEN listed with each level given
    dlq.main(["--stack-name", "other-stack", "--dlq-url", flag, "list"])
    with_flag = _listed(capsys)
    dlq.main(["--stack-name", "other-stack", "list"])
    with_variable = _listed(capsys)
    monkeypatch.delenv("DLQ_URL")
    dlq.main(["--stack-name", "other-stack", "list"])
    with_output = _listed(capsys)
    # THEN the most specific wins
    assert (with_flag, with_variable, with_output) == ({"from-flag"}, {"from-variable"}, {"from-output"})


def test_a_missing_stack_says_which_and_how_to_choose_another(aws: None) -> None:
    with pytest.raises(SystemExit, match=r"'nope'.*--stack-name"):
        finetune.main(["--stack-name", "nope", "list"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_alarms_lists_the_stacks_alarms_and_its_dashboard(aws: None) -> None:
    # GIVEN a stack with two alarms named after it, another stack's alarm, and a dashboard output
    cloudwatch = boto3.client("cloudwatch")
    for name in ("s1-ArticleDLQ-Messages", "s1-CostPerHour", "s2-CostPerHour"):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
    _stack_with_outputs("s1", {"DashboardName": "s1-operations"})
    out: list[str] = []
    # WHEN listed
    assert alarms.main(["--stack-name", "s1"], emit=out.append) == 0
    # THEN only that stack's alarms are there, and where its dashboard is
    lines = [json.loads(line) for line in out]
    assert [line["alarm"] for line in lines[:-1]] == ["s1-ArticleDLQ-Messages", "s1-CostPerHour"]
    assert lines[-1]["alarms"] == 2 and "s1-operations" in lines[-1]["dashboard"]


def test_every_output_a_tool_reads_is_in_the_template() -> None:
    # GIVEN the outputs the tools resolve (StackOutputs.resolve/get calls in tools/)
    read = {
        match
        for path in (REPO / "tools").glob("*.py")
        for match in re.findall(r'stack\.(?:resolve\([^)]*?|get\()"([A-Za-z]+)"\)', path.read_text(encoding="utf-8"))
    }
    # THEN the template has each
    assert read >= {"ArticleDLQUrl", "IngestUrl", "FineTuneStateMachineArn", "DashboardName"}
    assert read <= TEMPLATE_OUTPUTS


def test_the_stack_answers_once_for_every_output(aws: None) -> None:
    calls: list[str] = []

    class Client:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            calls.append(StackName)
            return {
                "Stacks": [
                    {"Outputs": [{"OutputKey": "A", "OutputValue": "a"}, {"OutputKey": "B", "OutputValue": "b"}]}
                ]
            }

    outputs = StackOutputs("s", client=Client)
    assert (outputs.get("A"), outputs.get("B"), calls) == ("a", "b", ["s"])
    with pytest.raises(SystemExit, match="no output 'C'"):
        outputs.get("C")
