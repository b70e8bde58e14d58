"""Taxonomies: label number 0–999 ↔ category id ↔ name (docs/design.md invariant 2).

A taxonomy file is JSON (`{"version", "name", "attribution", "categories": [{label, id, name,
parent}]}`) or TSV (header `label<TAB>id<TAB>name[<TAB>parent]`, version from the file name).
`parent` is the id of the category one tier up (empty or absent at tier 1), so every result
carries its path from tier 1 to the leaf (`Taxonomy.path`): ad platforms target by IAB's
tier-1 ids. Every label must be
the canonical decimal form of 0–999, which o200k_base encodes as exactly one token.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from categorizer.errors import TaxonomyError
from categorizer.tokens import single_token_id

MAX_CATEGORIES = 1000
MAX_LOGIT_BIAS_KEYS = 1024  # the chat completions API's limit
BUNDLED_DIR = Path(__file__).parent / "taxonomies"


class Category(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    id: str
    name: str
    parent: str | None = None  # the id one tier up; None at tier 1


class Taxonomy(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str = Field(min_length=1, max_length=64)
    name: str = ""
    attribution: str = ""
    categories: tuple[Category, ...]

    @functools.cached_property
    def by_label(self) -> dict[str, Category]:
        return {c.label: c for c in self.categories}

    @functools.cached_property
    def by_id(self) -> dict[str, Category]:
        return {c.id: c for c in self.categories}

    @functools.cached_property
    def label_token_ids(self) -> dict[str, int]:
        return {c.label: _label_token_id(c.label) for c in self.categories}

    @functools.cached_property
    def logit_bias_keys(self) -> tuple[str, ...]:
        """The label tokens as `logit_bias` keys, built once per taxonomy (every request sends them)."""
        return tuple(str(token_id) for token_id in self.label_token_ids.values())

    @functools.cached_property
    def widest_category(self) -> Category:
        """The category whose id and name take the most bytes: the worst case of a result row's size."""
        return max(self.categories, key=_stored_bytes)

    @functools.cached_property
    def deepest_category(self) -> Category:
        """The category whose id and name plus its path's take the most bytes: a row's worst best prediction."""
        return max(self.categories, key=lambda c: _stored_bytes(c) + sum(map(_stored_bytes, self.path(c.id))))

    def path(self, category_id: str) -> tuple[Category, ...]:
        """Tier 1 down to the category (validated on build: parents exist, no cycles)."""
        chain = [self.by_id[category_id]]
        while chain[-1].parent is not None:
            chain.append(self.by_id[chain[-1].parent])
        return tuple(reversed(chain))

    def logit_bias(self, bias: int) -> dict[str, int] | None:
        """Raise every label token, where the API allows that many keys; None otherwise."""
        if bias == 0 or len(self.categories) > MAX_LOGIT_BIAS_KEYS:
            return None
        return dict.fromkeys(self.logit_bias_keys, bias)  # a new dict per request: callers own it


def _label_token_id(label: str) -> int:
    token_id = single_token_id(label)
    if token_id is None:  # validated on load; kept as a guard for hand-built instances
        raise TaxonomyError(f"label {label!r} is not a single o200k_base token")
    return token_id


def build_taxonomy(
    version: str, rows: Iterable[Mapping[str, Any]], *, name: str = "", attribution: str = ""
) -> Taxonomy:
    """Validate rows and build a taxonomy; every error names the row (1-based) and its id."""
    categories: list[Category] = []
    seen_labels: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for row_number, row in enumerate(rows, start=1):
        label = str(row.get("label", ""))
        category_id = str(row.get("id", "")).strip()
        category_name = str(row.get("name", "")).strip()
        where = f"row {row_number} (id {category_id!r})"
        if not category_id:
            raise TaxonomyError(f"row {row_number}: the category id is empty")
        if not category_name:
            raise TaxonomyError(f"{where}: the category name is empty")
        if label != label.strip():
            raise TaxonomyError(f"{where}: label {label!r} has surrounding whitespace; labels carry no spaces")
        if not label.isascii() or not label.isdigit():
            raise TaxonomyError(f"{where}: label {label!r} is not a number 0–999")
        if int(label) > 999:
            raise TaxonomyError(f"{where}: label {label!r} is outside 0–999")
        if str(int(label)) != label:
            raise TaxonomyError(f"{where}: label {label!r} has leading zeros; write {int(label)}")
        if single_token_id(label) is None:
            raise TaxonomyError(f"{where}: label {label!r} is not a single o200k_base token")
        if label in seen_labels:
            raise TaxonomyError(f"{where}: duplicate label {label!r} (first used in row {seen_labels[label]})")
        if category_id in seen_ids:
            raise TaxonomyError(f"{where}: duplicate category id (first used in row {seen_ids[category_id]})")
        seen_labels[label] = row_number
        seen_ids[category_id] = row_number
        parent = str(row.get("parent") or "").strip() or None
        categories.append(Category(label=label, id=category_id, name=category_name, parent=parent))
    if not categories:
        raise TaxonomyError(f"taxonomy {version!r} has no categories")
    _check_parents(categories, seen_ids)
    if len(categories) > MAX_CATEGORIES:
        raise TaxonomyError(f"taxonomy {version!r} has {len(categories)} categories; at most {MAX_CATEGORIES}")
    return Taxonomy(version=version, name=name, attribution=attribution, categories=tuple(categories))


def _check_parents(categories: list[Category], rows: Mapping[str, int]) -> None:
    parents = {c.id: c.parent for c in categories}
    for category in categories:
        where = f"row {rows[category.id]} (id {category.id!r})"
        if category.parent is not None and category.parent not in parents:
            raise TaxonomyError(f"{where}: parent {category.parent!r} is not a category id of the taxonomy")
        seen = {category.id}
        ancestor = category.parent
        while ancestor is not None:
            if ancestor in seen:
                raise TaxonomyError(f"{where}: its parents form a cycle through {ancestor!r}")
            seen.add(ancestor)
            ancestor = parents[ancestor]


def load_taxonomy_file(path: Path) -> Taxonomy:
    try:
        if path.suffix == ".tsv":
            with path.open(encoding="utf-8", newline="") as handle:
                return build_taxonomy(path.stem, csv.DictReader(handle, delimiter="\t"))
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("categories"), list):
        raise TaxonomyError(f"{path}: expected an object with a 'categories' list")
    return build_taxonomy(
        str(document.get("version") or path.stem),
        document["categories"],
        name=str(document.get("name", "")),
        attribution=str(document.get("attribution", "")),
    )


@functools.cache
def bundled_taxonomy(version: str) -> Taxonomy:
    """A taxonomy shipped in the layer, by version (the active-model record names it)."""
    for path in sorted(BUNDLED_DIR.glob("*.json")):
        taxonomy = load_taxonomy_file(path)
        if taxonomy.version == version:
            return taxonomy
    known = ", ".join(sorted(load_taxonomy_file(p).version for p in BUNDLED_DIR.glob("*.json")))
    raise TaxonomyError(f"unknown taxonomy version {version!r}; bundled: {known}")


def _stored_bytes(category: Category) -> int:
    """What a prediction of this category stores of it: its id and name."""
    return len(category.name.encode()) + len(category.id.encode())
