"""Pure pipeline logic: dataset build and validation, metrics, promotion decision."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from categorizer.finetune import dataset as ds
from categorizer.finetune import file_rules
from categorizer.finetune.errors import CostGuardExceeded, DatasetInvalid, TransientError
from categorizer.finetune.evaluation import Scored, compute_metrics, expected_calibration_error, macro_f1
from categorizer.finetune.models import LabelledArticle, PipelineConfig, PipelineState, RunInfo
from categorizer.finetune.promotion import decide
from categorizer.models import ActiveModel
from categorizer.pricing import Prices
from categorizer.prompt import build_prompt, build_training_example
from categorizer.taxonomy import bundled_taxonomy
from tests.support.finetune import demo_rows
from tests.support.paths import REPO

TAXONOMY = bundled_taxonomy("demo-2")


def _articles(rows):
    return [LabelledArticle.model_validate(r) for r in rows]


def _build(articles, **overrides):
    options = {"input_token_budget": 512, "validation_fraction": 0.2, "seed": 1, "min_examples_per_class": 10}
    return ds.build_dataset(articles, TAXONOMY, **(options | overrides))


def test_examples_come_from_the_live_prompt_builder():
    # GIVEN an HTML article, WHEN exported, THEN its example is build_prompt's messages + the label
    row = next(r for r in demo_rows() if "<p>" in r["body"])
    article = LabelledArticle.model_validate(row)
    dataset = _build(_articles(demo_rows()))
    expected = build_training_example(
        build_prompt(article.title, article.text, 512), TAXONOMY.by_id[row["category_id"]].label
    )
    assert expected in dataset.train + dataset.validation
    assert "<p>" not in expected["messages"][1]["content"]


def test_split_is_stratified_and_seeded():
    articles = _articles(demo_rows())
    first, again, other = _build(articles), _build(articles), _build(articles, seed=2)
    assert first.train == again.train and first.validation == again.validation
    assert first.validation != other.validation
    assert all(c.validation == 6 and c.train == 24 for c in first.class_counts.values())
    # The demo labels articles with leaves only: its tier-1 parents have no examples.
    parents = {c.parent for c in bundled_taxonomy("demo-2").categories if c.parent is not None}
    assert first.classes_without_examples == len(parents) == 3 and first.too_few == []


def test_duplicates_latest_revision_wins_and_conflicting_prompts_are_dropped():
    rows = demo_rows()[:40]
    relabelled = {**rows[0], "version": rows[0]["version"] + 1, "category_id": "travel"}
    copy = {**rows[1], "article_id": "syndicated-copy"}  # same text, same label
    clash = {
        **rows[2],
        "article_id": "clash",
        "category_id": "travel" if rows[2]["category_id"] != "travel" else "food",
    }
    dataset = _build(_articles([*rows, relabelled, copy, clash]))
    assert dataset.counts["duplicate_records"] == 1
    assert dataset.counts["duplicate_prompts"] == 2  # the copy and the clash collapse onto their originals
    assert dataset.counts["conflicting_prompts_dropped"] == 1
    assert dataset.counts["examples"] == 40 - 1  # rows[2] and its clash are gone
    examples = dataset.train + dataset.validation
    first = build_prompt(rows[0]["title"], LabelledArticle.model_validate(rows[0]).text, 512)
    assert build_training_example(first, TAXONOMY.by_id["travel"].label) in examples


def test_small_classes_are_named():
    rows = [r for r in demo_rows() if r["category_id"] != "food"] + [
        r for r in demo_rows() if r["category_id"] == "food"
    ][:4]
    dataset = _build(_articles(rows))
    assert dataset.too_few == ["food"]


def test_chat_checks_catch_what_openai_rejects():
    good = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "3"},
        ]
    }
    bad: list[dict[str, Any]] = [
        {"messages": []},
        {"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "3"}]},
        {"messages": [{"role": "user", "content": "u", "extra": 1}, {"role": "assistant", "content": "3"}]},
        {"messages": [{"role": "user", "content": "u"}]},
        {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "42"}]},
        {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "3"}]},
    ]
    problems = ds.check_chat_examples([good, *bad], [c.label for c in TAXONOMY.categories], max_example_tokens=50)
    assert len(problems) == len(bad)
    assert [p.split(":")[0] for p in problems] == [f"example {i}" for i in range(2, 8)]
    assert "'42' is not a label" in problems[4]
    assert "per-example limit" in problems[5]


def test_invalid_lines_fail_the_export_with_their_location():
    lines = [ds.SourceLine("labels/a.jsonl:1", '{"article_id": "a"}'), ds.SourceLine("labels/a.jsonl:2", "not json")]
    with pytest.raises(DatasetInvalid, match=r"2 invalid labelled record\(s\): labels/a.jsonl:1: .*labels/a.jsonl:2"):
        ds.parse_labelled(lines)


def test_cost_estimate_is_tokens_times_epochs_times_price():
    dataset = _build(_articles(demo_rows()))
    estimate = ds.estimate_tokens(dataset, 3, Prices.from_env(), 65_536)
    per_example = [file_rules.example_tokens(e["messages"]) for e in dataset.train]
    assert estimate.train_tokens == sum(per_example)
    assert estimate.billed_training_tokens == 3 * sum(per_example)
    assert estimate.estimated_cost_usd == pytest.approx(3 * sum(per_example) * 3.00 / 1e6, abs=1e-6)


def test_metrics_on_a_known_case():
    scored = [
        Scored("0", ["0", "1", "2"], 0.9, 1.0, 0.0),
        Scored("0", ["1", "0"], 0.6, 0.9, 0.0),
        Scored("1", ["1"], 0.7, 0.8, 0.0),
        Scored("2", [], 0.0, 0.0, 0.0),
    ]
    metrics = compute_metrics(scored)
    assert metrics.top1 == 0.5 and metrics.top3 == 0.75 and metrics.no_valid_label == 1
    # F1: class 0 = 2·1/(2+1), class 1 = 2·1/(1+2), class 2 = 0
    assert metrics.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics.coverage == pytest.approx(2.7 / 4)
    # bins: 0.9 right, 0.6 wrong, 0.7 right, 0.0 wrong → (0.1 + 0.6 + 0.3 + 0) / 4
    assert metrics.ece == pytest.approx(0.25)
    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert math.isclose(expected_calibration_error([1.0, 1.0], [True, True]), 0.0)


def test_promotion_decision():
    active = ActiveModel(model_id="ft:old", taxonomy_version="demo-2", metrics={"top1": 0.8})
    assert decide({"top1": 0.5}, None, force=False).promote
    assert decide({"top1": 0.8}, active, force=False).promote  # not worse
    assert not decide({"top1": 0.79}, active, force=False).promote
    assert decide({"top1": 0.1}, active, force=True).promote
    assert decide({"top1": 0.1}, active.model_copy(update={"metrics": {}}), force=False).promote


EVENTS = REPO / "events" / "finetune"
ASL = json.loads((REPO / "statemachine" / "finetune.asl.json").read_text(encoding="utf-8"))


def test_sample_events_match_the_task_models():
    PipelineConfig.model_validate(json.loads((EVENTS / "state-machine-input.json").read_text()))
    export = json.loads((EVENTS / "export-dataset.json").read_text())
    RunInfo.model_validate(export.pop("run"))
    PipelineConfig.model_validate(export)
    for name in ("upload-files", "start-job", "check-job", "evaluate", "promote"):
        PipelineState.model_validate_json((EVENTS / f"{name}.json").read_text())


def test_backfill_after_promote_is_off_by_default_and_validated_with_the_run_input():
    # GIVEN the sample input, WHEN parsed, THEN no re-categorisation is asked for
    assert PipelineConfig.model_validate({"taxonomy_version": "demo-2"}).backfill_after_promote is None
    # WHEN a run asks for one, THEN it is a BackfillStateMachine input
    config = PipelineConfig.model_validate(
        {"taxonomy_version": "demo-2", "backfill_after_promote": {"all": True, "max_cost_usd": 25}}
    )
    assert config.backfill_after_promote is not None and config.backfill_after_promote.max_cost_usd == 25
    # AND an input the backfill would refuse is refused with the run's (before anything is paid for)
    for bad in ({}, {"all": True, "prefix": "s3://b/archive/"}, {"all": True, "max_cost": 5}):
        with pytest.raises(ValidationError):
            PipelineConfig.model_validate({"taxonomy_version": "demo-2", "backfill_after_promote": bad})


def test_every_task_retries_transient_errors_and_catches_into_the_failure_state():
    tasks = {name: state for name, state in ASL["States"].items() if state["Type"] == "Task"}
    assert set(tasks) == {"ExportDataset", "UploadFiles", "StartJob", "CheckJob", "Evaluate", "Promote"}
    for state in tasks.values():
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert {TransientError.__name__, "Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried
        assert not retried & {DatasetInvalid.__name__, CostGuardExceeded.__name__}  # never retried
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PipelineFailed"}]
        assert state["TimeoutSeconds"] > 0
    assert ASL["TimeoutSeconds"] > 0
    assert ASL["States"]["WaitForJob"]["SecondsPath"] == "$.config.poll_seconds"
