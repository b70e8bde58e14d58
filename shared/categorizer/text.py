"""Article text: HTML to plain text, normalisation, and the input token budget."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser

from categorizer.tokens import encoding

_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "head"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
        "section", "article", "header", "footer", "blockquote", "pre", "hr", "figure", "figcaption",
        "dd", "dt", "dl", "main", "aside", "nav", "td", "th",
    }
)  # fmt: skip
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9-]*|/[a-zA-Z]|!--|!doctype)[^>]*>", re.IGNORECASE)
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n\s*\n+")


class _TextExtractor(HTMLParser):
    # The stdlib parser is tolerant of broken markup and decodes entities (convert_charrefs);
    # an HTML library would add a layer dependency for no gain in a text-only extraction.
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def looks_like_html(raw: str) -> bool:
    return _LOOKS_LIKE_HTML.search(raw) is not None


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return normalize_text("".join(extractor.parts))


def normalize_text(text: str) -> str:
    """NFKC (full-width forms fold to their usual ones), one space, at most one blank line."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class Budgeted:
    text: str
    tokens: int
    truncated: bool


def cut_to_token_budget(text: str, budget: int) -> Budgeted:
    """Keep the first `budget` o200k_base tokens, so input cost per article is bounded."""
    ids = encoding().encode(text, disallowed_special=())
    if len(ids) <= budget:
        return Budgeted(text, len(ids), truncated=False)
    # A cut can split a multi-byte character; the decoder marks that with U+FFFD.
    kept = encoding().decode(ids[:budget]).rstrip("\ufffd")
    return Budgeted(kept, budget, truncated=True)


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()
