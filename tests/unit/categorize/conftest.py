"""Fixtures for the categorize function: the handler wired to the fake OpenAI."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.support.categorize import CategorizeStack, load_categorize
from tests.support.openai_http import FakeOpenAI


@pytest.fixture
def categorize(stack: CategorizeStack, fake_openai: FakeOpenAI) -> ModuleType:
    return load_categorize(fake_openai.transport())
