"""Fixtures for the review queue: ReviewFunction's resources in moto and a cold-started handler."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from moto import mock_aws

from tests.support.review import ReviewStack, create_review_stack, load_review


@pytest.fixture
def review_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReviewStack]:
    with mock_aws():
        yield create_review_stack(monkeypatch)


@pytest.fixture
def review_app(review_stack: ReviewStack) -> ModuleType:
    return load_review()
