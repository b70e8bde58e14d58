"""The request body's shape: CMS payload adapters and the split into items (docs/ingest.md, "Payload")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Adapter = Callable[[Mapping[str, Any]], Mapping[str, Any]]


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
        "article_id": f"wp-{post.get('ID', item.get('post_id'))}",
        "url": item.get("post_permalink") or post.get("guid"),
        "title": post.get("post_title"),
        "body": post.get("post_content"),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
        "site": item.get("site"),
    }


def _rendered(value: Any) -> Any:
    return value.get("rendered") if isinstance(value, Mapping) else value


def _wordpress_rest_post(item: Mapping[str, Any]) -> Mapping[str, Any]:
    modified = item.get("modified_gmt")
    return {
        "article_id": f"wp-{item.get('id')}",
        "url": item.get("link"),
        "title": _rendered(item.get("title")),
        "body": _rendered(item.get("content")),
        "body_format": "html",
        "updated_at": f"{modified}Z" if isinstance(modified, str) and modified else None,
    }


ADAPTERS: dict[str, Adapter] = {"generic": generic_adapter, "wordpress": wordpress_adapter}


class PayloadError(ValueError):
    """The request body as a whole is unusable (not JSON, wrong shape, too many items)."""


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
