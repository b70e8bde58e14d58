"""The webhook signature: HMAC-SHA256 over the timestamp and the raw body (docs/ingest.md, "Signature")."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_PREFIX = "sha256="
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `timestamp` + "." + the raw body."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers a sender adds (the publish CLI, tests)."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def webhook_secrets(secret_value: str) -> list[bytes]:
    """The secret holds the shared secret itself, or JSON {"webhook_secret", "previous_webhook_secret"}.

    The previous secret keeps senders working while a rotation rolls out.
    """
    text = secret_value.strip()
    if not text.startswith("{"):
        secrets = [text]
    else:
        document = json.loads(text)
        secrets = [document.get("webhook_secret"), document.get("previous_webhook_secret")]
    usable = [s.encode("utf-8") for s in secrets if isinstance(s, str) and s]
    if not usable:
        raise ValueError("the webhook secret is empty")
    return usable


def verify_signature(
    secrets: Sequence[bytes],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int,
) -> str | None:
    """None when the request is authentic; otherwise why not (for logs only, never for the caller)."""
    if not timestamp or not signature:
        return "missing_signature_headers"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed_timestamp"
    if abs(now - int(timestamp)) > tolerance_seconds:
        return "timestamp_outside_tolerance"
    presented = signature.strip().encode("utf-8", "replace")
    # Every secret is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"), presented) for secret in secrets]
    return None if any(matches) else "signature_mismatch"
