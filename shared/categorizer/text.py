"""Article text: HTML to plain text, normalisation, and the input token budget."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from categorizer.tokens import encoding

_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "head"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
        "section", "article", "header", "footer", "blockquote", "pre", "hr", "figure", "figcaption",
        "dd", "dt", "dl", "main", "aside", "nav", "td", "th",
    }
)  # fmt: skip
# Possessive quantifiers (Python 3.11+) and `[^<>]` keep the search linear: with `[^>]*` a body of
# many `<a` and no `>` made every `<` scan to the end (quadratic; 9.9 s on 196 KB).
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9-]*+|/[a-zA-Z]|!--|!doctype)[^<>]*+>", re.IGNORECASE)
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n\s*\n+")
# Void elements have no content: a line break at their start, not a second one at their end.
_VOID_TAGS = frozenset({"br", "hr"})


class _TextTarget:
    """lxml parser target: libxml2's HTML tokenizer calls these, and no tree is built.

    Why lxml: the stdlib's html.parser rescans unterminated constructs (`<a b="` repeated),
    so its time grows with the square of the body (48 KB: 4.9 s, 96 KB: 19.6 s); libxml2's
    parser is linear on the same inputs (≤ 0.1 s at the 200,000-character limit,
    `make bench-parse`). A target instead of a tree also avoids the tree builder's cost on
    deeply nested markup. libxml2 recovers from broken markup and decodes entities.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._skip_depth = 0

    # lxml's ParserTarget protocol types tags and text as str | bytes; fed a str, it passes str.
    def start(self, tag: str | bytes, attrib: dict[str | bytes, str | bytes]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def end(self, tag: str | bytes) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS and tag not in _VOID_TAGS:
            self.parts.append("\n")

    def data(self, data: str | bytes) -> None:
        if not self._skip_depth:
            self.parts.append(data if isinstance(data, str) else data.decode("utf-8", "replace"))

    def comment(self, text: str | bytes) -> None:
        """Comments are not text."""

    def close(self) -> None:
        """Nothing to finish: the text is in `parts`."""


def looks_like_html(raw: str) -> bool:
    return _LOOKS_LIKE_HTML.search(raw) is not None


def html_to_text(html: str) -> str:
    # Imported on first use: libxml2 costs ~50 ms of cold start, and plain-text articles never need it.
    from lxml import etree

    target = _TextTarget()
    parser = etree.HTMLParser(target=target, recover=True, no_network=True, huge_tree=True)
    try:
        parser.feed(html)
        parser.close()
    except etree.LxmlError as error:  # recover=True makes this rare; as a ValueError it is a validation error
        raise ValueError(f"the HTML could not be parsed: {error}") from error
    return normalize_text("".join(target.parts))


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
