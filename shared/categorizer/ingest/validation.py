"""One item of a webhook request → a validated ArticleEvent and its queue message, or its errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from categorizer.ingest.adapters import Adapter, AdapterError
from categorizer.ingest.enqueue import MESSAGE_ATTRIBUTES_ALLOWANCE, SQS_MAX_MESSAGE_BYTES
from categorizer.models import ArticleEvent, UnpublishEvent, is_unpublish, validation_problems

# The message body's share of SQS's per-message limit; the rest is kept for its attributes.
MAX_MESSAGE_BYTES = SQS_MAX_MESSAGE_BYTES - MESSAGE_ATTRIBUTES_ALLOWANCE
# The characters SQS accepts in a message body (anything else fails the whole entry).
_NOT_SQS_SAFE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class ItemError:
    index: int
    article_id: str | None
    errors: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "article_id": self.article_id, "errors": self.errors}


@dataclass(frozen=True)
class ValidItem:
    index: int
    article: ArticleEvent | UnpublishEvent
    message: str  # the SQS message body: the validated event as JSON


def _item_id(item: Any) -> str | None:
    value = item.get("article_id") if isinstance(item, Mapping) else None
    return value[:256] if isinstance(value, str) else None


def validate_item(index: int, item: Any, adapter: Adapter) -> ValidItem | ItemError:
    if not isinstance(item, Mapping):
        return ItemError(index, None, [{"field": "(item)", "reason": "must be a JSON object"}])
    # An unpublish item is the generic shape whatever the adapter (docs/ingest.md, "Unpublish").
    try:
        mapped = item if is_unpublish(item) else adapter(item)
    except AdapterError as error:
        return ItemError(index, None, [{"field": error.field, "reason": error.reason}])
    model: type[ArticleEvent | UnpublishEvent] = UnpublishEvent if is_unpublish(mapped) else ArticleEvent
    try:
        article = model.model_validate(mapped)
    except ValidationError as error:
        return ItemError(index, _item_id(mapped), validation_problems(error))
    message = article.model_dump_json(exclude_none=True)
    unsafe = _NOT_SQS_SAFE.search(message)
    if unsafe:
        reason = f"contains U+{ord(unsafe.group()):04X}, which a queue message cannot carry"
        return ItemError(index, article.article_id, [{"field": "(event)", "reason": reason}])
    if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
        reason = f"the article exceeds {MAX_MESSAGE_BYTES} bytes as a queue message"
        return ItemError(index, article.article_id, [{"field": "(event)", "reason": reason}])
    return ValidItem(index, article, message)
