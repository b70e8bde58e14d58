"""The webhook signature: HMAC-SHA256 over the request's canonical string (docs/ingest.md, "Signature").

The canonical string covers everything that changes what a request means: the method, the
path, the query string, the timestamp and the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_PREFIX = "sha256="
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# More query parameters than any request needs: parse_qsl refuses them instead of building a huge list.
MAX_QUERY_PARAMETERS = 16


def query_parameters(query: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a raw query string; ValueError when malformed or too many."""
    return parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=MAX_QUERY_PARAMETERS)


def canonical_query(query: str) -> str:
    """The pairs sorted and percent-encoded one way (RFC 3986 unreserved characters kept), so that
    how a client or API Gateway happens to encode the query does not change the signature."""
    return urlencode(sorted(query_parameters(query)), quote_via=quote)


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers besides the timestamp."""

    method: str
    path: str  # as the API receives it (API Gateway's rawPath)
    query: str  # the raw query string, without "?"
    body: bytes

    def canonical(self, timestamp: str) -> bytes:
        """METHOD, path, canonical query, timestamp, each followed by a line feed; then the raw body."""
        head = "".join(f"{part}\n" for part in (self.method.upper(), self.path, canonical_query(self.query), timestamp))
        return head.encode("utf-8") + self.body


def sign(secret: bytes, timestamp: str, request: SignedRequest) -> str:
    """`sha256=` + hex HMAC-SHA256 over the canonical request."""
    return SIGNATURE_PREFIX + hmac.new(secret, request.canonical(timestamp), hashlib.sha256).hexdigest()


def signature_headers(
    secret: bytes, body: bytes, url: str, *, method: str = "POST", now: float | None = None
) -> dict[str, str]:
    """The headers a sender adds for `method url` with `body` (the publish CLI, sign-event, tests)."""
    parts = urlsplit(url)
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, SignedRequest(method, parts.path or "/", parts.query, body)),
    }


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
    request: SignedRequest,
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
    expected = [sign(secret, timestamp, request).encode("ascii") for secret in secrets]
    # Every secret is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(candidate, presented) for candidate in expected]
    return None if any(matches) else "signature_mismatch"
