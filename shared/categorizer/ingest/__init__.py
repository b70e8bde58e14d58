"""CMS webhook ingestion (docs/ingest.md), one module per concern:

- `signature`: the HMAC-SHA256 signature senders add and the function verifies;
- `adapters`: CMS payload shapes mapped to the generic article shape, and the batch split;
- `validation`: one item → a validated ArticleEvent and its queue message, or its errors;
- `enqueue`: SendMessageBatch chunks, retrying the entries SQS failed inside a response;
- `webhook`: the HTTP contract, `handle_webhook`: a raw request → a status code and a JSON body.

The names below are the package's interface (the handler, the operator CLI, tests).
"""

from categorizer.ingest.adapters import ADAPTERS, generic_adapter, wordpress_adapter
from categorizer.ingest.enqueue import ArticleQueue
from categorizer.ingest.signature import (
    SignedRequest,
    sign,
    signature_headers,
    verify_signature,
    webhook_secrets,
)
from categorizer.ingest.validation import ItemError, ValidItem, validate_item
from categorizer.ingest.webhook import WebhookLimits, WebhookRequest, handle_webhook

__all__ = [
    "ADAPTERS",
    "ArticleQueue",
    "ItemError",
    "SignedRequest",
    "ValidItem",
    "WebhookLimits",
    "WebhookRequest",
    "generic_adapter",
    "handle_webhook",
    "sign",
    "signature_headers",
    "validate_item",
    "verify_signature",
    "webhook_secrets",
    "wordpress_adapter",
]
