"""The canonical URL (categorizer.urls): one form for the row and for GET /categories?url=…."""

from __future__ import annotations

import pytest

from categorizer.models import ArticleEvent
from categorizer.urls import MAX_CANONICAL_URL_BYTES, InvalidUrl, canonical_url


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        # scheme and host lower-cased
        ("HTTPS://News.Example.COM/a", "https://news.example.com/a"),
        ("Http://example.com/A/B", "http://example.com/A/B"),  # the path keeps its case
        # default ports dropped, others kept
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        # fragment dropped
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com/a?b=1#x", "https://example.com/a?b=1"),
        # tracking parameters dropped, the rest sorted
        ("https://example.com/a?utm_source=x&utm_medium=y&utm_campaign=z", "https://example.com/a"),
        ("https://example.com/a?id=7&gclid=abc", "https://example.com/a?id=7"),
        ("https://example.com/a?fbclid=1&page=2&UTM_Term=q", "https://example.com/a?page=2"),
        ("https://example.com/a?msclkid=1&mc_cid=2&mc_eid=3&_ga=4", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1&a=0", "https://example.com/a?a=0&a=1&b=2"),
        ("https://example.com/a?flag", "https://example.com/a?flag="),
        ("https://example.com/a?q=caf%C3%A9+bar", "https://example.com/a?q=caf%C3%A9%20bar"),
        # trailing slash: none, except the root
        ("https://example.com/news/", "https://example.com/news"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com/?utm_source=x", "https://example.com/"),
        # dot segments, duplicate slashes and escapes
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com//a//b", "https://example.com/a/b"),
        ("https://example.com/%7euser", "https://example.com/~user"),
        ("https://example.com/caf%c3%a9", "https://example.com/caf%C3%A9"),
        ("https://example.com/café", "https://example.com/caf%C3%A9"),
        ("https://example.com/a%2fb", "https://example.com/a%2Fb"),  # an escaped slash is not a slash
        # hosts: IDNA, trailing dot, IPv6
        ("https://Bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://example.com./x", "https://example.com/x"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        # an "@" in the path is not user info
        ("https://example.com/@user/post", "https://example.com/@user/post"),
    ],
)
def test_canonical_form(given: str, canonical: str) -> None:
    # GIVEN a page URL WHEN it is canonicalised THEN it has the canonical form
    assert canonical_url(given) == canonical
    # AND canonicalising is idempotent
    assert canonical_url(canonical) == canonical


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("ftp://example.com/a", "http:// or https://"),
        ("example.com/a", "http:// or https://"),
        ("https:///a", "no host"),
        ("https://exa mple.com/", "whitespace"),
        ("  https://example.com/a  ", "whitespace"),  # nothing is trimmed
        ("https://example.com/a\u3000b", "whitespace"),
        ("https://example.com/a\x00b", "control character U\\+0000"),
        ("https://example.com/\x1b[31m", "control character U\\+001B"),
        ("https://user:pw@example.com/x", "credentials"),
        ("http://token@example.com/x", "credentials"),
        ("", "empty"),
        ("https://example.com:99999/", "cannot be parsed"),
        ("https://exa_mple.com/", "not a valid host"),
        ("https://example.com/%ff", "not UTF-8"),
        ("https://example.com/" + "あ" * 300, f"longer than {MAX_CANONICAL_URL_BYTES} bytes"),
    ],
)
def test_urls_without_a_canonical_form_are_refused_with_the_reason(given: str, reason: str) -> None:
    # GIVEN a URL that is not an absolute http(s) URL with a usable host WHEN canonicalised THEN it is refused
    with pytest.raises(InvalidUrl, match=reason):
        canonical_url(given)


def test_an_article_event_carries_its_canonical_url_and_refuses_one_without() -> None:
    # GIVEN an article whose URL has tracking parameters
    fields = {"article_id": "a-1", "title": "T", "body": "B", "version": 1}
    event = ArticleEvent.model_validate({**fields, "url": "https://Example.com/a/?utm_source=x"})
    # THEN its canonical URL is the index key
    assert event.canonical_url == "https://example.com/a"
    # AND an article whose URL has no canonical form is invalid at ingest, with the reason
    with pytest.raises(ValueError, match="cannot be parsed"):
        ArticleEvent.model_validate({**fields, "url": "https://example.com:99999/a"})
