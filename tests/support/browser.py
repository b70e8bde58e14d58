"""Headless Chromium for the review page's browser tests: Debian's packages, driven by Selenium.

`make browser-deps` installs `chromium` and `chromium-driver` with apt. The driver is given by
path, so Selenium Manager never looks for (or downloads) a browser or driver at run time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.paths import REPO

# Generated, not committed (build/ is gitignored): what the page looked like in the last run.
SCREENSHOT_DIR = REPO / "build" / "browser"
WAIT_SECONDS = 20.0
MISSING_REASON = "chromium and chromium-driver are not installed (Debian packages): run `make browser-deps`"


@dataclass(frozen=True)
class ChromiumPaths:
    browser: Path
    driver: Path


def installed_chromium() -> ChromiumPaths | None:
    """Debian's chromium and its driver, when both are on PATH."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return ChromiumPaths(Path(browser), Path(driver)) if browser and driver else None


@contextmanager
def headless_chromium(paths: ChromiumPaths) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(paths.browser)
    for argument in (
        "--headless=new",
        # Tests run as root in a container: Chromium's sandbox needs user namespaces it lacks there.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(paths.driver)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class ReviewPage:
    """The review page as a person uses it, by the ids and roles it exposes."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self._wait = WebDriverWait(driver, WAIT_SECONDS)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css: str) -> WebElement:
        element: WebElement = self._wait.until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
        )
        return element

    def until_status_contains(self, text: str) -> str:
        """The aria-live status line once it announces `text`."""
        self._wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), text))
        return self.find("#status").text

    def keys(self, *keys: str) -> None:
        """Keys typed into whatever has the focus, as a person at the keyboard does."""
        ActionChains(self.driver).send_keys(*keys).perform()

    def focused_id(self) -> str:
        return str(self.driver.switch_to.active_element.get_attribute("id") or "")

    def queue_ids(self) -> list[str]:
        return [str(button.get_attribute("data-article-id")) for button in self.find_all("#queue button")]

    def current_id(self) -> str:
        return str(self.find('#queue button[aria-current="true"]').get_attribute("data-article-id"))

    def until_queue_is(self, article_ids: list[str]) -> None:
        self._wait.until(lambda _: self.queue_ids() == article_ids)

    def until_current_is(self, article_id: str) -> None:
        self._wait.until(
            lambda _: self.find_all('#queue button[aria-current="true"]') and self.current_id() == article_id
        )

    def screenshot(self, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
