"""NUL characters, which PostgreSQL cannot store or compare, in everything a client controls:
query values (staff pages, every admin changelist, the API), paths, form fields and cookies.
Each is a 400 (a problem on the API), never a 500."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.contrib import admin
from django.test import Client

from findings.models import Finding
from tests.apikeys.conftest import token_for
from tests.factories import PASSWORD, SuperuserFactory, make_api_key, store_scan

pytestmark = pytest.mark.django_db

NUL_VALUES = ["%00", "x%00y", "%00%00%00", "acme%2Fapp%00"]


@pytest.fixture
def stored():
    """One upload, so that every filter and menu has something to offer."""
    key, _ = make_api_key(client_id="ci-hostile")
    store_scan(key, "ci-hostile", [{"finding_id": "a", "title": "A", "severity": "HIGH"}])
    return Finding.objects.get()


@pytest.fixture
def superuser_client():
    client = Client(raise_request_exception=False)
    client.force_login(SuperuserFactory())
    return client


def assert_refused_cleanly(response) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])


@pytest.mark.parametrize("value", NUL_VALUES)
@pytest.mark.parametrize(
    "name",
    ["repository_name", "branch_name", "q", "scan_type", "severity", "status", "sort", "cursor"],
)
def test_nul_in_a_staff_list_filter_is_a_400(superuser_client, stored, name, value):
    """The probe: /findings/?repository_name=%00 and branch_name=x%00y gave 500s."""
    assert_refused_cleanly(superuser_client.get(f"/findings/?{name}={value}"))


def _changelist_parameters(client: Client, url: str) -> set[str]:
    """Every query parameter the changelist's own links use (filters, sorting, dates)."""
    html = client.get(url).content.decode()
    names = {"q", "o", "p", "e", "_to_field", "_popup", "all"}
    for link in re.findall(r'href="(\?[^"]*)"', html):
        names.update(name for name, _ in parse_qsl(urlsplit(unescape(link)).query))
    return names


def _admin_models() -> list[str]:
    return sorted(
        f"{model._meta.app_label}/{model._meta.model_name}" for model in admin.site._registry
    )


@pytest.mark.parametrize("model", _admin_models())
def test_nul_in_any_parameter_of_any_admin_changelist_is_refused(superuser_client, stored, model):
    url = f"/admin/{model}/"
    assert superuser_client.get(url).status_code == 200
    parameters = _changelist_parameters(superuser_client, url)
    assert "q" in parameters
    for name in sorted(parameters):
        for value in NUL_VALUES:
            response = superuser_client.get(f"{url}?{name}={value}")
            assert response.status_code == 400, (name, value, response.status_code)


@pytest.mark.parametrize("model", _admin_models())
@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_nul_in_an_admin_object_id_is_refused(superuser_client, model, view):
    assert_refused_cleanly(superuser_client.get(f"/admin/{model}/%00/{view}/"))


@pytest.mark.parametrize("value", NUL_VALUES)
@pytest.mark.parametrize(
    "name", ["repository_name", "branch_name", "scan_type", "severity", "cursor", "limit"]
)
def test_nul_in_an_api_filter_is_a_400_problem(client, stored, name, value):
    _, plaintext = make_api_key(client_id="ci-reader-nul", permissions=("read:findings",))
    token = token_for(Client(), plaintext, "ci-reader-nul")
    response = client.get(f"/api/v1/findings?{name}={value}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    ["/findings/%00/", "/%00", "/api/v1/%00", "/admin/%00/", "/accounts/login/%00", "/static/%00"],
)
def test_nul_in_a_path_is_refused(superuser_client, path):
    assert_refused_cleanly(superuser_client.get(path))


@pytest.mark.parametrize(
    "form",
    [
        {"username": "admin\x00", "password": PASSWORD},
        {"username": "admin", "password": "pass\x00word"},
        {"username": "\x00", "password": "\x00"},
    ],
    ids=["username", "password", "both"],
)
@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_nul_in_sign_in_fields_is_refused(url, form):
    SuperuserFactory(username="admin")
    client = Client(raise_request_exception=False)
    response = client.post(url, form)
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_nul_in_admin_forms_and_actions_is_refused(superuser_client, stored):
    for url, form in [
        (
            "/admin/apikeys/apikey/add/",
            {"name": "n\x00", "client_id": "ok-id", "permissions": "read:findings"},
        ),
        ("/admin/apikeys/apikey/", {"action": "delete_selected", "_selected_action": "\x00"}),
        ("/admin/apikeys/apikey/", {"action": "\x00", "_selected_action": "1"}),
        (f"/findings/{stored.pk}/triage/", {"action": "false_positive", "reason": "r\x00"}),
    ]:
        response = superuser_client.post(url, form)
        assert response.status_code == 400, (url, response.status_code)


@pytest.mark.parametrize("cookie", ["sessionid", "csrftoken", "messages", "gerion_signin"])
def test_nul_in_a_cookie_is_refused(cookie):
    client = Client(raise_request_exception=False)
    client.cookies[cookie] = "abcdefgh\x00ijklmnop"
    for url in ("/", "/accounts/login/", "/admin/"):
        response = client.get(url)
        assert response.status_code == 400, (url, response.status_code)


def test_the_octal_escape_of_a_quoted_cookie_is_refused_too():
    """Cookie values in quotes may spell NUL as \\000 (RFC 2109), which Python decodes."""
    client = Client(raise_request_exception=False)
    response = client.get("/", HTTP_COOKIE='sessionid="abcdefgh\\000ijkl"')
    assert response.status_code == 400


def test_percent_encoded_text_that_only_looks_like_nul_is_fine(superuser_client, stored):
    response = superuser_client.get("/findings/?q=" + quote("%00"))
    assert response.status_code == 200


def test_nul_in_json_bodies_is_a_400_problem(client, stored):
    """JSON bodies are the readers' business: a NUL escaped in them is refused by them."""
    _, plaintext = make_api_key(client_id="ci-json-nul")
    response = client.post(
        "/api/v1/auth/m2m/authenticate",
        data=b'{"client_id": "ci-json\\u0000nul"}',
        content_type="application/json",
        HTTP_X_API_KEY=plaintext,
    )
    assert response.status_code == 400
    token = token_for(Client(), plaintext, "ci-json-nul")
    body = {
        "metadata": {
            "repository_name": "acme/app\u0000",
            "branch_name": "main",
            "build_id": "1",
            "code_path": ".",
            "scan_type": "SAST",
        },
        "findings": [{"finding_id": "b\u0000", "title": "B"}],
    }
    response = client.post(
        "/api/v1/findings",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("value", ["%FF%FE", "%ED%A0%80", "%C0%AF", "x" * 4000])
def test_odd_bytes_and_long_values_in_filters_are_answered(superuser_client, stored, value):
    for url in ("/findings/?repository_name=", "/admin/findings/finding/?q="):
        assert superuser_client.get(url + value).status_code == 200
