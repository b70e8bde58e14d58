"""The golden set: a versioned evaluation set in the pipeline bucket that no model trains on.

    golden/v<N>.jsonl     LabelledArticle lines (one per article), written once, never overwritten
    golden/manifest.json  the current version: {version, key, count, sha256, created_at, source}

A new version is the current one updated with new articles (their latest revision wins), so a
run's report names exactly the set both models were scored on. Articles come from reviewed
label lines (labels/reviewed/, one per reviewed article revision): a deterministic hash share
of the reviewed articles, so a rebuild picks the same ones. ExportDataset leaves every article
of the current version out of training and validation; Evaluate scores the candidate and the
active model on it (docs/finetuning.md#golden-set).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from categorizer.finetune import dataset as ds
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.models import GoldenRef, LabelledArticle
from categorizer.prompt import build_prompt, build_training_example
from categorizer.taxonomy import Taxonomy

if TYPE_CHECKING:
    from categorizer.finetune.storage import RunStore

MANIFEST_NAME = "manifest.json"
REVIEWED_PREFIX = "labels/reviewed/"
# Share of reviewed articles that become golden: enough to test on, most corrections still train.
DEFAULT_SHARE = 0.2
_SHARE_BUCKETS = 10_000


class GoldenManifest(BaseModel):
    version: int = Field(ge=1)
    key: str
    count: int = Field(ge=1)
    sha256: str
    created_at: datetime
    source: str

    def ref(self) -> GoldenRef:
        return GoldenRef(version=self.version, key=self.key, sha256=self.sha256, count=self.count)


def in_share(article_id: str, share: float) -> bool:
    """Deterministic in the id alone: the same article is golden in every build with this share."""
    bucket = int.from_bytes(hashlib.sha256(article_id.encode("utf-8")).digest()[:8], "big") % _SHARE_BUCKETS
    return bucket < share * _SHARE_BUCKETS


def golden_share(reviewed: Iterable[LabelledArticle], share: float) -> list[LabelledArticle]:
    """The latest revision of each reviewed article whose id falls in the share."""
    return [a for a in ds.latest_revisions(reviewed).values() if in_share(a.article_id, share)]


def current_manifest(store: RunStore, prefix: str) -> GoldenManifest | None:
    key = f"{prefix}{MANIFEST_NAME}"
    # Listed first: without s3:ListBucket a missing key reads as AccessDenied, not NoSuchKey.
    if key not in store.label_keys(key, suffix=""):
        return None
    return GoldenManifest.model_validate(store.get_json(key))


def load_articles(store: RunStore, ref: GoldenRef) -> list[LabelledArticle]:
    """The version's articles; its bytes must hash to what the manifest recorded."""
    body = store.open(ref.key)["Body"].read()
    if hashlib.sha256(body).hexdigest() != ref.sha256:
        raise DatasetInvalid(f"{store.uri(ref.key)} does not match its manifest's sha256 (golden v{ref.version})")
    articles, _ = ds.parse_labelled(
        ds.SourceLine(f"{ref.key}:{n}", line) for n, line in enumerate(body.decode("utf-8").splitlines(), start=1)
    )
    return articles


def publish(
    store: RunStore, prefix: str, articles: Sequence[LabelledArticle], source: str, *, replace: bool = False
) -> GoldenManifest:
    """Write the next version: the current set (unless `replace`) updated with `articles`."""
    current = current_manifest(store, prefix)
    merged = [] if current is None or replace else load_articles(store, current.ref())
    members = sorted(ds.latest_revisions([*merged, *articles]).values(), key=lambda a: a.article_id)
    if not members:
        raise DatasetInvalid("the golden set would be empty: no articles to add")
    body = "".join(json.dumps(a.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n" for a in members)
    encoded = body.encode("utf-8")
    version = 1 if current is None else current.version + 1
    manifest = GoldenManifest(
        version=version,
        key=f"{prefix}v{version}.jsonl",
        count=len(members),
        sha256=hashlib.sha256(encoded).hexdigest(),
        created_at=datetime.now(UTC),
        source=source,
    )
    # The version first, then the pointer: a reader never sees a manifest naming a missing file.
    store.put_bytes(manifest.key, encoded, "application/jsonl")
    store.put_json(f"{prefix}{MANIFEST_NAME}", manifest.model_dump(mode="json"))
    return manifest


def prompt_fingerprints(articles: Iterable[LabelledArticle], input_token_budget: int) -> frozenset[str]:
    """What the export compares with: an article with a golden prompt under another id is golden too."""
    return frozenset(build_prompt(a.title, a.text, input_token_budget).fingerprint for a in articles)


def examples(
    articles: Iterable[LabelledArticle], taxonomy: Taxonomy, input_token_budget: int
) -> tuple[list[ds.Example], int]:
    """Golden articles as evaluation examples for `taxonomy` (docs/design.md invariant 1: the live builder).

    Returns (examples, skipped): an article whose category is not in this taxonomy is skipped.
    """
    built: list[ds.Example] = []
    skipped = 0
    for article in articles:
        category = taxonomy.by_id.get(article.category_id)
        if category is None:
            skipped += 1
            continue
        prompt = build_prompt(article.title, article.text, input_token_budget)
        built.append(build_training_example(prompt, category.label))
    return built, skipped
