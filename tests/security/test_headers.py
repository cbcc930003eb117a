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


def stored_finding_id() -> int:
    from findings.models import Finding
    from tests.factories import make_api_key, store_scan

    key, _ = make_api_key(client_id="ci-headers")
    store_scan(key, "ci-headers", [{"finding_id": "a", "title": "A"}])
    return Finding.objects.get().pk


def assert_private_no_store(response) -> None:
    directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
    assert {"private", "no-store"} <= directives, response.get("Cache-Control")


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/findings/",
        "/findings/?severity=HIGH",
        "detail",
        "/admin/",
        "/admin/apikeys/apikey/",
        "/admin/findings/finding/",
        "/admin/password_change/",
        "/no-such-page/",
    ],
)
def test_staff_and_admin_pages_are_never_stored_by_a_cache(url):
    """The probe: /, /findings/ and /findings/<id>/ sent no Cache-Control at all."""
    from tests.factories import SuperuserFactory

    if url == "detail":
        url = f"/findings/{stored_finding_id()}/"
    client = Client()
    client.force_login(SuperuserFactory())
    response = client.get(url)
    assert response.status_code in (200, 404)
    assert_private_no_store(response)


@pytest.mark.parametrize(
    ("url", "status"),
    [("/", 302), ("/findings/", 302), ("/accounts/login/", 200), ("/admin/login/", 200)],
)
def test_pages_for_anonymous_visitors_are_not_stored_either(client, url, status):
    response = client.get(url)
    assert response.status_code == status
    assert_private_no_store(response)


def test_a_403_page_is_not_stored(db):
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    response = client.get("/findings/")
    assert response.status_code == 403
    assert_private_no_store(response)


def test_static_files_stay_cacheable(client):
    response = client.get("/static/gerion/staff.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


API_ANSWERS = [
    ("GET", "/api/v1/nope", {}, 404),
    ("HEAD", "/api/v1/nope", {}, 404),
    ("GET", "/api/v1/findings", {}, 401),
    ("OPTIONS", "/api/v1/findings", {}, 401),
    ("DELETE", "/api/v1/auth/m2m/authenticate", {}, 405),
    ("POST", "/api/v1/auth/m2m/authenticate", {"CONTENT_LENGTH": "999999999"}, 413),
    ("POST", "/api/v1/auth/m2m/authenticate", {"CONTENT_LENGTH": "-1"}, 400),
    ("POST", "/api/v1/auth/m2m/authenticate", {"HTTP_TRANSFER_ENCODING": "chunked"}, 411),
    ("POST", "/api/v1/auth/m2m/authenticate", {}, 401),
    ("GET", "/api/v1/_test/boom", {}, 500),
    ("GET", "/api/v1/_test/db-down", {}, 503),
    ("GET", "/api/v1/findings?repository_name=%00", {}, 400),
]


@pytest.mark.parametrize(
    ("method", "url", "extra", "status"),
    API_ANSWERS,
    ids=[f"{m}-{u.rsplit('/', 1)[1]}-{s}" for m, u, _, s in API_ANSWERS],
)
def test_every_api_answer_carries_the_security_headers(db, settings, method, url, extra, status):
    """The probe: a 404 problem had no nosniff and no no-store (it was built after the
    headers were added)."""
    settings.ROOT_URLCONF = "tests.gerion.urls"
    response = Client(raise_request_exception=False).generic(method, url, **extra)
    assert response.status_code == status
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_health_checks_carry_the_security_headers_too(client):
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in response["Cache-Control"]


def test_the_jwks_keeps_its_cache_lifetime(client):
    response = client.get("/api/v1/auth/jwks")
    assert response.status_code == 200
    assert "max-age=" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"


def assert_nothing_inline(html: str, url: str) -> None:
    import re

    assert "<style" not in html, f"{url}: inline <style>"
    assert not re.search(r"<[^>]+\sstyle\s*=", html), f"{url}: style attribute"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), f"{url}: event handler attribute"
    for script in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in script, f"{url}: inline <script>"


def test_no_page_carries_inline_style_or_script(settings):
    """What the content security policy would block, page by page (the browser tests see the
    rest): staff pages, every admin list and form, sign-in, the API reference, error pages."""
    from django.contrib import admin

    from tests.factories import SuperuserFactory

    settings.ROOT_URLCONF = "tests.gerion.urls"
    settings.GERION_LOGIN_FAILURE_RATE = "1/d"
    pk = stored_finding_id()
    client = Client(raise_request_exception=False)
    anonymous = Client(raise_request_exception=False)
    urls = ["/accounts/login/", "/api/v1/docs", "/no-such-page/", "/_test/boom", "/_test/db-down"]
    for url in urls:
        response = anonymous.get(url)
        assert response["Content-Type"].startswith("text/html"), url
        assert_nothing_inline(response.content.decode(), url)
    for _ in range(2):
        paused = anonymous.post("/accounts/login/", {"username": "x", "password": "y"})
    assert paused.status_code == 429
    assert_nothing_inline(paused.content.decode(), "429")

    client.force_login(SuperuserFactory())
    urls = ["/", "/findings/", f"/findings/{pk}/", "/admin/", "/admin/password_change/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls += [base, base + "add/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 403), (url, response.status_code)
        assert_nothing_inline(response.content.decode(), url)
