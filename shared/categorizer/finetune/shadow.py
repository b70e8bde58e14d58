"""Shadow samples: starting and stopping a candidate's shadow, Promote's minimum sample, the report.

The categorize function writes a candidate's answer on a row as `shadow` with `shadow_model_id`
(categorizer.shadow); the sparse ShadowIndex (partition key `shadow_model_id`, every attribute
projected) holds only such rows, so counting a candidate's sample and reading it for the report
are queries of that candidate's partition, never a scan of the table.

Promote's rule (`hold_for_shadow_sample`, called before the promotion itself): when the run
requires a minimum shadow sample (`min_shadow_sample` in the execution input, else the deployed
MIN_SHADOW_SAMPLE) and Evaluate found the candidate good enough, Promote does not promote until
the candidate has at least that many shadowed rows: it starts the candidate's shadow at
`shadow_share` and asks the state machine to wait `shadow_poll_seconds` and ask again, at most
`max_shadow_polls` times; after that the active model stays and the shadow stops.
`force_promote` skips the rule. A promotion writes a record without `shadow`, which ends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from categorizer.active_model import write_active_model
from categorizer.finetune import promotion
from categorizer.models import ActiveModel, ShadowConfig

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_ssm import SSMClient

    from categorizer.finetune.models import PipelineState

SHADOW_INDEX = "ShadowIndex"


def start_shadow(ssm: SSMClient, parameter_name: str, model_id: str, share: float) -> ActiveModel:
    """A new version of the active record naming the candidate and its share."""
    active = promotion.current_active_model(ssm, parameter_name)
    if active is None:
        raise LookupError(f"parameter {parameter_name} has no active-model record to shadow")
    if active.model_id == model_id:
        raise ValueError(f"{model_id} is the active model; a shadow needs another one")
    record = active.model_copy(
        update={"shadow": ShadowConfig(model_id=model_id, share=share, started_at=datetime.now(UTC))}
    )
    write_active_model(ssm, parameter_name, record)
    return record


def stop_shadow(ssm: SSMClient, parameter_name: str) -> ActiveModel | None:
    """The active record without its shadow (a new version); None when there was none to stop."""
    active = promotion.current_active_model(ssm, parameter_name)
    if active is None or active.shadow is None:
        return None
    record = active.model_copy(update={"shadow": None})
    write_active_model(ssm, parameter_name, record)
    return record


def _pages(table: Table, model_id: str, **extra: Any) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "IndexName": SHADOW_INDEX,
        "KeyConditionExpression": "shadow_model_id = :model",
        "ExpressionAttributeValues": {":model": model_id},
        **extra,
    }
    while True:
        page = table.query(**kwargs)
        yield dict(page)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def shadow_sample_size(table: Table, model_id: str) -> int:
    """How many rows hold this candidate's shadow answer (their current revision's)."""
    return sum(int(page["Count"]) for page in _pages(table, model_id, Select="COUNT"))


def shadow_rows(table: Table, model_id: str) -> Iterator[dict[str, Any]]:
    for page in _pages(table, model_id):
        yield from page.get("Items", [])


def hold_for_shadow_sample(
    ssm: SSMClient, parameter_name: str, table: Table | None, deployed_minimum: int, state: PipelineState
) -> dict[str, Any] | None:
    """Promote's minimum-shadow-sample rule: a not-promoted result while the sample is short, else None."""
    config = state.config
    minimum = deployed_minimum if config.min_shadow_sample is None else config.min_shadow_sample
    if minimum <= 0 or config.force_promote or state.evaluation is None or not state.evaluation.comparison.promote:
        return None  # no rule, forced, or the promotion rule refuses anyway: no shadow is worth paying for
    if table is None:
        raise ValueError("a minimum shadow sample needs RESULTS_TABLE_NAME (the template sets it)")
    active = promotion.current_active_model(ssm, parameter_name)
    if active is None:
        return None  # nothing to shadow against: the first model is promoted as today
    candidate = state.evaluation.model_id
    sample = shadow_sample_size(table, candidate)
    if sample >= minimum:
        return None
    polls = state.promotion.shadow_polls if state.promotion is not None and state.promotion.awaiting_shadow else 0
    common = {"promoted": False, "model_id": candidate, "previous_model_id": active.model_id, "shadow_sample": sample}
    if polls >= config.max_shadow_polls:
        stop_shadow(ssm, parameter_name)
        return {
            **common,
            "awaiting_shadow": False,
            "parameter_version": None,
            "backfill_execution_arn": None,
            "reason": f"shadow sample {sample} < {minimum} after {polls} checks; the active model stays",
        }
    shadow = active.shadow
    if shadow is None or shadow.model_id != candidate or shadow.share != config.shadow_share:
        start_shadow(ssm, parameter_name, candidate, config.shadow_share)
    return {
        **common,
        "awaiting_shadow": True,
        "shadow_polls": polls + 1,
        "reason": f"waiting for the shadow sample: {sample} of {minimum} rows at share {config.shadow_share}",
    }


