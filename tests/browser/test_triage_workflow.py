"""The triage workflow in a real browser, on a laptop (1366x900) and a phone (390x844): bulk
triage of a filtered set, assignee and comment, an export downloaded, the trend chart, the
phone layout (no sideways page scroll, Sign out in reach), error pages and the admin's
header, with zero content-security-policy violations."""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from findings.models import Finding, FindingEvent
from tests.browser.conftest import click_and_wait, console_errors, screenshot, sign_in
from tests.factories import PASSWORD, StaffFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LAPTOP = (1366, 900)
PHONE = (390, 844)


@pytest.fixture
def analyst():
    user = StaffFactory(username="analyst")
    user.user_permissions.add(Permission.objects.get(codename="triage_finding"))
    return user


def _viewport(driver: WebDriver, width: int, height: int) -> None:
    """Make the page's viewport (not the window) this size."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])


@pytest.fixture
def laptop(page: WebDriver) -> Iterator[WebDriver]:
    _viewport(page, *LAPTOP)
    yield page
    page.set_window_size(1366, 1000)


@pytest.fixture
def phone(page: WebDriver) -> Iterator[WebDriver]:
    _viewport(page, *PHONE)
    yield page
    page.set_window_size(1366, 1000)


def _whole_page_screenshot(driver: WebDriver, name: str) -> None:
    """A screenshot of the whole page (for docs/), at the current width."""
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]"
    )
    before = driver.get_window_size()
    _viewport(driver, width, height)
    screenshot(driver, name)
    driver.set_window_size(before["width"], before["height"])


def _apply_filters(driver: WebDriver) -> None:
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))


def _count(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "match-count").text.rstrip("+"))


def _csp_violations(driver: WebDriver) -> list[str]:
    """Console errors other than the error status of the page itself."""
    return [m for m in console_errors(driver) if "the server responded with a status of" not in m]


def _sideways_overflow(driver: WebDriver) -> list[str]:
    """What sticks out of the viewport to the right (empty: the page does not scroll
    sideways), as tag.class of the outermost such elements."""
    return list(
        driver.execute_script(
            """
            const width = window.innerWidth, out = [];
            if (document.documentElement.scrollWidth <= width) return out;
            const clipped = (el) => {
              for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                if (getComputedStyle(p).overflowX !== 'visible') return true;
              }
              return false;
            };
            for (const el of document.querySelectorAll('body *')) {
              if (el.getBoundingClientRect().right > width + 0.5 && !clipped(el)) {
                out.push(el.tagName.toLowerCase() + '.' + el.getAttribute('class'));
              }
            }
            return out.length ? out : ['(the document)'];
            """
        )
    )


def test_bulk_triage_assignee_comment_export_and_trends_on_a_laptop(
    laptop,
    live_server,
    seeded,
    analyst,
):
    page, base = laptop, live_server.url
    sign_in(page, base, "analyst", PASSWORD)
    assert page.execute_script("return window.innerWidth") == LAPTOP[0]

    # The dashboard: open findings, the trend chart of the uploads, service levels.
    before = int(page.find_element(By.CSS_SELECTOR, ".total-all .number").text)
    trend = page.find_element(By.ID, "trend-chart")
    assert trend.find_elements(By.CSS_SELECTOR, "rect.opened")
    assert page.find_element(By.ID, "sla-table").is_displayed()
    _whole_page_screenshot(page, "dashboard.png")

    # The list opens on open findings; filter one repository, then triage all of it.
    click_and_wait(page, page.find_element(By.LINK_TEXT, "Findings"))
    assert Select(page.find_element(By.ID, "id_status")).first_selected_option.text == "Open"
    Select(page.find_element(By.ID, "id_repository_name")).select_by_value("acme/web-shop")
    _apply_filters(page)
    matching = _count(page)
    assert matching == Finding.objects.filter(repository_name="acme/web-shop").count()
    screenshot(page, "findings.png")
    Select(page.find_element(By.ID, "bulk-action")).select_by_value("false_positive")
    page.find_element(By.ID, "bulk-reason").send_keys("Test fixtures, not shipped.")
    click_and_wait(page, page.find_element(By.ID, "bulk-all"))
    assert page.find_element(By.ID, "confirm-count").text == str(matching)
    screenshot(page, "triage-confirm.png")
    click_and_wait(page, page.find_element(By.ID, "confirm-triage"))
    assert (
        f"{matching} findings marked false positive"
        in page.find_element(By.CSS_SELECTOR, ".messages").text
    )
    assert "No findings match these filters." in page.page_source
    triaged = Finding.objects.filter(repository_name="acme/web-shop", false_positive=True)
    assert triaged.count() == matching
    assert (
        FindingEvent.objects.filter(
            kind="false_positive", actor=analyst, reason="Test fixtures, not shipped."
        ).count()
        == matching
    )

    # Tick two rows of another repository and accept their risk until a date.
    page.get(base + "/findings/?repository_name=acme%2Fledger")
    boxes = page.find_elements(By.CSS_SELECTOR, "input[name=ids]")[:2]
    for box in boxes:
        box.click()
    Select(page.find_element(By.ID, "bulk-action")).select_by_value("risk_accepted")
    page.find_element(By.ID, "bulk-reason").send_keys("Fixed in the next release.")
    until = (timezone.now().date() + timedelta(days=14)).isoformat()
    page.execute_script("document.getElementById('bulk-until').value = arguments[0]", until)
    click_and_wait(page, page.find_element(By.ID, "bulk-selected"))
    assert page.find_element(By.ID, "confirm-count").text == "2"
    click_and_wait(page, page.find_element(By.ID, "confirm-triage"))
    accepted = Finding.objects.filter(risk_accepted=True)
    assert accepted.count() == 2
    assert {str(f.risk_accepted_until) for f in accepted} == {until}

    # The dashboard counts what is still open.
    click_and_wait(page, page.find_element(By.LINK_TEXT, "Dashboard"))
    after = int(page.find_element(By.CSS_SELECTOR, ".total-all .number").text)
    assert after == before - matching - 2

    # Export the ledger's open findings: the downloaded CSV holds exactly the list's rows.
    downloads = Path(tempfile.mkdtemp(prefix="gerion-downloads-"))
    page.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    page.get(base + "/findings/?repository_name=acme%2Fledger")
    listed = _count(page)
    page.find_element(By.ID, "export-csv").click()
    deadline = time.monotonic() + 15
    while not list(downloads.glob("findings-*.csv")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (exported,) = downloads.glob("findings-*.csv")
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert len(rows) == listed
    assert {row["repository_name"] for row in rows} == {"acme/ledger"}
    assert {row["status"] for row in rows} == {"Active"}

    # Open a finding, take it, and leave a comment.
    page.find_element(By.CSS_SELECTOR, "table.findings td.title a").click()
    Select(page.find_element(By.ID, "id_assignee")).select_by_visible_text("analyst (me)")
    click_and_wait(page, page.find_element(By.ID, "assign-button"))
    assert page.find_element(By.ID, "assignee").text == "analyst"
    page.find_element(By.ID, "id_body").send_keys("Owned by the ledger team; ticket LED-42.")
    click_and_wait(page, page.find_element(By.ID, "comment-button"))
    comment = page.find_element(By.ID, "comments").text
    assert "analyst" in comment
    assert "Owned by the ledger team; ticket LED-42." in comment
    _whole_page_screenshot(page, "finding.png")
    title = page.find_element(By.ID, "finding-title").text
    click_and_wait(page, page.find_element(By.LINK_TEXT, "Assigned to me"))
    assert [a.text for a in page.find_elements(By.CSS_SELECTOR, "td.title a")] == [title]
    assert console_errors(page) == []


def test_the_phone_layout_fits_the_screen_and_keeps_sign_out_in_reach(
    phone,
    live_server,
    seeded,
    analyst,
):
    page, base = phone, live_server.url
    sign_in(page, base, "analyst", PASSWORD)
    assert page.execute_script("return window.innerWidth") == PHONE[0]
    pk = Finding.objects.filter(scan_type="SCA").order_by("pk").first().pk
    for path, name in (
        ("/", "phone-dashboard.png"),
        ("/findings/?status=all", "phone-findings.png"),
        (f"/findings/{pk}/", "phone-finding.png"),
    ):
        page.get(base + path)
        assert _sideways_overflow(page) == [], path
        sign_out = page.find_element(By.ID, "sign-out")
        assert sign_out.is_displayed(), path
        assert page.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            " return r.left >= 0 && r.right <= window.innerWidth && r.top >= 0;",
            sign_out,
        ), path
        # Badges stay on one line.
        for badge in page.find_elements(By.CSS_SELECTOR, ".status, .badge")[:30]:
            assert badge.size["height"] < 30, (path, badge.text)
        screenshot(page, name)

    # The menu is folded behind a toggle, and so are the list's filters.
    page.get(base + "/findings/")
    nav = page.find_element(By.ID, "main-nav")
    assert not nav.is_displayed()
    page.find_element(By.CSS_SELECTOR, "label[for=nav-toggle]").click()
    assert nav.is_displayed()
    assert not page.find_element(By.ID, "filters").is_displayed()
    page.find_element(By.CSS_SELECTOR, "label[for=filters-toggle]").click()
    assert page.find_element(By.ID, "filters").is_displayed()
    assert _sideways_overflow(page) == []
    # The table scrolls inside its card, not the page.
    assert page.execute_script(
        "const s = document.querySelector('.table-scroll'); return s.scrollWidth > s.clientWidth"
    )
    assert console_errors(page) == []
    click_and_wait(page, page.find_element(By.ID, "sign-out"))
    page.get(base + "/")
    assert "/accounts/login/" in page.current_url


def test_error_pages_have_the_house_style_and_a_way_out_and_the_admin_says_gerion(
    laptop, live_server
):
    page, base = laptop, live_server.url
    UserFactory(username="outsider")
    sign_in(page, base, "outsider", PASSWORD)
    # Signed in without staff rights: a 403 in the house style, with Sign out.
    page.get(base + "/findings/")
    assert page.find_element(By.TAG_NAME, "h1").text == "Forbidden (403)"
    assert page.find_element(By.CSS_SELECTOR, "header.topbar .brand").text == "Gerion"
    assert (
        page.execute_script(
            "return getComputedStyle(document.querySelector('.topbar')).backgroundColor"
        )
        == "rgb(17, 24, 39)"
    )
    screenshot(page, "error-403.png")
    assert _csp_violations(page) == []
    click_and_wait(page, page.find_element(By.ID, "sign-out"))
    page.get(base + "/findings/")
    assert "/accounts/login/" in page.current_url

    page.get(base + "/no-such-page/")
    assert page.find_element(By.TAG_NAME, "h1").text == "Page not found (404)"
    assert page.find_element(By.LINK_TEXT, "Back to the dashboard").is_displayed()
    assert _csp_violations(page) == []

    StaffFactory(username="operator", is_superuser=True)
    sign_in(page, base, "operator", PASSWORD, path="/admin/login/")
    page.get(base + "/admin/")
    assert page.find_element(By.CSS_SELECTOR, "#site-name a").text == "Gerion"
    assert page.find_element(By.CSS_SELECTOR, ".gerion-admin-nav").text.split() == [
        "Dashboard",
        "Findings",
        "Admin",
    ]
    screenshot(page, "admin.png")
    assert _csp_violations(page) == []
