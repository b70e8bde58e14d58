"""Session-wide test environment: offline tokenizer, dummy AWS credentials, no real endpoints."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO / ".tools" / "tiktoken-cache"))
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "article-categorizer-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "ArticleCategorizerTests",
    "POWERTOOLS_TRACE_DISABLED": "true",
}.items():
    os.environ[name] = value
# Tests must never reach a real endpoint by accident.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("OPENAI_BASE_URL", None)