@dataclass
class Tally:
    n: int = 0
    active_correct: int = 0
    candidate_correct: int = 0
    # Discordant pairs (a paired test's inputs): only the active right, only the candidate right.
    only_active: int = 0
    only_candidate: int = 0


@dataclass
class ShadowReport:
    model_id: str
    compared: int = 0
    agreed: int = 0
    cost_usd: float = 0.0
    reviewed: Tally = field(default_factory=Tally)

    def as_dict(self) -> dict[str, Any]:
        r = self.reviewed
        return {
            "model_id": self.model_id,
            "compared": self.compared,
            "agreed": self.agreed,
            "agreement": self.agreed / self.compared if self.compared else None,
            "shadow_cost_usd": round(self.cost_usd, 6),
            "reviewed": {
                "n": r.n,
                "active_accuracy": r.active_correct / r.n if r.n else None,
                "candidate_accuracy": r.candidate_correct / r.n if r.n else None,
                "only_active_correct": r.only_active,
                "only_candidate_correct": r.only_candidate,
            },
        }


def reviewed_truth(row: Mapping[str, Any]) -> str | None:
    """The human's category for a row with an accept or correct decision (skip and pending: None)."""
    review = row.get("review")
    if not isinstance(review, Mapping) or review.get("decision") not in ("accept", "correct"):
        return None
    if review.get("category_id"):
        return str(review["category_id"])
    # An accept without a category agrees with what the row showed: the active answer.
    shadow = row.get("shadow")
    return str(shadow["active_category_id"]) if isinstance(shadow, Mapping) else str(row.get("category_id"))


def label_truths(lines: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], str]:
    """(article id, revision) → category from labels/reviewed/ lines (LabelledArticle + `review`)."""
    truths: dict[tuple[str, int], str] = {}
    for line in lines:
        review = line.get("review")
        if isinstance(review, Mapping) and review.get("decision") in ("accept", "correct") and "version" in line:
            truths[(str(line["article_id"]), int(line["version"]))] = str(line["category_id"])
    return truths


def build_report(
    model_id: str, rows: Iterable[Mapping[str, Any]], labels: Mapping[tuple[str, int], str] | None = None
) -> ShadowReport:
    """Agreement of candidate and active answers, and both accuracies on the reviewed rows.

    A row's truth is its own review decision, else a reviewed label line for the same revision.
    """
    report = ShadowReport(model_id)
    for row in rows:
        shadow = row.get("shadow")
        if not isinstance(shadow, Mapping) or shadow.get("model_id") != model_id:
            continue
        active, candidate = str(shadow["active_category_id"]), str(shadow["category_id"])
        report.compared += 1
        report.agreed += active == candidate
        report.cost_usd += float(shadow.get("cost_usd", 0))
        truth = reviewed_truth(row)
        if truth is None and labels is not None:
            truth = labels.get((str(row["article_id"]), int(row["revision"])))
        if truth is None:
            continue
        tally = report.reviewed
        tally.n += 1
        tally.active_correct += active == truth
        tally.candidate_correct += candidate == truth
        tally.only_active += active == truth != candidate
        tally.only_candidate += candidate == truth != active
    return report
