"""The fine-tuning pipeline's test data."""

from __future__ import annotations

import json
from typing import Any

from tests.support.paths import DEMO_ARTICLES


def demo_rows() -> list[dict[str, Any]]:
    """The labelled demo corpus: 240 articles, 30 for each of the demo-2 taxonomy's 8 categories."""
    return [json.loads(line) for line in DEMO_ARTICLES.read_text(encoding="utf-8").splitlines() if line.strip()]
