"""Promote: replace the active-model record when the candidate is not significantly worse.

The rule (PROMOTION_RULE, also in docs/finetuning.md and in every Promote output) compares the
candidate with the active model on the same golden examples by a paired test; without a
golden comparison it falls back to the stored top-1. The record is an SSM parameter; every
write is a new version, so the previous record stays in the parameter's history and
`rollback_active_model` re-activates it in one command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from categorizer.active_model import write_active_model
from categorizer.finetune.models import Decision, PairedComparison
from categorizer.models import ActiveModel

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

# The paired test's significance level: "significantly worse" means p < ALPHA.
ALPHA = 0.05
# Below this many golden examples the test cannot see a real drop: top-1 on the same examples decides.
MIN_PAIRED_EXAMPLES = 30
BOOTSTRAP_RESAMPLES = 10_000

PROMOTION_RULE = (
    "force_promote promotes; with no active model the candidate is promoted. "
    "With a golden set that both models answered, on the same examples: at least "
    f"{MIN_PAIRED_EXAMPLES} examples — promoted unless significantly worse by a one-sided exact McNemar "
    f"test (binomial on the examples exactly one model got right), p < {ALPHA}; fewer — promoted only if "
    "its golden top-1 is not lower than the active model's. If the active model changed between Evaluate "
    "and Promote, the comparison is stale and the active model stays. Without a golden comparison (no "
    "golden set yet, or the active model could not be scored on it): promoted if its validation top-1 is "
    "not lower than the active model's stored top-1."
)


def current_active_model(ssm: SSMClient, parameter_name: str) -> ActiveModel | None:
    """Read without a cache: the comparison must see the record as it is now."""
    try:
        value = ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return ActiveModel.model_validate_json(value)


def mcnemar_worse_p_value(active_only: int, candidate_only: int) -> float:
    """One-sided exact McNemar: how likely this many active-only wins are if both models were equal.

    Under "equally good" each discordant example (exactly one model right) is a fair coin, so the
    p-value is P(X ≥ active_only) for X ~ Binomial(active_only + candidate_only, ½). Exact integer
    arithmetic (math.comb): no normal approximation, so it is right for tiny counts too.
    """
    discordant = active_only + candidate_only
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(active_only, discordant + 1))
    return float(tail / 2**discordant)


def paired_comparison(
    candidate_correct: Sequence[bool],
    active_correct: Sequence[bool],
    *,
    golden_version: int,
    active_model_id: str,
    seed: int = 0,
) -> PairedComparison:
    """Both models' top-1 hits on the same golden examples, in the same order."""
    candidate = np.asarray(candidate_correct, dtype=bool)
    active = np.asarray(active_correct, dtype=bool)
    if candidate.shape != active.shape or candidate.size == 0:
        raise ValueError("the paired comparison needs both models' answers on the same, non-empty set")
    n = int(candidate.size)
    candidate_only = int((candidate & ~active).sum())
    active_only = int((active & ~candidate).sum())
    # Paired bootstrap of the top-1 difference: resampling examples with replacement only moves the
    # counts of (+1, −1, 0) differences, so one multinomial draw per resample is the whole resample.
    rng = np.random.default_rng(seed)
    shares = np.array([candidate_only, active_only, n - candidate_only - active_only], dtype=np.float64) / n
    draws = rng.multinomial(n, shares, size=BOOTSTRAP_RESAMPLES)
    differences = (draws[:, 0] - draws[:, 1]) / n
    low, high = np.quantile(differences, [0.025, 0.975])
    return PairedComparison(
        golden_version=golden_version,
        active_model_id=active_model_id,
        n=n,
        candidate_top1=round(float(candidate.mean()), 4),
        active_top1=round(float(active.mean()), 4),
        candidate_only=candidate_only,
        active_only=active_only,
        p_value=round(mcnemar_worse_p_value(active_only, candidate_only), 6),
        difference_low=round(float(low), 4),
        difference_high=round(float(high), 4),
    )


def decide(
    new_metrics: dict[str, float],
    active: ActiveModel | None,
    *,
    force: bool,
    paired: PairedComparison | None = None,
    paired_unavailable: str = "no golden set yet",
) -> Decision:
    """PROMOTION_RULE, branch by branch; `paired` is Evaluate's golden comparison, if it made one."""
    if active is None:
        return Decision(promote=True, rule="first_model", reason="no active model yet")
    active_top1 = active.metrics.get("top1")
    common = {"active_model_id": active.model_id, "active_top1": active_top1, "paired": paired}
    if force:
        return Decision(promote=True, rule="forced", reason="forced by the run's input", **common)
    if paired is not None:
        if paired.active_model_id != active.model_id:
            return Decision(
                promote=False,
                rule="stale_comparison",
                reason=f"the golden comparison was against {paired.active_model_id}, but the active model is now "
                f"{active.model_id}; the active model stays (start a new run)",
                **common,
            )
        figures = (
            f"golden v{paired.golden_version}, n={paired.n}: top-1 {paired.candidate_top1:.4f} vs active "
            f"{paired.active_top1:.4f}"
        )
        if paired.n < MIN_PAIRED_EXAMPLES:
            promote = paired.candidate_top1 >= paired.active_top1
            return Decision(
                promote=promote,
                rule="golden_top1",
                reason=f"{figures}; fewer than {MIN_PAIRED_EXAMPLES} golden examples, too few for the paired test, "
                f"so top-1 on the same examples decides: {'not lower' if promote else 'lower; the active model stays'}",
                **common,
            )
        promote = paired.p_value >= ALPHA
        test = (
            f"exact McNemar on {paired.candidate_only + paired.active_only} discordant examples "
            f"({paired.active_only} only the active model got right, {paired.candidate_only} only the candidate), "
            f"one-sided p={paired.p_value:.4g}"
        )
        verdict = (
            f"not significantly worse (p ≥ {ALPHA})"
            if promote
            else f"significantly worse (p < {ALPHA}); the active model stays"
        )
        return Decision(promote=promote, rule="paired_test", reason=f"{figures}; {test}: {verdict}", **common)
    prefix = f"no golden comparison ({paired_unavailable}), so the stored top-1 decides: "
    if active_top1 is None:
        return Decision(
            promote=True,
            rule="stored_top1",
            reason=prefix + "the active model has no stored top-1 to compare",
            **common,
        )
    if new_metrics["top1"] >= active_top1:
        return Decision(
            promote=True,
            rule="stored_top1",
            reason=prefix + f"top-1 {new_metrics['top1']:.4f} ≥ active {active_top1:.4f}",
            **common,
        )
    return Decision(
        promote=False,
        rule="stored_top1",
        reason=prefix + f"top-1 {new_metrics['top1']:.4f} < active {active_top1:.4f}; the active model stays",
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
    paired: PairedComparison | None = None,
    paired_unavailable: str = "no golden set yet",
) -> tuple[Decision, int | None]:
    """Decide against the current record and write the new one if it wins; (decision, version)."""
    decision = decide(
        metrics,
        current_active_model(ssm, parameter_name),
        force=force,
        paired=paired,
        paired_unavailable=paired_unavailable,
    )
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
