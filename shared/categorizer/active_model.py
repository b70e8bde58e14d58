"""The active-model record (docs/design.md invariant 2), an SSM parameter holding JSON.

The categorize function reads it through Powertools parameters with a cache TTL, so a
promotion takes effect without a redeploy. Every write is a new parameter version, so the
previous record is kept and a rollback re-puts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities import parameters

from categorizer.models import ActiveModel

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def read_active_model(parameter_name: str, max_age_seconds: int) -> ActiveModel:
    value = parameters.get_parameter(parameter_name, max_age=max_age_seconds)
    return ActiveModel.model_validate_json(value)


def write_active_model(ssm: SSMClient, parameter_name: str, record: ActiveModel) -> int:
    response = ssm.put_parameter(Name=parameter_name, Value=record.model_dump_json(), Type="String", Overwrite=True)
    return response["Version"]


def active_model_history(ssm: SSMClient, parameter_name: str) -> list[tuple[int, ActiveModel]]:
    """Every record ever written, oldest first, as (parameter version, record)."""
    history: list[tuple[int, ActiveModel]] = []
    paginator = ssm.get_paginator("get_parameter_history")
    for page in paginator.paginate(Name=parameter_name):
        for entry in page["Parameters"]:
            history.append((entry["Version"], ActiveModel.model_validate_json(entry["Value"])))
    return sorted(history, key=lambda item: item[0])


def rollback_active_model(ssm: SSMClient, parameter_name: str) -> ActiveModel:
    """Re-activate the most recent record whose model differs from the current one."""
    history = active_model_history(ssm, parameter_name)
    if not history:
        raise LookupError(f"parameter {parameter_name} has no active-model record")
    current = history[-1][1]
    for _, record in reversed(history[:-1]):
        if record.model_id != current.model_id:
            write_active_model(ssm, parameter_name, record)
            return record
    raise LookupError(f"no earlier model than {current.model_id} to roll back to")
