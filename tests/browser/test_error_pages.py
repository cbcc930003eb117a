"""Error pages and the API reference in a real browser: styled from files the app serves,
with no violation of the app's own content security policy (no inline style or script)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import click_and_wait, console_errors, screenshot
from tests.factories import SuperuserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def csp_violations(driver: WebDriver) -> list[str]:
    """Violations the page reported (securitypolicyviolation events), and any the console
    logged (an error page's own status is logged too, and is no violation)."""
    reported = driver.execute_script("return window.__gerionViolations || []")
    logged = [m for m in console_errors(driver) if "Content Security Policy" in m]
    return [*reported, *logged]


def open_page(driver: WebDriver, url: str) -> None:
    # Listen for violations from the first byte: the listener is installed, once per browser,
    # before any document loads (Chrome DevTools Protocol).
    if not getattr(driver, "_gerion_listens_for_csp", False):
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": "window.__gerionViolations = [];"
                "document.addEventListener('securitypolicyviolation', e => "
                "window.__gerionViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
            },
        )
        driver._gerion_listens_for_csp = True  # type: ignore[attr-defined]
    driver.get(url)
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def styled_by_the_error_stylesheet(driver: WebDriver) -> bool:
    main = driver.find_element(By.TAG_NAME, "main")
    return driver.execute_script("return getComputedStyle(arguments[0]).maxWidth", main) != "none"


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("/no-such-page/", "Page not found"),
        ("/_test/boom", "Server error"),
        ("/_test/db-down", "Temporarily unavailable"),
        ("/findings/?q=%00", "Bad request"),
    ],
    ids=["404", "500", "503", "400"],
)
def test_error_pages_are_styled_without_a_csp_violation(page, live_server, settings, path, heading):
    """The probe: the error pages' inline <style> was blocked by the app's own policy."""
    settings.ROOT_URLCONF = "tests.gerion.urls"
    open_page(page, live_server.url + path)
    assert heading in page.find_element(By.TAG_NAME, "h1").text
    assert csp_violations(page) == []
    assert styled_by_the_error_stylesheet(page)
    screenshot(page, f"error-{path.strip('/').replace('/', '-')[:20] or 'root'}.png")


def test_the_sign_in_pause_page_is_styled_without_a_csp_violation(page, live_server, settings):
    settings.GERION_LOGIN_FAILURE_RATE = "1/d"
    SuperuserFactory(username="admin")
    for password in ("wrong", "wrong again"):
        open_page(page, live_server.url + "/accounts/login/")
        page.find_element(By.ID, "id_username").send_keys("admin")
        page.find_element(By.ID, "id_password").send_keys(password)
        click_and_wait(page, page.find_element(By.CSS_SELECTOR, "form [type=submit]"))
    assert "Too many failed sign-ins" in page.find_element(By.TAG_NAME, "h1").text
    assert csp_violations(page) == []
    assert styled_by_the_error_stylesheet(page)


def test_the_api_reference_renders_without_a_csp_violation(page, live_server):
    open_page(page, live_server.url + "/api/v1/docs")
    WebDriverWait(page, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    )
    paths = {e.text for e in page.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/api/v1/auth/m2m/authenticate" in " ".join(paths)
    assert csp_violations(page) == []
    background = page.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(250, 250, 250)"  # our stylesheet, not an inline <style>
    screenshot(page, "api-docs.png")
