"""Worst-case time to turn an article body into text, at the body size limit (issue: hostile input).

Each case is a body of exactly MAX_BODY_CHARS characters built from one construct repeated:
unterminated attributes and comments, tags without `>`, deep nesting, entity runs, and
realistic article HTML. It times ArticleEvent validation (HTML detection + extraction +
normalisation), as ingest and the categorize function run it, on one core, and for
comparison the stdlib html.parser on the quadratic cases at smaller sizes.

    python -m bench.parse [--repeat 3]        # or: make bench-parse
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from pydantic import ValidationError

from categorizer.models import MAX_BODY_CHARS, ArticleEvent

RESULTS = Path(__file__).resolve().parent / "results"


def _repeat(unit: str, size: int = MAX_BODY_CHARS) -> str:
    return (unit * (size // len(unit) + 1))[:size]


CASES: dict[str, Callable[[int], str]] = {
    "unterminated_attribute": lambda n: _repeat('<a b="', n),
    "unterminated_comment": lambda n: _repeat("<!--", n),
    "tag_without_gt": lambda n: "<" + "a" * (n - 1),
    "many_lt_no_gt": lambda n: _repeat("<a ", n),
    "deep_nesting": lambda n: _repeat("<div>", n),
    "deep_nesting_with_text": lambda n: _repeat("<div>x", n),
    "unclosed_paragraphs": lambda n: _repeat("<p>word ", n),
    "entity_run": lambda n: _repeat("&amp;", n),
    "cdata_run": lambda n: _repeat("<![CDATA[", n),
    "script_unterminated": lambda n: "<script>" + _repeat("var a = '<p>';", n - 8),
    "article_html": lambda n: _repeat("<p>Markets rose on <b>Tuesday</b> &amp; bonds fell.</p>\n", n),
    "article_japanese": lambda n: _repeat("<p>日本語の記事本文です。株価は上昇した。</p>", n),
    "plain_text": lambda n: _repeat("Plain text without any markup at all. ", n),
}


def _validate(body: str) -> str:
    try:
        event = ArticleEvent.model_validate(
            {"article_id": "p", "url": "https://x.example/p", "title": "t", "body": body, "version": 1}
        )
        return f"accepted ({len(event.text)} characters of text)"
    except ValidationError:
        return "rejected"


def _time(function: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best


def _stdlib(body: str) -> None:
    parser = HTMLParser(convert_charrefs=True)
    parser.feed(body)
    parser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    _validate("<p>warm up</p>")
    seconds: dict[str, float] = {}
    cases: dict[str, dict[str, object]] = {}
    for name, build in CASES.items():
        body = build(MAX_BODY_CHARS)
        seconds[name] = round(_time(functools.partial(_validate, body), args.repeat), 4)
        cases[name] = {"seconds": seconds[name], "outcome": _validate(body)}
    stdlib = {
        f"{name}@{size}": round(_time(functools.partial(_stdlib, CASES[name](size)), 1), 3)
        for name in ("unterminated_attribute", "script_unterminated")
        for size in (12_000, 24_000, 48_000)
    }
    worst = max(seconds, key=seconds.__getitem__)
    result = {
        "body_chars": MAX_BODY_CHARS,
        "cpu_seconds_by_case": cases,
        "worst_case": worst,
        "worst_seconds": seconds[worst],
        "target_seconds": 0.5,
        "stdlib_html_parser_seconds": stdlib,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parse.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
