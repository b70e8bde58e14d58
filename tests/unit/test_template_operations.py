"""template.yaml's operations: alarms (each watching what it claims and notifying the topic),
the dashboard, log retention, tags, canary deploys through an alias, the fine-tuning schedule.

Alarms on the functions' EMF metrics are checked against the metric names the handlers emit,
so renaming a metric in functions/ without the alarm fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.template import DEPLOYED, FUNCTIONS, GLOBAL_FUNCTION, PARAMETERS, RESOURCES, STATE_MACHINES, of_type

ALARMS = of_type("AWS::CloudWatch::Alarm")
TOPIC = {"Ref": "AlarmTopic"}
OPERATIONS_DOC = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
EMF_NAMESPACE = GLOBAL_FUNCTION["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
EMF_SERVICE = GLOBAL_FUNCTION["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
# Every metric name a handler emits (Powertools `add_metric(name=...)` / `single_metric(name=...)`).
EMITTED = {
    match
    for path in (REPO / "functions").glob("*/app.py")
    for match in re.findall(r'name="([A-Za-z0-9]+)"', path.read_text(encoding="utf-8"))
}
ALIASED = ("CategorizeFunction", "IngestFunction", "ReadFunction", "ChangeEventsFunction", "ReviewFunction")


def _props(logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = ALARMS[logical_id]["Properties"]
    return props


def _watched(alarm: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of every metric an alarm reads, metric math included."""
    if "MetricName" in alarm:
        yield alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            yield metric["Namespace"], metric["MetricName"], dimensions


def _default(name: str) -> float:
    return float(PARAMETERS[name]["Default"])


def test_every_alarm_notifies_the_alarm_topic_and_links_its_runbook_entry() -> None:
    # GIVEN the runbook's headings as GitHub anchors
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", OPERATIONS_DOC, re.MULTILINE)
    }
    assert ALARMS
    for name, alarm in ALARMS.items():
        props = alarm["Properties"]
        # THEN each alarm notifies the topic, and its description names a runbook entry that exists
        assert props["AlarmActions"] == [TOPIC], name
        [anchor] = re.findall(r"docs/operations\.md#([a-z0-9-]+)", props["AlarmDescription"])
        assert anchor in anchors, f"{name}: docs/operations.md has no entry #{anchor}"


def test_every_emf_metric_an_alarm_watches_is_emitted_by_a_handler_with_that_namespace_and_service() -> None:
    for name, alarm in ALARMS.items():
        for namespace, metric, dimensions in _watched(alarm["Properties"]):
            if namespace.startswith("AWS/"):
                continue
            # THEN custom metrics are the handlers' EMF ones, with the dimensions Powertools gives them
            assert namespace == EMF_NAMESPACE, name
            assert metric in EMITTED, f"{name} watches {metric}, which no handler emits"
            assert dimensions == {"service": EMF_SERVICE}, name


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(function: str, metric: str) -> None:
    # GIVEN the function's alarm for the metric
    props = _props(f"{function}{metric}Alarm")
    # THEN it watches that Lambda metric of that function and fires on the first one
    assert list(_watched(props)) == [("AWS/Lambda", metric, {"FunctionName": {"Ref": function}})]
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == ("Sum", "GreaterThanThreshold", 0)


def test_categorize_p99_duration_alarm_is_at_80_percent_of_its_timeout() -> None:
    props = _props("CategorizeFunctionDurationAlarm")
    timeout = FUNCTIONS["CategorizeFunction"]["Properties"].get("Timeout", GLOBAL_FUNCTION["Timeout"])
    assert list(_watched(props)) == [("AWS/Lambda", "Duration", {"FunctionName": {"Ref": "CategorizeFunction"}})]
    assert props["ExtendedStatistic"] == "p99"
    assert props["Threshold"] == pytest.approx(0.8 * timeout * 1000)


@pytest.mark.parametrize(
    ("alarm", "queue", "metric", "threshold"),
    [
        ("ArticleDLQMessagesAlarm", "ArticleDLQ", "ApproximateNumberOfMessagesVisible", 0),
        ("ArticleQueueAgeAlarm", "ArticleQueue", "ApproximateAgeOfOldestMessage", {"Ref": "QueueAgeAlarmSeconds"}),
    ],
)
def test_queue_alarms(alarm: str, queue: str, metric: str, threshold: Any) -> None:
    props = _props(alarm)
    assert list(_watched(props)) == [("AWS/SQS", metric, {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}})]
    assert props["Threshold"] == threshold and props["ComparisonOperator"] == "GreaterThanThreshold"
    assert _default("QueueAgeAlarmSeconds") == 15 * 60


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
@pytest.mark.parametrize("outcome", ["Failed", "TimedOut", "Aborted"])
def test_every_state_machine_alarms_on_failed_timed_out_and_aborted_runs(machine: str, outcome: str) -> None:
    props = _props(f"{machine}{outcome}Alarm")
    assert list(_watched(props)) == [("AWS/States", f"Executions{outcome}", {"StateMachineArn": {"Ref": machine}})]
    assert props["Threshold"] == 0


