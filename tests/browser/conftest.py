"""Headless Chromium from Debian (/usr/bin/chromium + chromedriver), driven by Selenium, against
pytest-django's live server. Screenshots go to test-artifacts/ (GERION_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.servers import REPO

CHROMIUM = os.environ.get("GERION_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GERION_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("GERION_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            f"Browser tests need Debian's chromium and chromium-driver ({CHROMIUM}, "
            f"{CHROMEDRIVER}): apt-get install chromium chromium-driver (.ci/run does)."
        )
    profile = tempfile.mkdtemp(prefix="gerion-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # This machine has no internet: keep Chromium from trying.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1366,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    # Console messages, to catch a content-security-policy violation or a script error.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: WebDriver) -> WebDriver:
    """The browser, signed out and on a blank page at the start of each test."""
    browser.delete_all_cookies()
    browser.get("about:blank")
    return browser


def console_errors(driver: WebDriver) -> list[str]:
    """Errors the page logged since the last call (CSP violations are logged as errors)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[attr-defined]
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def click_and_wait(driver: WebDriver, element: WebElement, timeout: float = 15) -> None:
    """Click something that loads a new page, and wait until it has (a click alone does not
    wait for the navigation it starts)."""
    # A mark on the current document: gone once the browser has moved to the next one.
    driver.execute_script("window.__gerionOldPage = true;")
    element.click()
    WebDriverWait(driver, timeout, ignored_exceptions=[WebDriverException]).until(
        lambda d: d.execute_script(
            "return window.__gerionOldPage === undefined && document.readyState === 'complete'"
        )
    )


def sign_in(
    driver: WebDriver,
    base_url: str,
    username: str,
    password: str,
    *,
    path: str = "/accounts/login/",
) -> None:
    driver.get(base_url + path)
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form [type=submit]"))
    assert "/login/" not in driver.current_url, "signing in failed"
