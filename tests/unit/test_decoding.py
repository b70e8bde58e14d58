"""Decoding the one completion token's top_logprobs (docs/design.md invariant 3)."""

from __future__ import annotations

import math

import pytest

from categorizer.decoding import decode_top_logprobs
from categorizer.errors import NoValidLabelError
from categorizer.taxonomy import build_taxonomy

TAXONOMY = build_taxonomy("t", [{"label": str(n), "id": f"c{n}", "name": f"Category {n}"} for n in (0, 6, 42, 999)])


def lp(p: float) -> float:
    return math.log(p)


def test_junk_tokens_are_dropped_and_the_rest_renormalised() -> None:
    # GIVEN top_logprobs with valid labels mixed with junk: a spaced label, a two-token number, blanks, words
    top = [
        ("42", lp(0.5)),
        (" six", lp(0.1)),
        ("1000", lp(0.1)),
        (" ", lp(0.05)),
        ("6", lp(0.2)),
        ("abc", lp(0.05)),
    ]
    # WHEN decoded
    decoded = decode_top_logprobs(top, TAXONOMY)
    # THEN only labels remain, best first, summing to 1, and coverage is the raw mass on labels
    assert [p.label for p in decoded.predictions] == ["42", "6"]
    assert sum(p.probability for p in decoded.predictions) == pytest.approx(1.0)
    assert decoded.predictions[0].probability == pytest.approx(0.5 / 0.7)
    assert decoded.predictions[0].category_id == "c42"
    assert decoded.coverage == pytest.approx(0.7)


def test_leading_space_label_is_not_a_label() -> None:
    decoded = decode_top_logprobs([(" 6", lp(0.9)), ("0", lp(0.05))], TAXONOMY)
    assert [p.label for p in decoded.predictions] == ["0"]
    assert decoded.predictions[0].probability == pytest.approx(1.0)
    assert decoded.coverage == pytest.approx(0.05)


def test_label_outside_the_taxonomy_is_ignored() -> None:
    decoded = decode_top_logprobs([("7", lp(0.6)), ("999", lp(0.4))], TAXONOMY)
    assert [p.label for p in decoded.predictions] == ["999"]


def test_no_valid_label_raises_a_permanent_error_naming_the_tokens() -> None:
    with pytest.raises(NoValidLabelError) as caught:
        decode_top_logprobs([(" six", lp(0.7)), ("1000", lp(0.3))], TAXONOMY)
    assert caught.value.reason == "no_valid_label"
    assert "' six'" in caught.value.detail


def test_empty_top_logprobs_raises() -> None:
    with pytest.raises(NoValidLabelError):
        decode_top_logprobs([], TAXONOMY)


def test_duplicate_token_counts_once() -> None:
    decoded = decode_top_logprobs([("6", lp(0.5)), ("6", lp(0.5)), ("0", lp(0.25))], TAXONOMY)
    assert decoded.coverage == pytest.approx(0.75)