def test_a_failed_run_reaches_the_topic_with_its_name_and_cause() -> None:
    # GIVEN the EventBridge rule on the pipeline's executions
    rule = RESOURCES["FineTuneFailureRule"]["Properties"]
    # THEN it matches every failed end of every state machine and sends name and cause to the topic
    assert rule["EventPattern"]["source"] == ["aws.states"]
    assert set(rule["EventPattern"]["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    assert rule["EventPattern"]["detail"]["stateMachineArn"] == [{"Ref": m} for m in STATE_MACHINES]
    [target] = rule["Targets"]
    assert target["Arn"] == TOPIC
    transformer = target["InputTransformer"]
    assert {"name", "cause"} <= set(transformer["InputPathsMap"])
    assert "<name>" in transformer["InputTemplate"] and "<cause>" in transformer["InputTemplate"]
    # AND the topic's policy lets exactly that rule publish
    statements = RESOURCES["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [events] = [s for s in statements if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["FineTuneFailureRule", "Arn"]}


def _math(alarm: str) -> tuple[str, dict[str, str]]:
    """The alarm's expression and its metric ids → metric names."""
    queries = _props(alarm)["Metrics"]
    [expression] = [q["Expression"] for q in queries if q.get("ReturnData")]
    return expression, {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in queries if "MetricStat" in q}


def test_openai_429_alarm_is_the_share_of_requests_over_15_minutes() -> None:
    expression, ids = _math("OpenAIThrottleRateAlarm")
    assert ids == {"throttles": "OpenAIThrottles", "requests": "OpenAIRequests"}
    assert expression == "100 * FILL(throttles, 0) / requests"
    assert {q["MetricStat"]["Period"] for q in _props("OpenAIThrottleRateAlarm")["Metrics"] if "MetricStat" in q} == {
        900
    }
    assert _props("OpenAIThrottleRateAlarm")["Threshold"] == 1


def test_low_confidence_share_and_cost_per_hour_alarms_use_their_parameters() -> None:
    expression, ids = _math("LowConfidenceShareAlarm")
    assert ids == {"low_confidence": "LowConfidence", "categorized": "ArticlesCategorized"}
    assert expression == "FILL(low_confidence, 0) / categorized"
    assert _props("LowConfidenceShareAlarm")["Threshold"] == {"Ref": "LowConfidenceShareThreshold"}
    expression, ids = _math("CostPerHourAlarm")
    assert ids == {"cost_micro_usd": "EstimatedCostMicroUSD"}
    assert expression == "cost_micro_usd / 1000000"  # the metric is in micro-USD
    assert _props("CostPerHourAlarm")["Threshold"] == {"Ref": "CostPerHourBudgetUSD"}


def test_every_stream_consumer_has_an_iterator_age_alarm() -> None:
    # GIVEN the functions' stream event sources (DynamoDB, Kinesis)
    consumers = [
        name
        for name, function in FUNCTIONS.items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] in ("DynamoDB", "Kinesis")
    ]
    # THEN each has an IteratorAge alarm
    watched = {
        props["Dimensions"][0]["Value"]["Ref"]
        for props in (a["Properties"] for a in ALARMS.values())
        if props.get("MetricName") == "IteratorAge"
    }
    assert set(consumers) <= watched


def _dashboard() -> dict[str, Any]:
    body = RESOURCES["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${Param} of a Number parameter stands where JSON wants a number; others inside strings.
    filled = re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: str(PARAMETERS.get(m.group(1), {}).get("Default", "x")), body)
    document: dict[str, Any] = json.loads(filled)
    return document


def test_dashboard_has_the_operators_graphs_on_emitted_metrics() -> None:
    widgets = _dashboard()["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    for wanted in (
        "Articles per minute",
        "OpenAI latency p50 / p95",
        "Queue depth",
        "Dead letters by reason",
        "OpenAI 429s",
        "cost per hour",
        "Mean confidence and coverage",
        "pipeline runs",
    ):
        assert any(wanted in title for title in titles), wanted
    # THEN every custom metric it draws is one a handler emits, and no two widgets overlap
    for widget in widgets:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], str) and row[0] == EMF_NAMESPACE:
                assert row[1] in EMITTED, row[1]
    cells = [
        (x, y) for w in widgets for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])
    ]
    assert len(cells) == len(set(cells))
    [by_reason] = [w for w in widgets if w["properties"]["title"] == "Dead letters by reason"]
    assert "{ArticleCategorizer,reason,service}" in by_reason["properties"]["metrics"][0][0]["expression"]


