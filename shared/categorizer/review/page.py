"""The review page as ReviewFunction serves it (docs/review-page.md): the HTML file, told where to sign in.

The page (functions/review/static/review.html) is static; only the two values its sign-in form
needs are filled in: the user pool's app client and Cognito's endpoint. Its inline script and style
are allowed by hash in a Content-Security-Policy, so nothing else runs or loads, and it may
connect only to its own origin (the review routes) and to that endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

_INLINE = {tag: re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL) for tag in ("script", "style")}
_SLOTS = ('data-cognito-endpoint=""', 'data-cognito-client-id=""')


def _hashes(tag: str, html: str) -> str:
    bodies = _INLINE[tag].findall(html)
    if not bodies:
        raise ValueError(f"the review page has no inline <{tag}>")
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies)


@dataclass(frozen=True)
class ReviewPage:
    html: str
    headers: dict[str, str]

    @classmethod
    def render(cls, template: Path, cognito_endpoint: str, client_id: str) -> ReviewPage:
        """The page with its sign-in values; with an empty client id (an existing issuer), no password form."""
        html = template.read_text(encoding="utf-8")
        if any(slot not in html for slot in _SLOTS):
            raise ValueError(f"{template} has no {' / '.join(_SLOTS)} to fill in")
        endpoint = cognito_endpoint if client_id else ""
        html = html.replace(_SLOTS[0], f'data-cognito-endpoint="{escape(endpoint)}"', 1)
        html = html.replace(_SLOTS[1], f'data-cognito-client-id="{escape(client_id)}"', 1)
        connect = "'self'"
        if endpoint:
            parts = urlsplit(endpoint)
            connect += f" {parts.scheme}://{parts.netloc}"
        policy = "; ".join(
            (
                "default-src 'none'",
                f"script-src {_hashes('script', html)}",
                f"style-src {_hashes('style', html)}",
                "img-src data:",
                f"connect-src {connect}",
                "base-uri 'none'",
                "frame-ancestors 'none'",
            )
        )
        headers = {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # The page is small and changes with a deploy: no stale copy after one.
            "Cache-Control": "no-cache",
        }
        return cls(html, headers)
