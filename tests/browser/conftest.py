"""Headless Chromium from Debian (/usr/bin/chromium + chromedriver), driven by Selenium, against
pytest-django's live server. Screenshots go to test-artifacts/ (GERION_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.factories import make_api_key
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


# --- a CI pipeline and a seeded live server, for the staff pages' tests --------------------

REPOSITORIES = ["acme/payments", "acme/web-shop", "acme/ledger", "acme/infra", "acme/mobile-api"]
SEVERITIES = ["Critical", "High", "Medium", "Low", "Info"]


class Api:
    """A CI pipeline: an API key, a token, uploads over HTTP to the live server."""

    def __init__(self, base_url: str, client_id: str = "jenkins-main") -> None:
        self.base_url = base_url
        _, self.key = make_api_key(client_id=client_id)
        response = requests.post(
            f"{base_url}/api/v1/auth/m2m/authenticate",
            json={"client_id": client_id},
            headers={"X-API-Key": self.key},
            timeout=10,
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def upload(
        self, repository: str, findings: list[dict], build: str, scan_type: str = "SCA"
    ) -> dict:
        body: dict[str, Any] = {
            "metadata": {
                "repository_name": repository,
                "branch_name": "main",
                "build_id": build,
                "code_path": ".",
                "scan_type": scan_type,
            },
            "findings": findings,
        }
        response = requests.post(
            f"{self.base_url}/api/v1/findings",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()


def realistic_findings(rng: random.Random, repository: str) -> list[dict]:
    findings = []
    for i in range(rng.randint(8, 40)):
        package = rng.choice(["lodash", "log4j-core", "openssl", "jackson-databind", "urllib3"])
        flaw = rng.choice(["prototype pollution", "RCE", "ReDoS", "SSRF"])
        version = f"{rng.randint(0, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        findings.append(
            {
                "finding_id": f"{repository}-{package}-{i}",
                "title": f"{package}: {flaw}",
                "severity": rng.choices(SEVERITIES, weights=[1, 3, 5, 4, 2])[0],
                "file_path": f"{repository.split('/')[1]}/package-lock.json",
                "component_name": package,
                "component_version": version,
                "cve": f"CVE-202{rng.randint(0, 5)}-{rng.randint(1000, 49999)}",
            }
        )
    return findings


@pytest.fixture
def seeded(live_server):
    api = Api(live_server.url)
    rng = random.Random(7)
    for repository in REPOSITORIES:
        api.upload(repository, realistic_findings(rng, repository), build="100")
    api.upload(
        "acme/payments",
        [
            {
                "finding_id": "semgrep-sqli-1",
                "title": "SQL injection in refund handler",
                "severity": "Critical",
                "file_path": "payments/refunds.py",
                "line_number": 88,
                "description": "request.GET['q'] reaches cursor.execute() unparameterised.",
                "cwe": [89],
                "vendor": {"rule": "python.django.sqli", "confidence": "HIGH"},
            },
        ],
        build="100",
        scan_type="SAST",
    )
    return api
