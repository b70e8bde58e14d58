"""`python -m tools taxonomy convert-iab FILE.tsv`: the IAB Content Taxonomy 3.1 TSV → a bundled taxonomy.

Writes `shared/categorizer/taxonomies/iab-3.1.json` (or `--output`), the file the layer ships:
labels 0… in the TSV's row order, the id is IAB's Unique ID, the parent IAB's Parent (absent at
tier 1, so every result carries its IAB path from tier 1 to the leaf), and the name is the tier
path ("Attractions > Amusement and Theme Parks") so sibling names stay distinct for people reading
results. The rows go through `build_taxonomy`, the validation every taxonomy gets on load
(docs/design.md invariant 2). IAB's licence (CC BY 3.0) requires the attribution the file carries.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

from categorizer.taxonomy import BUNDLED_DIR, Taxonomy, build_taxonomy

IAB_VERSION = "iab-3.1"
IAB_NAME = "IAB Tech Lab Content Taxonomy 3.1"
IAB_SOURCE = "https://iabtechlab.com/standards/content-taxonomy/"
# IAB's TSV: two header rows, then Unique ID, Parent, Name, Tier 1 … Tier 4, Extension.
_HEADER_ROWS = 2
_TIER_COLUMNS = slice(3, 7)


def iab_rows(path: Path) -> list[dict[str, str]]:
    """The TSV's categories as {label, id, name[, parent]} rows, labels in file order."""
    rows: list[dict[str, str]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for _ in range(_HEADER_ROWS):
            next(reader)
        for record in reader:
            if not record or not record[0].strip():
                continue
            tiers = [tier.strip() for tier in record[_TIER_COLUMNS] if tier.strip()]
            row = {"label": str(len(rows)), "id": record[0].strip(), "name": " > ".join(tiers)}
            if parent := record[1].strip():
                row["parent"] = parent
            rows.append(row)
    return rows


def convert_iab(path: Path) -> Taxonomy:
    rows = iab_rows(path)
    attribution = (
        f"Derived from the {IAB_NAME} ({IAB_SOURCE}), licensed CC BY 3.0, attribution: IAB Tech Lab. "
        f"Converted by article-categorizer: labels 0-{len(rows) - 1} in file order; name = tier path; "
        "parent = IAB's Parent id."
    )
    return build_taxonomy(IAB_VERSION, rows, name=IAB_NAME, attribution=attribution)


def to_json(taxonomy: Taxonomy) -> str:
    """The bundled file's layout: `load_taxonomy_file` reads it back (a tier-1 category has no parent key)."""
    return json.dumps(taxonomy.model_dump(mode="json", exclude_none=True), indent=1, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools taxonomy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-iab", help="convert IAB's Content Taxonomy 3.1 TSV")
    convert.add_argument("tsv", type=Path, help="IAB's TSV file (e.g. ../shared/data/iab-content-taxonomy-3.1.tsv)")
    convert.add_argument("--output", type=Path, default=BUNDLED_DIR / f"{IAB_VERSION}.json")
    args = parser.parse_args(argv)
    taxonomy = convert_iab(args.tsv)
    args.output.write_text(to_json(taxonomy), encoding="utf-8")
    print(f"{args.output}: {taxonomy.version}, {len(taxonomy.categories)} categories")
    return 0
