"""Promote: replace the active-model record when the new model is not worse on top-1.

The record is an SSM parameter; every write is a new version, so the previous record stays
in the parameter's history and `rollback_active_model` re-activates it in one command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from categorizer.active_model import write_active_model
from categorizer.finetune.models import Decision
from categorizer.models import ActiveModel

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def current_active_model(ssm: SSMClient, parameter_name: str) -> ActiveModel | None:
    """Read without a cache: the comparison must see the record as it is now."""
    try:
        value = ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return ActiveModel.model_validate_json(value)


def decide(new_metrics: dict[str, float], active: ActiveModel | None, *, force: bool) -> Decision:
    if active is None:
        return Decision(promote=True, reason="no active model yet")
    active_top1 = active.metrics.get("top1")
    common = {"active_model_id": active.model_id, "active_top1": active_top1}
    if force:
        return Decision(promote=True, reason="forced by the run's input", **common)
    if active_top1 is None:
        return Decision(promote=True, reason="the active model has no stored top-1 to compare", **common)
    if new_metrics["top1"] >= active_top1:
        return Decision(promote=True, reason=f"top-1 {new_metrics['top1']:.4f} ≥ active {active_top1:.4f}", **common)
    return Decision(
        promote=False,
        reason=f"top-1 {new_metrics['top1']:.4f} < active {active_top1:.4f}; the active model stays",
        **common,
    )


def promote(
    ssm: SSMClient,
    parameter_name: str,
    *,
    model_id: str,
    taxonomy_version: str,
    metrics: dict[str, float],
    job_id: str,
    dataset_manifest: str,
    force: bool,
) -> tuple[Decision, int | None]:
    """Decide against the current record and write the new one if it wins; (decision, version)."""
    decision = decide(metrics, current_active_model(ssm, parameter_name), force=force)
    if not decision.promote:
        return decision, None
    record = ActiveModel(
        model_id=model_id,
        taxonomy_version=taxonomy_version,
        metrics=metrics,
        job_id=job_id,
        dataset_manifest=dataset_manifest,
        promoted_at=datetime.now(UTC),
    )
    return decision, write_active_model(ssm, parameter_name, record)
