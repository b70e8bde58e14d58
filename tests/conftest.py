"""The session-wide test environment, and the fixtures several folders share (unit/*, tools).

Environment: the offline tokenizer, dummy AWS credentials, no real endpoints. Fixtures: each
function's resources in moto, the fake OpenAI, a cold-started ingest handler.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType

import pytest
from moto import mock_aws

from tests.support.categorize import CategorizeStack, create_categorize_stack
from tests.support.ingest import IngestStack, create_ingest_stack, load_ingest
from tests.support.openai_http import FakeOpenAI
from tests.support.paths import REPO

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


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[CategorizeStack]:
    """CategorizeFunction's resources and environment in moto."""
    with mock_aws():
        yield create_categorize_stack(monkeypatch)


@pytest.fixture
def fake_openai() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def ingest_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[IngestStack]:
    """IngestFunction's resources and environment in moto."""
    with mock_aws():
        yield create_ingest_stack(monkeypatch)


@pytest.fixture
def ingest(ingest_stack: IngestStack) -> ModuleType:
    return load_ingest()
