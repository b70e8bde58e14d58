"""The canonical form of a page URL: the key that finds an article's result by URL.

One function, used where the row is written (the categorize path stores it with the result)
and where it is read (`GET /categories?url=…`), so both sides agree by construction. The
rules (docs/read-api.md, "Canonical URL"):

- scheme and host lower-cased; an internationalised host in its IDNA (punycode) form;
- the default port dropped (80 for http, 443 for https);
- the fragment dropped;
- tracking parameters dropped (`utm_*`, `gclid`, `fbclid` and the other click ids below),
  the remaining parameters sorted (by name, then value) and kept with their values;
- the path's dot segments resolved, percent-escapes in upper case, unreserved characters
  unescaped, other non-ASCII characters percent-encoded as UTF-8;
- an empty path is "/", a trailing slash on any other path dropped ("/news/" is "/news").

Refused (InvalidUrl, with the reason): anything but an absolute http(s) URL with a valid host,
whitespace anywhere (nothing is trimmed: " https://x/a " is not made equal to another URL),
control characters, and credentials (`user:password@`: stored rows are served to readers). The
article event's `url` is checked by this function too (categorizer.models), so a URL accepted at
ingest always has a canonical form and the read API refuses exactly what ingest refuses.

Built on the standard library's RFC 3986 parser (urllib.parse); the rules on top are this
project's own, so they are written out here rather than borrowed from a crawler's
canonicaliser whose choices (keeping fragments, tracking parameters) differ.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# A DynamoDB partition key, the GSI's, holds at most 2,048 bytes.
MAX_CANONICAL_URL_BYTES = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMETERS = frozenset(
    {"gclid", "gclsrc", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "twclid", "ttclid", "igshid"}
    | {"mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id"}
)
# Characters a path keeps literally: RFC 3986 unreserved, sub-delims, ":" and "@" (and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")
# C0 (except tab, LF, CR, which are whitespace), DEL and C1: none belongs in a URL.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class InvalidUrl(ValueError):
    """Not an absolute http(s) URL this function can canonicalise; the message says why."""


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_PARAMETERS or lowered.startswith(_TRACKING_PREFIXES)


def _host(hostname: str) -> str:
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise InvalidUrl(f"the host {hostname!r} is not a valid host name") from error
    if ":" in ascii_host:  # urlsplit drops an IPv6 literal's brackets
        ascii_host = f"[{ascii_host}]"
    if not _HOST.fullmatch(ascii_host) or ascii_host.startswith(".") or ".." in ascii_host:
        raise InvalidUrl(f"the host {hostname!r} is not a valid host name")
    return ascii_host.rstrip(".")


def _path(raw_path: str) -> str:
    # Unescape, then escape once with upper-case hex: "%7e", "~" and "%7E" become one form.
    # An escaped "/" ("%2F") names another resource than "/", so pieces between them are
    # normalised separately and joined by "%2F" again.
    pieces = re.split("%2[Ff]", raw_path)
    path = "%2F".join(quote(unquote(piece, errors="strict"), safe=_PATH_SAFE) for piece in pieces)
    # normpath resolves "." and "..", and drops the trailing slash (the rule: none but the root's).
    path = posixpath.normpath("/" + path)
    return "/" + path.lstrip("/")


def _query(raw_query: str) -> str:
    pairs = [(n, v) for n, v in parse_qsl(raw_query, keep_blank_values=True) if not _is_tracking(n)]
    return urlencode(sorted(pairs), quote_via=quote, safe="-._~")


def canonical_url(url: str) -> str:
    """The canonical form of an absolute http(s) URL (the module docstring lists the rules)."""
    if not url:
        raise InvalidUrl("the URL is empty")
    if control := _CONTROL_CHARACTER.search(url):
        raise InvalidUrl(f"the URL contains the control character U+{ord(control.group()):04X}")
    if any(character.isspace() for character in url):
        raise InvalidUrl("the URL must not contain whitespace (percent-encode it)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidUrl(f"the URL cannot be parsed: {error}") from error
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidUrl("the URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidUrl("the URL has no host")
    if "@" in parts.netloc:
        raise InvalidUrl("the URL must not carry credentials (user:password@)")
    netloc = _host(parts.hostname)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    try:
        path = _path(parts.path)
    except UnicodeDecodeError as error:
        raise InvalidUrl("the URL's path has percent-escapes that are not UTF-8") from error
    canonical = urlunsplit((scheme, netloc, path, _query(parts.query), ""))
    if len(canonical.encode("utf-8")) > MAX_CANONICAL_URL_BYTES:
        raise InvalidUrl(f"the URL is longer than {MAX_CANONICAL_URL_BYTES} bytes once canonical")
    return canonical