def test_every_function_has_a_log_group_with_the_retention_parameter() -> None:
    groups = {
        g["Properties"]["LogGroupName"]["Fn::Sub"]: g["Properties"]
        for g in of_type("AWS::Logs::LogGroup").values()
        if "Fn::Sub" in g["Properties"].get("LogGroupName", {})
    }
    for function in FUNCTIONS:
        assert groups[f"/aws/lambda/${{{function}}}"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def _tags(value: Any) -> dict[str, Any]:
    return {t["Key"]: t["Value"] for t in value} if isinstance(value, list) else dict(value)


def test_taggable_resources_carry_the_cost_allocation_tags() -> None:
    wanted = {"application": "article-categorizer", "cost-center": {"Ref": "CostCenter"}}
    # GIVEN the functions (Globals), the HTTP API (Globals) and the other resources that take Tags
    assert _tags(GLOBAL_FUNCTION["Tags"]) == wanted and GLOBAL_FUNCTION["PropagateTags"] is True
    taggable = (
        "AWS::SQS::Queue",
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::Serverless::StateMachine",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Events::Rule",
    )
    for name, resource in RESOURCES.items():
        if resource["Type"] in taggable:
            assert _tags(resource["Properties"].get("Tags", [])) == wanted, name
    # THEN after the transform every function (and its role) has them
    for name, resource in DEPLOYED["Resources"].items():
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::IAM::Role", "AWS::StepFunctions::StateMachine"):
            assert {t["Key"] for t in resource["Properties"].get("Tags", [])} >= set(wanted), name


@pytest.mark.parametrize("function", ALIASED)
def test_canary_deploys_through_the_live_alias_roll_back_on_the_functions_alarms(function: str) -> None:
    resources = DEPLOYED["Resources"]
    alias = f"{function}Aliaslive"
    # GIVEN the deployed template THEN the function has a `live` alias shifted by CodeDeploy
    assert resources[alias]["Type"] == "AWS::Lambda::Alias"
    group_ref = resources[alias]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]
    group = resources[group_ref["Ref"]]["Properties"]
    assert group["DeploymentConfigName"]["Fn::Sub"][0] == "CodeDeployDefault.Lambda${ConfigName}"
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": "Canary10Percent5Minutes"}
    alarms = group["AlarmConfiguration"]["Alarms"]
    assert alarms == [{"Name": {"Ref": f"{function}ErrorsAlarm"}}, {"Name": {"Ref": f"{function}ThrottlesAlarm"}}]
    assert group["AutoRollbackConfiguration"]["Enabled"] is True


def test_the_event_sources_and_the_api_integrations_invoke_the_alias() -> None:
    resources = DEPLOYED["Resources"]
    [mapping] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "ArticleQueue" in json.dumps(r["Properties"])
    ]
    assert mapping["Properties"]["FunctionName"] == {"Ref": "CategorizeFunctionAliaslive"}
    [stream] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "ResultsTable" in json.dumps(r["Properties"])
    ]
    assert stream["Properties"]["FunctionName"] == {"Ref": "ChangeEventsFunctionAliaslive"}
    api = resources["IngestApi"]
    paths = api["Properties"]["Body"]["paths"]
    routed = {
        ("/articles", "post"): "IngestFunction",
        ("/articles/{article_id}", "get"): "ReadFunction",
        ("/categories", "get"): "ReadFunction",
        ("/categories/batch-get", "post"): "ReadFunction",
    }
    for (path, method), function in routed.items():
        integration = paths[path][method]["x-amazon-apigateway-integration"]
        assert f"{function}Aliaslive" in json.dumps(integration["uri"]), (path, method)
    permitted = [
        r["Properties"]["FunctionName"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert {"Ref": "IngestFunctionAliaslive"} in permitted
    assert permitted and all(name["Ref"].endswith("Aliaslive") for name in permitted)


def test_periodic_fine_tuning_schedule_is_disabled_by_default_and_takes_its_input_from_a_parameter() -> None:
    [schedule] = [r["Properties"] for r in DEPLOYED["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedule["State"] == {"Ref": "FineTuneScheduleState"}
    assert PARAMETERS["FineTuneScheduleState"]["Default"] == "DISABLED"
    assert schedule["Target"]["Arn"] == {"Ref": "FineTuneStateMachine"}
    assert schedule["Target"]["Input"] == {"Ref": "FineTuneScheduleInput"}
    assert schedule["ScheduleExpression"] == {"Ref": "FineTuneScheduleExpression"}
    # AND the default input is a valid run input
    from categorizer.finetune.models import PipelineConfig

    PipelineConfig.model_validate(json.loads(PARAMETERS["FineTuneScheduleInput"]["Default"]))


def test_every_serverless_rules_skip_gives_its_reason() -> None:
    # GIVEN the template's text (cfn-lint's ignore_checks has no comment field; the reason is on the line)
    lines = (REPO / "template.yaml").read_text(encoding="utf-8").splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip() == "ignore_checks:"]
    assert skips
    for index in skips:
        entries = []
        for line in lines[index + 1 :]:
            if not line.strip().startswith("- "):
                break
            entries.append(line)
        # THEN each skipped rule id is followed by a reason
        assert entries
        for entry in entries:
            assert re.fullmatch(r"\s*- [A-Z]+[0-9]+  # serverless rules: .{20,}", entry), entry
