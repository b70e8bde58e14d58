"""ResultsTable in moto as template.yaml declares it: keys, attributes and the by-URL index."""

from __future__ import annotations

from typing import Any

import boto3

from tests.support.template import RESOURCES

_DECLARED = RESOURCES["ResultsTable"]["Properties"]


def create_results_table(name: str = "results") -> Any:
    """The table (a boto3 Table resource), created inside `mock_aws`."""
    return boto3.resource("dynamodb").create_table(
        TableName=name,
        KeySchema=_DECLARED["KeySchema"],
        AttributeDefinitions=_DECLARED["AttributeDefinitions"],
        GlobalSecondaryIndexes=_DECLARED["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
    )
