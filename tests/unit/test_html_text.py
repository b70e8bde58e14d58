"""HTML to text with libxml2's parser: what it keeps and drops, on sound and on broken markup."""

from __future__ import annotations

import pytest

from categorizer.models import MAX_BODY_CHARS
from categorizer.text import html_to_text, looks_like_html


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("line<br>next<br/>last", "line\nnext\nlast"),
        ("<P>Upper</P><DIV>case</DIV>", "Upper\n\ncase"),
        ("<!-- a comment --><p>kept</p>", "kept"),
        ("<svg><text>drawn</text></svg><p>kept</p>", "kept"),
        ("<script>if (a<b) { x() }</script><p>after</p>", "after"),
        ("<p>unclosed <b>bold <i>both</p>tail", "unclosed bold both\ntail"),
        ("<p>Tom &amp; Jerry &#12354; &nbsp;&quot;ok&quot;</p>", 'Tom & Jerry あ "ok"'),
        ('<meta charset="shift_jis"><p>日本語</p>', "日本語"),
    ],
)
def test_extraction_keeps_text_and_line_structure(html: str, text: str) -> None:
    # GIVEN a body in HTML, WHEN it is turned into text, THEN only the readable text remains
    assert html_to_text(html) == text


def test_deep_nesting_at_the_size_limit_keeps_every_word() -> None:
    # GIVEN 33,000 unclosed <div>s, each with one word, filling the body limit
    html = ("<div>w" * (MAX_BODY_CHARS // 6))[:MAX_BODY_CHARS]
    # WHEN it is turned into text, THEN no word is lost to a nesting limit
    assert html_to_text(html).split() == ["w"] * (MAX_BODY_CHARS // 6)


@pytest.mark.parametrize(
    ("raw", "is_html"),
    [
        ("<p>x</p>", True),
        ("<!-- c -->", True),
        ("</b>", True),
        ("a < b and c > d", False),
        ("x<y", False),
        ("<" + "a" * 1000, False),
        ('<a b="' * 1000, False),
    ],
)
def test_html_detection_needs_a_whole_tag(raw: str, is_html: bool) -> None:
    # GIVEN a body of unknown format, WHEN detecting HTML, THEN only a complete tag counts
    assert looks_like_html(raw) is is_html
