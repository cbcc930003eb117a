"""Operators in a real browser: issue a key in the admin, see its plaintext once, use it over
HTTP, revoke it with confirmation, and see its existing token refused."""

from __future__ import annotations

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from apikeys.models import ApiKey
from tests.browser.conftest import click_and_wait, console_errors, screenshot, sign_in
from tests.factories import PASSWORD, SuperuserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def add_key(page, base, name, client_id, *, repositories=None):
    """Fill in the admin's "Add API key" form (both permissions) and save it."""
    page.get(base + "/admin/apikeys/apikey/add/")
    page.find_element(By.ID, "id_name").send_keys(name)
    page.find_element(By.ID, "id_client_id").send_keys(client_id)
    for checkbox in page.find_elements(By.CSS_SELECTOR, "input[name=permissions]"):
        checkbox.click()
    field = page.find_element(By.ID, "id_repository_patterns")
    assert field.get_attribute("value") == "*"  # every repository unless narrowed
    if repositories is not None:
        field.clear()
        field.send_keys(repositories)
    click_and_wait(page, page.find_element(By.NAME, "_save"))


def test_issue_use_and_revoke_a_key_in_the_admin(page, live_server):
    SuperuserFactory(username="oncall")
    base = live_server.url
    sign_in(page, base, "oncall", PASSWORD, path="/admin/login/?next=/admin/")

    add_key(page, base, "GitHub Actions, payments", "gha-payments")

    plaintext = page.find_element(By.ID, "plaintext-key").get_attribute("value")
    assert plaintext.startswith("gerion_")
    copy = page.find_element(By.ID, "copy-key")
    assert copy.is_displayed()  # our script ran under the content security policy
    copy.click()
    # The clipboard answers asynchronously.
    WebDriverWait(page, 10).until(lambda _: copy.text == "Copied")
    assert "shown only this once" in page.page_source
    screenshot(page, "admin-key-created.png")

    # Shown once: neither the list nor the key's own page has it.
    page.get(base + "/admin/apikeys/apikey/")
    assert plaintext not in page.page_source
    assert "gha-payments" in page.page_source
    key = ApiKey.objects.get(client_id="gha-payments")
    page.get(base + f"/admin/apikeys/apikey/{key.pk}/change/")
    assert plaintext not in page.page_source

    # The pipeline uses it.
    auth = requests.post(
        base + "/api/v1/auth/m2m/authenticate",
        json={"client_id": "gha-payments"},
        headers={"X-API-Key": plaintext},
        timeout=10,
    )
    assert auth.status_code == 200
    token = auth.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(base + "/api/v1/findings", headers=bearer, timeout=10).status_code == 200

    # 3 a.m., the key leaked: revoke it from the list, with confirmation.
    page.get(base + "/admin/apikeys/apikey/")
    page.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{key.pk}']").click()
    Select(page.find_element(By.NAME, "action")).select_by_value("revoke_selected")
    click_and_wait(page, page.find_element(By.NAME, "index"))
    assert "cannot be undone" in page.page_source
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None  # not before confirming
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "input[value='Yes, revoke']"))
    assert "Revoked 1 API key" in page.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert "Revoked" in page.find_element(By.CSS_SELECTOR, "#result_list").text

    refused = requests.get(base + "/api/v1/findings", headers=bearer, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["code"] == "api_key_revoked"
    again = requests.post(
        base + "/api/v1/auth/m2m/authenticate",
        json={"client_id": "gha-payments"},
        headers={"X-API-Key": plaintext},
        timeout=10,
    )
    assert again.status_code == 401

    # The audit trail says who did what.
    page.get(base + "/admin/apikeys/auditevent/")
    trail = page.find_element(By.ID, "result_list").text
    assert "API key created" in trail
    assert "API key revoked" in trail
    assert "oncall" in trail
    assert console_errors(page) == []


def test_limit_a_key_to_repositories_and_roll_it_in_the_admin(page, live_server):
    SuperuserFactory(username="oncall")
    base = live_server.url
    sign_in(page, base, "oncall", PASSWORD, path="/admin/login/?next=/admin/")

    add_key(page, base, "GitLab CI, payments", "gl-payments", repositories="payments/*")
    first_key = page.find_element(By.ID, "plaintext-key").get_attribute("value")
    assert "the repositories payments/*" in page.page_source

    def token(plaintext):
        response = requests.post(
            base + "/api/v1/auth/m2m/authenticate",
            json={"client_id": "gl-payments"},
            headers={"X-API-Key": plaintext},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def upload(bearer, repository):
        body = {
            "metadata": {
                "repository_name": repository,
                "branch_name": "main",
                "build_id": "7",
                "code_path": ".",
                "scan_type": "SAST",
            },
            "findings": [{"finding_id": "f1", "title": "SQL injection", "severity": "High"}],
        }
        return requests.post(
            base + "/api/v1/findings",
            json=body,
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
        )

    old_token = token(first_key)
    assert upload(old_token, "payments/api").status_code == 201
    refused = upload(old_token, "search/indexer")
    assert refused.status_code == 403
    assert refused.json()["code"] == "repository_not_allowed"

    # The key's page says, in words, what it may touch.
    key = ApiKey.objects.get(client_id="gl-payments")
    page.get(base + f"/admin/apikeys/apikey/{key.pk}/change/")
    scope = page.find_element(By.CSS_SELECTOR, ".field-repository_scope").text
    assert "every repository under payments/" in scope
    assert "1 of the 1 repositories with findings: payments/api." in scope
    screenshot(page, "admin-key-scope.png")

    # Rotate the CI secret without a failed build: roll with an hour of overlap.
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "a.roll-link"))
    grace = page.find_element(By.ID, "id_grace_hours")
    assert grace.get_attribute("value") == "24"
    grace.clear()
    grace.send_keys("1")
    click_and_wait(page, page.find_element(By.CSS_SELECTOR, "input[value='Yes, roll']"))
    second_key = page.find_element(By.ID, "plaintext-key").get_attribute("value")
    assert second_key.startswith("gerion_")
    assert second_key != first_key
    replaces = page.find_element(By.ID, "rolled-from").text
    assert f"It replaces {key.api_key_id}, which keeps working for 59" in replaces
    screenshot(page, "admin-key-rolled.png")

    # The list shows both, the old one retiring with the time it has left.
    page.get(base + "/admin/apikeys/apikey/")
    listing = page.find_element(By.ID, "result_list").text
    successor = ApiKey.objects.get(client_id="gl-payments", retires_at__isnull=True)
    assert "Retiring (rolled)" in listing
    assert f"left; successor {successor.api_key_id}" in listing
    assert f"successor of {key.api_key_id}" in listing
    screenshot(page, "admin-keys-rolling.png")

    # During the overlap both secrets work, with the same repositories.
    new_token = token(second_key)
    assert upload(new_token, "payments/web").status_code == 201
    assert upload(new_token, "search/indexer").status_code == 403
    assert upload(old_token, "payments/api").status_code == 201
    token(first_key)

    page.get(base + "/admin/apikeys/auditevent/")
    trail = page.find_element(By.ID, "result_list").text
    assert "API key rolled" in trail
    assert console_errors(page) == []
