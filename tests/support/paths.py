"""Where the tests find the repository and the demo corpus."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Labelled articles written for the project (English and Japanese); the offline demo reads them too.
DEMO_ARTICLES = REPO / "devstack" / "local" / "demo" / "articles.jsonl"
