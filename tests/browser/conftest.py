"""Fixtures for the review page in headless Chromium against the offline stack (tests/support/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.browser.support import ReviewStack, review_stack_with_pending_items
from tests.support.browser import MISSING_REASON, ChromiumPaths, ReviewPage, headless_chromium, installed_chromium


@pytest.fixture(scope="session")
def chromium() -> ChromiumPaths:
    paths = installed_chromium()
    if paths is None:
        pytest.skip(MISSING_REASON)
    return paths


@pytest.fixture(scope="module")
def review_stack(chromium: ChromiumPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewStack]:
    with review_stack_with_pending_items(tmp_path_factory.mktemp("state")) as started:
        yield started


@pytest.fixture
def driver(chromium: ChromiumPaths) -> Iterator[webdriver.Chrome]:
    with headless_chromium(chromium) as started:
        yield started


@pytest.fixture
def page(driver: webdriver.Chrome) -> ReviewPage:
    return ReviewPage(driver)
