"""Failure classes that decide where a record goes (docs/design.md invariant 4).

A `PermanentError` can never succeed on retry: the record goes to the DLQ at once with
`reason`. Anything else is transient: it is retried (batch item failure) until the
receive count runs out, then dead-lettered with the reason `retries_exhausted`.
"""

from __future__ import annotations

import re


class PermanentError(Exception):
    """The record can never succeed; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TaxonomyError(ValueError):
    """A taxonomy file is invalid; the message names the offending row."""


class NoValidLabelError(PermanentError):
    def __init__(self, tokens: list[str]) -> None:
        super().__init__("no_valid_label", f"no valid label among the model's top tokens {tokens!r}")


_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_*-]{4,}|Bearer\s+\S+)")


def redact(message: str, limit: int = 1000) -> str:
    """Error text that is safe to log and to put on a DLQ message: no key-like strings, bounded."""
    return _SECRET_LIKE.sub("[redacted]", message)[:limit]
