"""Headers a proxy would set (scheme, host, port, prefix) are a client's lies unless the operator
says a proxy of ours is in front: on a real gunicorn, the `Link` of a findings page (built from
the request's scheme and host) must not move."""

from __future__ import annotations

import pytest
import requests

from tests.factories import SuperuserFactory, make_api_key, store_scan
from tests.support.servers import gunicorn, live_database_url, nginx, token_over_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FORGED = {
    "x-forwarded-proto": {"X-Forwarded-Proto": "https"},
    "x-forwarded-ssl": {"X-Forwarded-Ssl": "on"},
    "x-forwarded-protocol": {"X-Forwarded-Protocol": "ssl"},
    "front-end-https": {"Front-End-Https": "on"},
    "forwarded": {"Forwarded": "for=1.2.3.4;proto=https;host=evil.example"},
    "x-forwarded-host": {"X-Forwarded-Host": "evil.example"},
    "x-forwarded-port": {"X-Forwarded-Port": "8443"},
    "x-forwarded-prefix": {"X-Forwarded-Prefix": "/evil"},
    "x-script-name": {"X-Script-Name": "/evil"},
    "script-name": {"SCRIPT_NAME": "/evil"},
    "x-original-url": {"X-Original-URL": "/evil"},
}


@pytest.fixture
def reader_token(db):
    key, plaintext = make_api_key(client_id="ci-forwarded")
    store_scan(key, "ci-forwarded", [{"finding_id": str(n), "title": f"T{n}"} for n in range(3)])
    return plaintext


def token(server, plaintext: str) -> str:
    return token_over_http(server.url, plaintext, "ci-forwarded")


def next_link(server, bearer: str, headers: dict[str, str]) -> str:
    response = requests.get(
        server.url + "/api/v1/findings?limit=1",
        headers={"Authorization": f"Bearer {bearer}", **headers},
        timeout=10,
    )
    assert response.status_code == 200
    return response.headers["Link"]


def test_forwarded_headers_from_a_client_change_nothing(tmp_path, reader_token):
    """The probe: gunicorn trusted X-Forwarded-Proto from 127.0.0.1 by default, and the Link
    header turned into https:// with GERION_BEHIND_TLS_PROXY off."""
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": live_database_url()}) as server:
        bearer = token(server, reader_token)
        expected = f"<{server.url}/api/v1/findings?"
        for name, headers in FORGED.items():
            assert next_link(server, bearer, headers).startswith(expected), name


def test_behind_a_tls_proxy_the_scheme_comes_from_it(tmp_path, reader_token):
    env = {"DATABASE_URL": live_database_url(), "GERION_BEHIND_TLS_PROXY": "1"}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        bearer = token(server, reader_token)
        host = server.url.removeprefix("http://")
        link = next_link(server, bearer, {"X-Forwarded-Proto": "https"})
        assert link.startswith(f"<https://{host}/api/v1/findings?")
        # Still only the scheme: host and prefix are not taken from the proxy's headers.
        link = next_link(
            server, bearer, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        )
        assert link.startswith(f"<https://{host}/api/v1/findings?")


def test_behind_nginx_a_forged_client_address_does_not_dodge_the_sign_in_limit(tmp_path):
    """With GERION_TRUSTED_PROXY_COUNT=1 the address is nginx's view of the client, whatever
    X-Forwarded-For the client sends along."""
    SuperuserFactory(username="admin")
    env = {
        "DATABASE_URL": live_database_url(),
        "GERION_TRUSTED_PROXY_COUNT": "1",
        "GERION_LOGIN_FAILURE_RATE": "5/d",
    }
    with (
        gunicorn(tmp_path, workers=2, env=env) as server,
        nginx(tmp_path, server.url.removeprefix("http://")) as front,
    ):
        statuses = []
        for n in range(7):
            browser = requests.Session()
            browser.get(front.url + "/accounts/login/", timeout=10)
            form = {
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "username": f"someone-{n}",
                "password": "wrong",
            }
            response = browser.post(
                front.url + "/accounts/login/",
                data=form,
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
                timeout=10,
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429, 429]
