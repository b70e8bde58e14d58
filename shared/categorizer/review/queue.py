"""Which results enter the review queue (docs/review.md "Which rows are queued").

Every result under the low-confidence threshold, and a random share of the confident ones, so that
accuracy can be estimated without bias: the low-confidence stratum is reviewed whole, the confident
one at the sample share. The draw is a hash of the article and revision, not a random number, so a
retried or shared write of the same revision makes the same choice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from categorizer.models import ReviewReason

_HASH_SPACE = float(2**64)


def sample_point(article_id: str, revision: int) -> float:
    """A uniform point in [0, 1) fixed by the article and its revision."""
    digest = hashlib.sha256(f"{article_id}\n{revision}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def review_reason(
    article_id: str, revision: int, probability: float, *, threshold: float, sample_share: float
) -> ReviewReason | None:
    """Why this result is queued for review, or None when it is not."""
    if probability < threshold:
        return "low_confidence"
    if sample_point(article_id, revision) < sample_share:
        return "sample"
    return None


def queue_timestamp(moment: datetime) -> str:
    """Fixed-width ISO 8601 in UTC (microseconds always written), so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
