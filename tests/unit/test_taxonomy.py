"""Taxonomy files: validation with errors that name the row, bundled versions, logit_bias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from categorizer.errors import TaxonomyError
from categorizer.taxonomy import MAX_LOGIT_BIAS_KEYS, build_taxonomy, bundled_taxonomy, load_taxonomy_file
from categorizer.tokens import single_token_id


def rows(*labels: str) -> list[dict[str, str]]:
    return [{"label": label, "id": f"id{i}", "name": f"Name {i}"} for i, label in enumerate(labels)]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (("0", "1", "1"), "row 3 (id 'id2'): duplicate label '1' (first used in row 2)"),
        (("0", "1000"), "row 2 (id 'id1'): label '1000' is outside 0–999"),
        (("0", " 5"), "row 2 (id 'id1'): label ' 5' has surrounding whitespace"),
        (("007",), "row 1 (id 'id0'): label '007' has leading zeros"),
        (("-1",), "row 1 (id 'id0'): label '-1' is not a number 0–999"),
        (("x",), "row 1 (id 'id0'): label 'x' is not a number 0–999"),
        (("٣",), "row 1 (id 'id0'): label '٣' is not a number 0–999"),
    ],
)
def test_invalid_labels_are_rejected_with_the_row(labels: tuple[str, ...], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_taxonomy("bad", rows(*labels))


def test_duplicate_category_id_and_empty_name_are_rejected() -> None:
    with pytest.raises(TaxonomyError, match=r"row 2 \(id 'a'\): duplicate category id"):
        build_taxonomy("bad", [{"label": "0", "id": "a", "name": "A"}, {"label": "1", "id": "a", "name": "B"}])
    with pytest.raises(TaxonomyError, match=r"row 1 \(id 'a'\): the category name is empty"):
        build_taxonomy("bad", [{"label": "0", "id": "a", "name": " "}])


def test_more_than_1000_categories_is_rejected() -> None:
    many = [{"label": str(i % 1000), "id": f"c{i}", "name": "n"} for i in range(1001)]
    with pytest.raises(TaxonomyError, match="duplicate label"):
        build_taxonomy("big", many)


def test_every_label_0_to_999_is_one_token() -> None:
    assert all(single_token_id(str(n)) is not None for n in range(1000))
    assert single_token_id("1000") is None and single_token_id(" 42") is None


def test_bundled_taxonomies_load_and_are_valid() -> None:
    iab = bundled_taxonomy("iab-3.1")
    assert len(iab.categories) == 704
    assert "IAB Tech Lab" in iab.attribution
    assert iab.by_label["0"].name == "Attractions"
    bias = iab.logit_bias(10)
    assert bias is not None and len(bias) == 704 and set(bias.values()) == {10}


def test_unknown_version_names_the_bundled_ones() -> None:
    with pytest.raises(TaxonomyError, match=r"unknown taxonomy version 'nope'; bundled: .*iab-3\.1"):
        bundled_taxonomy("nope")


def test_logit_bias_is_omitted_past_the_api_key_limit() -> None:
    assert MAX_LOGIT_BIAS_KEYS == 1024
    small = build_taxonomy("s", rows("0", "1"))
    assert small.logit_bias(0) is None
    assert small.logit_bias(5) == {str(single_token_id("0")): 5, str(single_token_id("1")): 5}


def test_tsv_and_json_files(tmp_path: Path) -> None:
    tsv = tmp_path / "news-2.tsv"
    tsv.write_text("label\tid\tname\n0\tsports\tSports\n1\ttech\tTechnology\n", encoding="utf-8")
    taxonomy = load_taxonomy_file(tsv)
    assert taxonomy.version == "news-2" and taxonomy.by_id["tech"].label == "1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "b", "categories": rows("0", "0")}), encoding="utf-8")
    with pytest.raises(TaxonomyError, match="duplicate label"):
        load_taxonomy_file(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="cannot read taxonomy file"):
        load_taxonomy_file(broken)


def test_every_category_has_its_path_from_tier_1_and_parents_are_validated() -> None:
    # GIVEN the shipped IAB 3.1 file WHEN a tier-3 category's path is asked for
    iab = bundled_taxonomy("iab-3.1")
    tier3 = next(c for c in iab.categories if len(iab.path(c.id)) == 3)
    path = iab.path(tier3.id)
    # THEN it runs from its tier-1 ancestor (no parent) to it, by IAB's unique ids
    assert path[0].parent is None and path[-1] == tier3 and path[1].id == tier3.parent
    assert iab.path("151") == (iab.by_id["150"], iab.by_id["151"])  # Attractions > Amusement and Theme Parks
    # AND the demo taxonomy has two levels
    demo = bundled_taxonomy("demo-2")
    assert [c.id for c in demo.path("food")] == ["lifestyle", "food"]
    # AND an unknown parent or a cycle is refused, naming the row
    with pytest.raises(TaxonomyError, match=r"row 1 \(id 'a'\): parent 'zz' is not a category id"):
        build_taxonomy("t", [{"label": "0", "id": "a", "name": "A", "parent": "zz"}])
    cycle = [
        {"label": "0", "id": "a", "name": "A", "parent": "b"},
        {"label": "1", "id": "b", "name": "B", "parent": "a"},
    ]
    with pytest.raises(TaxonomyError, match="cycle"):
        build_taxonomy("t", cycle)
