"""Security headers and cookies, as a browser and a scanner would see them."""

import pytest
from django.test import Client

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(StaffFactory())
    return client


@pytest.mark.parametrize("url", ["/", "/findings/", "/accounts/login/", "/admin/", "/api/v1/docs"])
def test_pages_carry_a_strict_content_security_policy_and_the_usual_headers(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_api_answers_are_not_cached_and_never_framed(client):
    response = client.get("/api/v1/findings")
    assert response.status_code == 401
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_production_settings_send_hsts_and_secure_cookies(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client = Client()
    assert client.get("/accounts/login/").status_code == 301  # plain HTTP goes to HTTPS
    response = client.get("/accounts/login/", secure=True)
    assert "max-age=31536000" in response["Strict-Transport-Security"]
    assert "includeSubDomains" in response["Strict-Transport-Security"]
    csrf = response.cookies["csrftoken"]
    assert csrf["secure"]
    assert csrf["httponly"]
    assert csrf["samesite"] == "Lax"


def test_the_session_cookie_is_http_only_and_short_lived(db):
    StaffFactory(username="shift")
    client = Client()
    client.post(
        "/accounts/login/", {"username": "shift", "password": "correct horse battery staple"}
    )
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 8 * 3600
