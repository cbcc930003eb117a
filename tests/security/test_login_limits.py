"""Brute-force protection on both sign-in forms: failed attempts per client address."""

import pytest
from django.test import Client

from tests.factories import PASSWORD, SuperuserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tight_limit(settings):
    settings.GERION_LOGIN_FAILURE_RATE = "5/5m"


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_after_too_many_failures_even_the_right_password_is_refused(url):
    SuperuserFactory(username="admin")
    client = Client()

    def attempt(password, ip="203.0.113.5"):
        return client.post(url, {"username": "admin", "password": password}, REMOTE_ADDR=ip)

    assert [attempt("wrong").status_code for _ in range(5)] == [200] * 5
    refused = attempt(PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in refused.content
    # Someone else, elsewhere, signs in as usual.
    assert attempt(PASSWORD, ip="198.51.100.20").status_code == 302


def test_successful_sign_ins_do_not_count(db):
    SuperuserFactory(username="admin")
    for _ in range(8):
        client = Client()
        response = client.post(
            "/accounts/login/",
            {"username": "admin", "password": PASSWORD},
            REMOTE_ADDR="203.0.113.6",
        )
        assert response.status_code == 302
