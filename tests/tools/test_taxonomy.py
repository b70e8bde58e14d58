"""`python -m tools taxonomy convert-iab`: IAB's TSV layout → the bundled taxonomy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from categorizer.errors import TaxonomyError
from categorizer.taxonomy import BUNDLED_DIR, bundled_taxonomy, load_taxonomy_file
from tools.taxonomy import main, to_json

# IAB's layout (two header rows; Unique ID, Parent, Name, Tier 1-4, Extension), CRLF line ends,
# with categories made up for the test.
HEADER = [
    ["Relational ID System", "", "", "Content Taxonomy v3.1 Tiered Categories", "", "", "", "Extension"],
    ["Unique ID", "Parent", "Name", "Tier 1", "Tier 2", "Tier 3", "Tier 4", ""],
]
ROWS = [
    ["900", "", "Gardening", "Gardening", "", "", "", ""],
    ["901", "900", "Roses", "Gardening", "Roses", "", "", ""],
    ["", "", "", "", "", "", "", ""],
    ["902", "901", "Climbing Roses", "Gardening", "Roses", " Climbing Roses ", "", ""],
    ["950", "", "Chess", "Chess", "", "", "", ""],
]


def _write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.write_bytes("".join("\t".join(row) + "\r\n" for row in HEADER + rows).encode("utf-8"))
    return path


def test_convert_iab_labels_rows_in_file_order_with_tier_path_names(tmp_path: Path) -> None:
    # GIVEN a TSV in IAB's layout with a blank row
    tsv = _write_tsv(tmp_path / "iab.tsv", ROWS)
    output = tmp_path / "iab-3.1.json"
    # WHEN it is converted
    assert main(["convert-iab", str(tsv), "--output", str(output)]) == 0
    # THEN the file loads as a taxonomy: labels 0… in row order, IAB ids and parents, tier paths as names
    taxonomy = load_taxonomy_file(output)
    assert taxonomy.version == "iab-3.1"
    assert [(c.label, c.id, c.name, c.parent) for c in taxonomy.categories] == [
        ("0", "900", "Gardening", None),
        ("1", "901", "Gardening > Roses", "900"),
        ("2", "902", "Gardening > Roses > Climbing Roses", "901"),
        ("3", "950", "Chess", None),
    ]
    # AND the leaf's path runs from tier 1 down to it
    assert [c.id for c in taxonomy.path("902")] == ["900", "901", "902"]
    # AND it carries IAB's attribution (CC BY 3.0) and the label range it used
    assert "attribution: IAB Tech Lab" in taxonomy.attribution
    assert "CC BY 3.0" in taxonomy.attribution
    assert "labels 0-3 in file order" in taxonomy.attribution


def test_convert_iab_rejects_a_repeated_unique_id_naming_the_row(tmp_path: Path) -> None:
    # GIVEN a TSV whose third category repeats the first one's Unique ID
    tsv = _write_tsv(tmp_path / "iab.tsv", [ROWS[0], ROWS[1], ["900", "", "Again", "Again", "", "", "", ""]])
    # WHEN it is converted THEN the taxonomy validation names the row, and no file is written
    output = tmp_path / "out.json"
    with pytest.raises(TaxonomyError, match=r"row 3 \(id '900'\): duplicate category id"):
        main(["convert-iab", str(tsv), "--output", str(output)])
    assert not output.exists()


def test_bundled_iab_file_is_exactly_what_the_converter_writes() -> None:
    # GIVEN the shipped iab-3.1.json, THEN it is the converter's serialisation of itself, so a
    # re-conversion of IAB's TSV produces the same bytes (no hand edits in the shipped file)
    shipped = BUNDLED_DIR / "iab-3.1.json"
    assert to_json(bundled_taxonomy("iab-3.1")) == shipped.read_text(encoding="utf-8")
