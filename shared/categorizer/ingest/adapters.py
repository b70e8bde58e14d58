"""The request body's shape: CMS payload adapters and the split into items (docs/ingest.md, "Payload")."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

Adapter = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class AdapterError(ValueError):
    """A CMS item lacks what its mapping needs; `field` is the path in the CMS's own shape."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def generic_adapter(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The generic shape is the ArticleEvent itself (docs/ingest.md)."""
    return item


def wordpress_adapter(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A WordPress post webhook (WP Webhooks `post_create`/`post_update`; REST API post objects)."""
    post = item.get("post")
    if not isinstance(post, Mapping):
        return _wordpress_rest_post(item)
    modified = post.get("post_modified_gmt")
    return {
        "article_id": _wordpress_id(post.get("ID", item.get("post_id")), "post.ID"),
        "url": item.get("post_permalink") or post.get("guid"),
        "title": post.get("post_title"),
        "body": post.get("post_content"),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
        "site": item.get("site"),
    }


def _wordpress_id(value: Any, field: str) -> str:
    """`wp-<ID>`: WordPress ids are positive integers; without one every post would share a row."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AdapterError(field, "a WordPress post needs a positive integer ID")
    return f"wp-{value}"


def _rendered(value: Any) -> Any:
    return value.get("rendered") if isinstance(value, Mapping) else value


def _wordpress_rest_post(item: Mapping[str, Any]) -> Mapping[str, Any]:
    modified = item.get("modified_gmt")
    return {
        "article_id": _wordpress_id(item.get("id"), "id"),
        "url": item.get("link"),
        "title": _rendered(item.get("title")),
        "body": _rendered(item.get("content")),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
    }


ADAPTERS: dict[str, Adapter] = {"generic": generic_adapter, "wordpress": wordpress_adapter}


class PayloadError(ValueError):
    """The request body as a whole is unusable (not JSON, wrong shape, too many items)."""


# More digits than any field needs (version ≤ 2**53 has 16): int() of a longer string is slow, and
# past 4,300 digits Python refuses it with a ValueError.
MAX_INTEGER_DIGITS = 20


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise PayloadError(f"a number of {digits} digits; at most {MAX_INTEGER_DIGITS} are accepted")
    return int(text)


def _not_json(constant: str) -> NoReturn:
    raise PayloadError(f"{constant} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise PayloadError(f"the key {key[:64]!r} appears twice in one object; send it once")
        document[key] = value
    return document


def load_json(body: bytes) -> Any:
    """The request body as JSON, or PayloadError with a message for the caller.

    Every way a body can be unusable ends here as PayloadError: not UTF-8, not JSON (the C
    parser works in linear time), nested deeper than the interpreter's recursion limit (the C
    parser stops there with RecursionError instead of going on), NaN/Infinity, integers too long
    to convert cheaply, duplicate keys (which would otherwise keep the last value silently).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadError(f"the body is not valid UTF-8 (byte offset {error.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer, parse_constant=_not_json)
    except json.JSONDecodeError as error:
        raise PayloadError(
            f"the body is not valid JSON: {error.msg} (line {error.lineno} column {error.colno})"
        ) from None
    except RecursionError:
        raise PayloadError("the JSON nests too deeply; articles need a few levels at most") from None


def split_items(document: Any, max_items: int) -> list[Any]:
    """One article object, a JSON array of them, or {"articles": [...]}."""
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and "articles" in document:
        items = document["articles"]
        if not isinstance(items, list):
            raise PayloadError("'articles' must be a JSON array")
    elif isinstance(document, dict):
        items = [document]
    else:
        raise PayloadError("the body must be a JSON object or array")
    if not items:
        raise PayloadError("the batch holds no articles")
    if len(items) > max_items:
        raise PayloadError(f"the batch holds {len(items)} articles; the maximum is {max_items}")
    return items
