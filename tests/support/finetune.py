"""The fine-tuning pipeline's test data."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.paths import DEMO_ARTICLES


def demo_rows() -> list[dict[str, Any]]:
    """The labelled demo corpus: 240 articles, 30 for each of the demo-2 taxonomy's 8 categories."""
    return [json.loads(line) for line in DEMO_ARTICLES.read_text(encoding="utf-8").splitlines() if line.strip()]


def reviewed_label(
    row: dict[str, Any],
    *,
    category_id: str | None = None,
    decision: str = "correct",
    at: str = "2025-05-01T09:30:00+00:00",
    reason: str = "low_confidence",
) -> tuple[str, str]:
    """(key, line) of a reviewed label line as the review queue writes it (docs: issue 12's contract).

    `labels/reviewed/<YYYY-MM-DD>/<base64url(article_id)>-r<revision>.jsonl`, one LabelledArticle
    line with the text the model read and the human's category, plus the `review` object.
    """
    revision = int(row.get("version") or 0)
    human = category_id or row["category_id"]
    document = {
        "article_id": row["article_id"],
        "title": row["title"],
        "body": row["body"],
        "body_format": "text",
        "category_id": human,
        "version": revision,
        "updated_at": at,
        "review": {
            "decision": decision,
            "by": "editor@example.com",
            "at": at,
            "model_id": "ft:gpt-4o-mini:org:categorizer:live01",
            "predicted_category_id": row["category_id"] if decision == "correct" else human,
            "reason": reason,
        },
    }
    encoded = base64.urlsafe_b64encode(row["article_id"].encode()).decode().rstrip("=")
    return f"labels/reviewed/{at[:10]}/{encoded}-r{revision}.jsonl", json.dumps(document, ensure_ascii=False) + "\n"
