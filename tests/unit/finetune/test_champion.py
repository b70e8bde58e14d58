"""Champion against challenger: the golden set, the paired test and the promotion rule, the report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from openai import AsyncOpenAI

from categorizer.config import FineTuneSettings
from categorizer.finetune import dataset as ds
from categorizer.finetune import golden, promotion, report
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.evaluation import Scored, confusion, per_class, reliability, set_evaluation
from categorizer.finetune.models import (
    EvaluationReport,
    GoldenEvaluation,
    LabelledArticle,
    PairedComparison,
    ValidationEvaluation,
)
from categorizer.finetune.storage import RunStore
from categorizer.finetune.tasks import Pipeline
from categorizer.models import ActiveModel
from categorizer.pricing import Prices
from categorizer.prompt import build_prompt
from categorizer.taxonomy import bundled_taxonomy
from tests.support.finetune import demo_rows, reviewed_label

TAXONOMY = bundled_taxonomy("demo-2")
BUCKET = "pipeline-unit-bucket"
ACTIVE = ActiveModel(model_id="ft:gpt-4o-mini:org:categorizer:old", taxonomy_version="demo-2", metrics={"top1": 0.8})


def _paired(candidate: list[bool], active: list[bool], model_id: str = ACTIVE.model_id) -> PairedComparison:
    return promotion.paired_comparison(candidate, active, golden_version=3, active_model_id=model_id)


def _decide(paired: PairedComparison | None, *, force: bool = False, new_top1: float = 0.5):
    return promotion.decide({"top1": new_top1}, ACTIVE, force=force, paired=paired)


# ---- the paired test on constructed cases ----------------------------------------------------


def test_exact_mcnemar_p_values_are_binomial_tails():
    # GIVEN discordant counts, WHEN tested, THEN p = P(X ≥ active_only), X ~ Binomial(discordant, ½)
    assert promotion.mcnemar_worse_p_value(active_only=5, candidate_only=0) == pytest.approx(1 / 32)
    assert promotion.mcnemar_worse_p_value(active_only=3, candidate_only=3) == pytest.approx(42 / 64)
    assert promotion.mcnemar_worse_p_value(active_only=0, candidate_only=7) == 1.0
    assert promotion.mcnemar_worse_p_value(active_only=0, candidate_only=0) == 1.0


def test_equal_models_are_promoted():
    # GIVEN both models right on exactly the same 80 of 100 golden examples
    answers = [True] * 80 + [False] * 20
    paired = _paired(answers, list(answers))
    # WHEN decided, THEN no discordant pair, p = 1, and the candidate is promoted by the paired test
    assert (paired.candidate_only, paired.active_only, paired.p_value) == (0, 0, 1.0)
    assert paired.difference_low == paired.difference_high == 0.0
    decision = _decide(paired)
    assert decision.promote and decision.rule == "paired_test"
    assert "not significantly worse" in decision.reason


def test_clearly_better_candidate_is_promoted():
    # GIVEN a candidate right on 30 examples the active model gets wrong, and wrong on 2 it gets right
    candidate = [True] * 60 + [True] * 30 + [False] * 2 + [False] * 8
    active = [True] * 60 + [False] * 30 + [True] * 2 + [False] * 8
    paired = _paired(candidate, active)
    # THEN the difference is positive with its whole interval, and the candidate is promoted
    assert (paired.candidate_top1, paired.active_top1) == (0.9, 0.62)
    assert paired.p_value > 0.99 and paired.difference_low > 0
    assert _decide(paired, new_top1=0.1).promote  # the stored validation figure no longer decides


def test_clearly_worse_candidate_is_not_promoted():
    # GIVEN a candidate that loses 20 examples the active model gets right and wins 2
    candidate = [True] * 60 + [False] * 20 + [True] * 2 + [False] * 18
    active = [True] * 60 + [True] * 20 + [False] * 2 + [False] * 18
    paired = _paired(candidate, active)
    # THEN p is far below 0.05, the interval is below 0, and the active model stays
    assert paired.p_value < 0.001 and paired.difference_high < 0
    decision = _decide(paired, new_top1=0.99)
    assert not decision.promote and decision.rule == "paired_test"
    assert "significantly worse" in decision.reason and "the active model stays" in decision.reason


def test_slightly_worse_on_enough_examples_is_not_significant():
    # GIVEN 200 examples where the candidate loses 6 and wins 3 (p ≈ 0.25)
    candidate = [True] * 150 + [False] * 6 + [True] * 3 + [False] * 41
    active = [True] * 150 + [True] * 6 + [False] * 3 + [False] * 41
    paired = _paired(candidate, active)
    # THEN it is not significantly worse, so it is promoted (the documented rule: non-inferiority)
    assert paired.p_value == pytest.approx(promotion.mcnemar_worse_p_value(6, 3)) and paired.p_value > 0.05
    assert _decide(paired).promote


def test_tiny_samples_fall_back_to_top1_on_the_same_examples():
    # GIVEN 5 golden examples: the candidate loses one the active model gets right (p = 0.5)
    worse = _paired([True, True, False, False, True], [True, True, True, False, True])
    # THEN the paired test is not used (too few examples); top-1 on the same examples decides
    decision = _decide(worse)
    assert not decision.promote and decision.rule == "golden_top1"
    assert f"fewer than {promotion.MIN_PAIRED_EXAMPLES}" in decision.reason
    # AND an equal candidate on the tiny set is promoted
    assert _decide(_paired([True, False, True], [True, False, True])).promote
    # AND even all-discordant tiny samples never crash the interval
    one = _paired([False], [True])
    assert one.n == 1 and one.difference_low == one.difference_high == -1.0


def test_the_bootstrap_interval_is_seeded_and_covers_the_observed_difference():
    candidate = [i % 3 != 0 for i in range(90)]
    active = [i % 4 != 0 for i in range(90)]
    first, again = _paired(candidate, active), _paired(candidate, active)
    assert first == again
    assert first.difference_low <= first.candidate_top1 - first.active_top1 <= first.difference_high


def test_paired_comparison_needs_the_same_examples():
    with pytest.raises(ValueError, match="same, non-empty set"):
        _paired([True, False], [True])
    with pytest.raises(ValueError, match="same, non-empty set"):
        _paired([], [])


def test_the_rule_without_a_golden_comparison_is_todays_and_says_so():
    # GIVEN no golden set, WHEN decided, THEN the stored top-1 decides and the reason says why
    kept = promotion.decide({"top1": 0.79}, ACTIVE, force=False, paired=None)
    assert not kept.promote and kept.rule == "stored_top1"
    assert kept.reason.startswith("no golden comparison (no golden set yet)")
    assert promotion.decide({"top1": 0.8}, ACTIVE, force=False).promote
    unscorable = promotion.decide({"top1": 0.9}, ACTIVE, force=False, paired_unavailable="the model is gone")
    assert "(the model is gone)" in unscorable.reason


def test_force_first_model_and_a_stale_comparison():
    worse = _paired([False] * 40, [True] * 40)
    # force_promote stays: it promotes a significantly worse candidate
    assert _decide(worse, force=True).promote and _decide(worse, force=True).rule == "forced"
    # no active model: promoted whatever the figures
    assert promotion.decide({"top1": 0.0}, None, force=False, paired=worse).promote
    # GIVEN a comparison against a model that is no longer the active one, THEN the active model stays
    stale = _paired([True] * 40, [False] * 40, model_id="ft:someone-else")
    decision = _decide(stale)
    assert not decision.promote and decision.rule == "stale_comparison"


def test_the_rule_text_names_every_branch():
    for phrase in ("force_promote", "exact McNemar", "p < 0.05", f"{promotion.MIN_PAIRED_EXAMPLES} examples", "stale"):
        assert phrase in promotion.PROMOTION_RULE


# ---- evaluation figures ----------------------------------------------------------------------


SCORED = [
    Scored("0", ["0", "1"], 0.95, 1.0, 0.001),
    Scored("0", ["1", "0"], 0.55, 1.0, 0.001),
    Scored("1", ["1"], 0.75, 1.0, 0.001),
    Scored("2", [], 0.0, 0.0, 0.0),
]


def test_confusion_matrix_per_class_and_reliability_on_a_known_case():
    # GIVEN four scored examples (labels 0, 0, 1, 2; one without a valid label)
    matrix = confusion(SCORED, TAXONOMY)
    ids = [TAXONOMY.by_label[label].id for label in ("0", "1", "2")]
    # THEN rows are truths, columns answers, the last column "no valid label"
    assert matrix.classes == ids
    assert matrix.matrix == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    scores = per_class(SCORED, TAXONOMY)
    assert scores[ids[0]].precision == 1.0 and scores[ids[0]].recall == 0.5 and scores[ids[0]].f1 == 0.6667
    assert scores[ids[1]].precision == 0.5 and scores[ids[1]].recall == 1.0 and scores[ids[1]].predicted == 2
    assert scores[ids[2]].f1 == 0.0
    bins = reliability(SCORED)
    assert len(bins) == 10 and sum(b.count for b in bins) == 4
    assert (bins[9].count, bins[9].accuracy, bins[9].mean_confidence) == (1, 1.0, 0.95)
    assert (bins[5].count, bins[5].accuracy) == (1, 0.0)


def _report_document() -> EvaluationReport:
    candidate = set_evaluation(SCORED, "ft:new", TAXONOMY)
    active = set_evaluation(list(reversed(SCORED)), ACTIVE.model_id, TAXONOMY)
    paired = _paired([True, False, True, False], [True, True, False, False])
    decision = _decide(paired)
    return EvaluationReport(
        run_id="run-<script>",
        evaluated_at="2025-05-01T10:00:00Z",
        model_id="ft:new",
        job_id="ftjob-1",
        trained_tokens=1000,
        taxonomy_version="demo-2",
        validation_file="s3://b/runs/r/validation.jsonl",
        dataset_manifest="s3://b/runs/r/manifest.json",
        metrics=candidate.metrics,
        per_class=candidate.per_class,
        active_model={"model_id": ACTIVE.model_id, "top1": 0.8},
        comparison=decision,
        promotion_rule=promotion.PROMOTION_RULE,
        validation=ValidationEvaluation(candidate=candidate, active=active),
        golden=GoldenEvaluation(version=3, key="golden/v3.jsonl", skipped=1, candidate=candidate, active=active),
    )


def test_report_is_self_contained_html_with_heat_map_table_and_reliability_diagram():
    # GIVEN an evaluation of both models on both sets, WHEN rendered
    page = report.render(_report_document())
    # THEN it is one HTML page: inline SVG charts, no script, no external asset
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('aria-label="confusion matrix"') == 4  # candidate and active, golden and validation
    assert page.count('aria-label="reliability diagram"') == 2
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    # AND it holds the per-class table, the paired test and the rule, with text escaped
    assert "<h3>Per class</h3>" in page and "active F1" in page
    assert "exact McNemar p" in page and promotion.PROMOTION_RULE.split(";")[0] in page
    assert "run-&lt;script&gt;" in page and "run-<script>" not in page
    assert "Golden set v3" in page and "1 golden articles not in this taxonomy" in page


def test_report_without_an_active_model_or_golden_set_says_so():
    document = _report_document()
    document = document.model_copy(
        update={
            "golden": None,
            "validation": ValidationEvaluation(candidate=document.validation.candidate),
            "comparison": promotion.decide({"top1": 0.5}, None, force=False),
            "paired_unavailable": "no golden set yet",
        }
    )
    page = report.render(document)
    assert "No paired golden comparison: no golden set yet." in page
    assert page.count('aria-label="confusion matrix"') == 1 and "Golden set" not in page


# ---- the golden set in the bucket ------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[RunStore]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield RunStore(s3, BUCKET)


def _put_reviewed(store: RunStore, rows, **kwargs) -> None:
    for row in rows:
        key, line = reviewed_label(row, **kwargs)
        store.put_bytes(key, line.encode(), "application/jsonl")


def _reviewed(store: RunStore) -> list[LabelledArticle]:
    articles, _ = ds.parse_labelled(store.lines(store.label_keys(golden.REVIEWED_PREFIX)))
    return articles


def test_golden_build_takes_a_deterministic_share_of_reviewed_labels(store: RunStore):
    # GIVEN 120 reviewed label lines in the review queue's format (corrections to another category)
    rows = demo_rows()[:120]
    _put_reviewed(store, rows, category_id="travel")
    # WHEN the golden set is built from them
    chosen = golden.golden_share(_reviewed(store), golden.DEFAULT_SHARE)
    manifest = golden.publish(store, "golden/", chosen, source="labels/reviewed/")
    # THEN about a fifth of them, the same ones on every build, with the human's category
    assert 10 <= manifest.count <= 40
    assert [a.article_id for a in golden.golden_share(_reviewed(store), 0.2)] == [a.article_id for a in chosen]
    assert all(golden.in_share(a.article_id, 0.2) for a in chosen)
    loaded = golden.load_articles(store, manifest.ref())
    assert {a.category_id for a in loaded} == {"travel"}
    assert manifest.version == 1 and manifest.key == "golden/v1.jsonl"
    assert golden.current_manifest(store, "golden/") == manifest


def test_golden_versions_accumulate_and_the_latest_revision_wins(store: RunStore):
    rows = demo_rows()[:10]
    first = golden.publish(store, "golden/", [LabelledArticle.model_validate(r) for r in rows[:6]], source="import:a")
    # GIVEN a second import with a newer revision of one article and four new ones
    newer = {**rows[0], "version": rows[0]["version"] + 1, "category_id": "food"}
    second = golden.publish(
        store, "golden/", [LabelledArticle.model_validate(r) for r in [newer, *rows[6:]]], source="import:b"
    )
    # THEN v2 holds all ten, the newer revision's label, and v1 is untouched
    assert (first.version, second.version, second.count) == (1, 2, 10)
    by_id = {a.article_id: a for a in golden.load_articles(store, second.ref())}
    assert by_id[rows[0]["article_id"]].category_id == "food"
    assert golden.load_articles(store, first.ref())[0].article_id == min(r["article_id"] for r in rows[:6])
    # AND `replace` starts over
    third = golden.publish(store, "golden/", [LabelledArticle.model_validate(rows[9])], source="x", replace=True)
    assert third.count == 1 and third.version == 3


def test_a_tampered_or_missing_golden_set(store: RunStore):
    assert golden.current_manifest(store, "golden/") is None
    with pytest.raises(DatasetInvalid, match="would be empty"):
        golden.publish(store, "golden/", [], source="x")
    manifest = golden.publish(store, "golden/", [LabelledArticle.model_validate(demo_rows()[0])], source="x")
    store.put_bytes(manifest.key, b"{}", "application/jsonl")
    with pytest.raises(DatasetInvalid, match="does not match its manifest's sha256"):
        golden.load_articles(store, manifest.ref())


def test_golden_examples_use_the_live_prompt_builder_and_skip_foreign_categories():
    rows = demo_rows()[:3]
    articles = [LabelledArticle.model_validate(r) for r in rows]
    foreign = LabelledArticle.model_validate({**rows[0], "article_id": "x", "category_id": "iab-1"})
    examples, skipped = golden.examples([*articles, foreign], TAXONOMY, 512)
    assert skipped == 1 and len(examples) == 3
    prompt = build_prompt(articles[0].title, articles[0].text, 512)
    assert examples[0]["messages"][:-1] == prompt.messages
    assert examples[0]["messages"][-1]["content"] == TAXONOMY.by_id[rows[0]["category_id"]].label


# ---- golden articles never in training -------------------------------------------------------


def _settings() -> FineTuneSettings:
    return FineTuneSettings.model_validate(
        {
            "PIPELINE_BUCKET": BUCKET,
            "ACTIVE_MODEL_PARAMETER": "/article-categorizer/active-model",
            "COST_GUARD_USD": 50,
            "OPENAI_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-AbCdEf",
            "INPUT_TOKEN_BUDGET": 512,
        }
    )


def _no_openai() -> AsyncOpenAI:
    raise AssertionError("ExportDataset never calls OpenAI")


def _export_only_pipeline(store: RunStore) -> Pipeline:
    """ExportDataset reads and writes S3 only: no SSM, no OpenAI."""
    return Pipeline(_settings(), store, ssm=None, openai_client=_no_openai, prices=Prices.from_env())  # type: ignore[arg-type]


def _user_texts(store: RunStore, uri: str) -> set[str]:
    return {json.loads(line.text)["messages"][1]["content"] for line in store.lines([store.key_of(uri)])}


def test_export_leaves_every_golden_article_out_of_training_and_validation(store: RunStore):
    # GIVEN the demo corpus as labels, a syndicated copy of one article under another id, and
    # reviewed labels for 60 articles of which the golden share became golden v1
    rows = demo_rows()
    copy = {**rows[5], "article_id": "syndicated-copy-of-5"}
    store.put_bytes(
        "labels/cms.jsonl", "".join(json.dumps(r) + "\n" for r in [*rows, copy]).encode(), "application/jsonl"
    )
    _put_reviewed(store, rows[:60], decision="accept")
    chosen = golden.golden_share(_reviewed(store), 0.2)
    chosen_ids = {a.article_id for a in chosen}
    if rows[5]["article_id"] not in chosen_ids:  # make the copied article golden too (imported)
        chosen.append(LabelledArticle.model_validate(rows[5]))
        chosen_ids.add(rows[5]["article_id"])
    manifest = golden.publish(store, "golden/", chosen, source="labels/reviewed/")
    pipeline = _export_only_pipeline(store)
    # WHEN ExportDataset runs
    state = pipeline.export_dataset({"taxonomy_version": "demo-2", "run": {"execution_name": "run-golden"}})
    # THEN no golden article's prompt is in either split, nor the copy's, and the counts say so
    golden_prompts = {build_prompt(a.title, a.text, 512).messages[1]["content"] for a in chosen}
    exported = _user_texts(store, state["dataset"]["train"]) | _user_texts(store, state["dataset"]["validation"])
    assert exported and not exported & golden_prompts
    ref = state["dataset"]["golden"]
    assert ref["version"] == manifest.version and ref["key"] == manifest.key and ref["sha256"] == manifest.sha256
    assert ref["excluded_articles"] == len(chosen_ids)
    assert ref["excluded_prompts"] == 1  # the syndicated copy
    assert state["dataset"]["counts"]["train"] + state["dataset"]["counts"]["validation"] == 240 - len(chosen_ids)
    saved = store.get_json(store.key_of(state["dataset"]["manifest"]))
    assert saved["golden"]["version"] == 1 and saved["counts"]["golden_articles_excluded"] == len(chosen_ids)


def test_export_without_a_golden_set_is_unchanged(store: RunStore):
    store.put_bytes("labels/cms.jsonl", "".join(json.dumps(r) + "\n" for r in demo_rows()).encode(), "x")
    pipeline = _export_only_pipeline(store)
    state = pipeline.export_dataset({"taxonomy_version": "demo-2", "run": {"execution_name": "run-plain"}})
    assert state["dataset"]["golden"] is None
    assert state["dataset"]["counts"]["train"] + state["dataset"]["counts"]["validation"] == 240
