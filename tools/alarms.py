"""`python -m tools alarms`: the stack's alarms with their state, and where its dashboard is.

Alarms are named `<stack>-<what>` (template.yaml), so the stack name finds them; the runbook
for each is in docs/operations.md. `--state ALARM` lists only those firing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from tools.stack import StackOutputs, add_stack_argument

Emit = Callable[[str], None]


def stack_alarms(cloudwatch: Any, stack_name: str, state: str | None) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"AlarmNamePrefix": f"{stack_name}-", "AlarmTypes": ["MetricAlarm"]}
    if state is not None:
        kwargs["StateValue"] = state
    for page in cloudwatch.get_paginator("describe_alarms").paginate(**kwargs):
        yield from page["MetricAlarms"]


def dashboard_location(dashboard: str, region: str) -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):  # offline (or another endpoint): no console to open
        return f"aws cloudwatch get-dashboard --dashboard-name {dashboard}"
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{dashboard}"


def main(argv: list[str] | None = None, emit: Emit = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools alarms", description=__doc__)
    add_stack_argument(parser)
    parser.add_argument("--state", choices=["OK", "ALARM", "INSUFFICIENT_DATA"], help="only alarms in this state")
    args = parser.parse_args(argv)
    stack = StackOutputs(args.stack_name)
    cloudwatch = boto3.client("cloudwatch")
    count = 0
    for alarm in stack_alarms(cloudwatch, args.stack_name, args.state):
        count += 1
        emit(
            json.dumps(
                {
                    "alarm": alarm["AlarmName"],
                    "state": alarm["StateValue"],
                    "reason": alarm.get("StateReason"),
                    "description": alarm.get("AlarmDescription"),
                },
                ensure_ascii=False,
            )
        )
    dashboard = stack.get("DashboardName")
    emit(json.dumps({"alarms": count, "dashboard": dashboard_location(dashboard, cloudwatch.meta.region_name)}))
    return 0
