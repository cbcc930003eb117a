"""Request bodies: only a findings upload may be large; everything else is refused with a 413
problem before a byte of the body is read (sign-in forms included, whoever is asking)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from django.test import Client

from tests.support.servers import gunicorn

pytestmark = pytest.mark.django_db

SMALL = 64 * 1024


class UnreadableBody:
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, *args: object) -> bytes:
        raise AssertionError("the body was read")

    readline = read


def post(path: str, length: int | str, *, method: str = "POST", **extra: str):
    environ: dict[str, Any] = {
        "CONTENT_LENGTH": str(length),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "wsgi.input": UnreadableBody(),
        **extra,
    }
    return Client(raise_request_exception=False).generic(method, path, **environ)


def assert_413_problem(response) -> None:
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["code"] == "payload_too_large"
    assert str(SMALL) in body["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/accounts/login/"),
        ("POST", "/admin/login/"),
        ("POST", "/admin/password_change/"),
        ("POST", "/admin/apikeys/apikey/add/"),
        ("POST", "/accounts/logout/"),
        ("POST", "/findings/1/triage/"),
        ("POST", "/findings/"),
        ("POST", "/"),
        ("POST", "/api/v1/auth/m2m/authenticate"),
        ("POST", "/api/v1/auth/jwks"),
        ("POST", "/api/v1/schema"),
        ("POST", "/api/v1/reporting/findings"),
        ("PUT", "/api/v1/findings"),
        ("PATCH", "/api/v1/findings"),
        ("DELETE", "/api/v1/findings"),
        ("POST", "/api/v1/findings/"),
        ("POST", "/healthz"),
        ("POST", "/static/gerion/staff.css"),
        ("POST", "/no/such/page"),
    ],
    ids=lambda value: value.strip("/").replace("/", "-") or "root",
)
def test_a_body_over_the_small_limit_is_refused_before_it_is_read(method, path):
    """The probe: an anonymous 90 MB password was buffered (and the worker kept the memory)."""
    assert_413_problem(post(path, 90 * 1024 * 1024, method=method))
    assert_413_problem(post(path, SMALL + 1, method=method))


def test_sign_in_forms_within_the_small_limit_work_as_before():
    response = Client().post("/accounts/login/", {"username": "x" * 100, "password": "y" * 60_000})
    assert response.status_code == 200  # a wrong password, answered by the form


def test_the_small_limit_is_configurable(settings):
    settings.GERION_MAX_SMALL_BODY_BYTES = 1024
    response = post("/accounts/login/", 1025)
    assert response.status_code == 413


def test_only_a_findings_upload_keeps_the_large_limit(settings):
    # Over the small limit, under the large one: on to authentication (no token here).
    response = Client().post(
        "/api/v1/findings", data=b"x" * (SMALL * 4), content_type="application/json"
    )
    assert response.status_code == 401
    settings.GERION_MAX_BODY_BYTES = SMALL * 2
    assert post("/api/v1/findings", SMALL * 2 + 1).status_code == 413


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/v1/auth/m2m/authenticate"])
def test_a_chunked_body_is_refused_without_being_read(path):
    response = post(path, "", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == "length_required"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_413_while_the_client_has_sent_no_body_yet(tmp_path):
    """On the real server: the answer comes at once, without waiting for 90 MB."""
    with gunicorn(tmp_path, workers=1) as server:
        port = int(server.url.rsplit(":", 1)[1])
        for head in (
            "POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {90 * 1024 * 1024}\r\n\r\n",
            "POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head.encode())
                started = time.monotonic()
                answer = sock.recv(4096).decode(errors="replace")
                assert time.monotonic() - started < 4
            status = int(answer.split(" ", 2)[1])
            assert status in (411, 413), answer
            assert "application/problem+json" in answer
