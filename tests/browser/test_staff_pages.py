"""Staff in a real browser: sign in, read the dashboard, filter, open a finding, triage it,
and see the triage survive an upload made through the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import (
    REPOSITORIES,
    Api,
    click_and_wait,
    console_errors,
    screenshot,
    sign_in,
)
from tests.factories import PASSWORD, StaffFactory, SuperuserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_staff_triage_journey(page, live_server, seeded):
    analyst = StaffFactory(username="analyst")
    analyst.user_permissions.add(Permission.objects.get(codename="triage_finding"))
    base = live_server.url

    # Anonymous: sent to the login page, then back where they wanted to go.
    page.get(base + "/")
    assert "/accounts/login/" in page.current_url
    sign_in(page, base, "analyst", PASSWORD, path=page.current_url.replace(base, ""))
    assert page.find_element(By.TAG_NAME, "h1").text == "Dashboard"

    chart = page.find_element(By.ID, "open-findings-chart")
    bars = chart.find_elements(By.CSS_SELECTOR, "g.bar")
    assert len(bars) == len(REPOSITORIES)
    assert chart.find_elements(By.CSS_SELECTOR, "rect.sev-critical")
    screenshot(page, "dashboard.png")

    # Filter the list to critical findings with the form.
    click_and_wait(page, page.find_element(By.LINK_TEXT, "Findings"))
    Select(page.find_element(By.ID, "id_severity")).select_by_value("CRITICAL")
    Select(page.find_element(By.ID, "id_status")).select_by_value("Active")
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    badges = page.find_elements(By.CSS_SELECTOR, "table.findings .badge")
    assert badges
    assert {badge.text.lower() for badge in badges} == {"critical"}
    screenshot(page, "findings.png")

    # Search for one finding and open it.
    search = page.find_element(By.ID, "id_q")
    search.clear()
    search.send_keys("refund handler")
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    click_and_wait(page, page.find_element(By.LINK_TEXT, "SQL injection in refund handler"))
    assert page.find_element(By.ID, "finding-status").text == "Active"
    raw = page.find_element(By.CSS_SELECTOR, "pre.raw").text
    assert '"rule": "python.django.sqli"' in raw  # the scanner's unknown fields, pretty-printed

    # Triage it as a false positive.
    page.find_element(By.ID, "id_reason").send_keys("Parameterised by the ORM wrapper.")
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "button[value=false_positive]"))
    assert page.find_element(By.ID, "finding-status").text == "False positive"
    assert "Triage recorded" in page.find_element(By.CSS_SELECTOR, ".messages").text

    # The next scan reports it again, reworded: the triage stands.
    seeded.upload(
        "acme/payments",
        [
            {
                "finding_id": "semgrep-sqli-1",
                "title": "SQL injection in refund handler",
                "severity": "High",
                "file_path": "payments/refunds.py",
                "line_number": 91,
            },
        ],
        build="101",
        scan_type="SAST",
    )
    page.refresh()
    assert page.find_element(By.ID, "finding-status").text == "False positive"
    assert "build 101" in page.find_element(By.CSS_SELECTOR, "dl.fields").text + page.page_source
    history = page.find_element(By.CSS_SELECTOR, "ol.history").text
    assert "Marked false positive by analyst" in history
    assert console_errors(page) == []


def test_html_in_a_title_renders_as_text_on_every_page(page, live_server):
    hostile = "<script>alert(1)</script>"
    api = Api(live_server.url, client_id="xss-probe")
    api.upload(
        f"acme/{hostile}",
        [
            {
                "finding_id": "x1",
                "title": hostile,
                "severity": "High",
                "file_path": hostile,
                "description": hostile,
                "component_name": '"><img src=x onerror=alert(2)>',
            },
        ],
        build=hostile,
    )
    SuperuserFactory(username="root-admin")
    sign_in(page, live_server.url, "root-admin", PASSWORD)
    from findings.models import Finding, Upload

    finding, upload = Finding.objects.get(), Upload.objects.get()
    pages = {
        "/": "dashboard",
        "/findings/": "list",
        f"/findings/{finding.pk}/": "detail",
        "/admin/findings/finding/": "admin list",
        f"/admin/findings/finding/{finding.pk}/change/": "admin finding",
        f"/admin/findings/upload/{upload.pk}/change/": "admin upload",
    }
    for path, name in pages.items():
        page.get(live_server.url + path)
        with pytest.raises(NoAlertPresentException):
            page.switch_to.alert.text  # noqa: B018 - a script that ran would have left an alert
        body = page.find_element(By.TAG_NAME, "body").text
        assert hostile in body, f"{name}: the title should be shown as text"
        assert not page.find_elements(By.CSS_SELECTOR, "img[src=x]"), name
        # Our own pages and the admin run under the content security policy without a
        # single violation (and the injected markup would have been one).
        assert console_errors(page) == [], name
