"""No plaintext API key and no token in any log line, error body or admin page.

A real gunicorn serves a whole working day in miniature (an operator issues a key in the
admin, a pipeline authenticates, uploads and lists, people make mistakes, the key is revoked)
with DEBUG logging; then every log line and every page and body it answered is searched for
the secrets."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time

import pytest
import requests

from tests.factories import PASSWORD, SuperuserFactory, make_api_key
from tests.support.servers import gunicorn, live_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_no_key_or_token_leaks_into_logs_errors_or_admin_pages(tmp_path):
    SuperuserFactory(username="oncall")
    env = {"DATABASE_URL": live_database_url(), "GERION_LOG_LEVEL": "DEBUG"}
    # Every body the service answered, but the two that carry a secret by design: the one-time
    # key page and the token response.
    seen: list[str] = []

    with gunicorn(tmp_path, workers=2, env=env) as server:
        base = server.url

        def keep(response: requests.Response) -> requests.Response:
            seen.append(
                response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
            )
            return response

        # The operator issues a key in the admin; the plaintext is shown once.
        admin = requests.Session()
        keep(admin.get(base + "/admin/login/", timeout=10))
        keep(
            admin.post(
                base + "/admin/login/?next=/admin/",
                timeout=10,
                data={
                    "username": "oncall",
                    "password": PASSWORD,
                    "next": "/admin/",
                    "csrfmiddlewaretoken": admin.cookies["csrftoken"],
                },
            )
        )
        keep(admin.get(base + "/admin/apikeys/apikey/add/", timeout=10))
        created = admin.post(
            base + "/admin/apikeys/apikey/add/",
            timeout=10,
            data={
                "name": "Jenkins",
                "client_id": "jenkins-1",
                "permissions": ["write:findings", "read:findings"],
                "csrfmiddlewaretoken": admin.cookies["csrftoken"],
                "_save": "Save",
            },
        )
        plaintext = re.search(r'value="(gerion_[A-Za-z0-9_]+)"', created.text).group(1)

        # The pipeline at work, and its mistakes.
        auth = base + "/api/v1/auth/m2m/authenticate"
        # The one answer that carries the token by design is not searched.
        issued = requests.post(
            auth, json={"client_id": "jenkins-1"}, headers={"X-API-Key": plaintext}, timeout=10
        )
        token = issued.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        keep(
            requests.post(
                auth,
                json={"client_id": "jenkins-1"},
                headers={"Authorization": f"Bearer {plaintext}"},
                timeout=10,
            )
        )
        keep(
            requests.post(
                auth,
                json={"client_id": "someone-else"},
                headers={"X-API-Key": plaintext},
                timeout=10,
            )
        )
        keep(
            requests.post(
                auth,
                json={"client_id": "jenkins-1"},
                headers={"X-API-Key": plaintext[:-1] + "x"},
                timeout=10,
            )
        )
        keep(requests.post(auth, data=b"{not json", headers={"X-API-Key": plaintext}, timeout=10))
        keep(
            requests.post(
                auth + f"?api_key={plaintext}", json={"client_id": "jenkins-1"}, timeout=10
            )
        )
        upload = {
            "metadata": {
                "repository_name": "acme/app",
                "branch_name": "main",
                "build_id": "7",
                "code_path": ".",
            },
            "findings": [{"finding_id": "a", "title": "A", "scan_type": "SAST"}],
        }
        keep(requests.post(base + "/api/v1/findings", json=upload, headers=bearer, timeout=10))
        keep(
            requests.post(
                base + "/api/v1/findings", json={"metadata": {}}, headers=bearer, timeout=10
            )
        )
        keep(requests.get(base + f"/api/v1/findings?token={token}", headers=bearer, timeout=10))
        keep(
            requests.get(
                base + "/api/v1/findings", timeout=10, headers={"Authorization": f"Bearer {token}x"}
            )
        )
        keep(requests.get(base + "/api/v1/nowhere", headers=bearer, timeout=10))

        # The key leaks; the operator revokes it; the old token is refused.
        key_page = admin.get(base + "/admin/apikeys/apikey/", timeout=10)
        keep(key_page)
        pk = re.search(r"/admin/apikeys/apikey/(\d+)/change/", key_page.text).group(1)
        keep(
            admin.post(
                base + f"/admin/apikeys/apikey/{pk}/revoke/",
                timeout=10,
                data={"confirm": "yes", "csrfmiddlewaretoken": admin.cookies["csrftoken"]},
            )
        )
        keep(requests.get(base + "/api/v1/findings", headers=bearer, timeout=10))
        keep(
            requests.post(
                auth, json={"client_id": "jenkins-1"}, headers={"X-API-Key": plaintext}, timeout=10
            )
        )
        for path in (
            "/admin/apikeys/apikey/",
            f"/admin/apikeys/apikey/{pk}/change/",
            "/admin/apikeys/auditevent/",
            "/admin/findings/upload/",
            "/admin/admin/logentry/",
            "/",
        ):
            keep(admin.get(base + path, timeout=10))
        log = server.log()

    secrets = {
        "the key": plaintext,
        "the key's secret part": plaintext.split("_")[2],
        "the token": token,
        "the token's signature": token.split(".")[2],
    }
    assert "jenkins-1" in log  # the log does say who did what
    assert len(log.splitlines()) > 30
    for name, secret in secrets.items():
        assert secret not in log, f"{name} is in the log"
        for body in seen:
            assert secret not in body, f"{name} is in a response"


def _variants(plaintext: str) -> dict[str, str]:
    """The ways a key reaches a server when a client or a person mangles it."""
    return {
        "as is": plaintext,
        "underscores percent-encoded": plaintext.replace("_", "%5F"),
        "all percent-encoded": "".join(f"%{b:02X}" for b in plaintext.encode()),
        "dashes for underscores": plaintext.replace("_", "-"),
        "upper case": plaintext.upper(),
    }


def _raw(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        with contextlib.suppress(OSError):
            sock.recv(65536)


def test_a_key_sent_in_any_form_in_any_header_or_auth_body_stays_out_of_the_log(tmp_path):
    """The probe: a key percent-encoded, or with "-" for "_", in a header reached the log.
    Redaction is by field (Authorization, X-API-Key, Cookie, Set-Cookie, request ids, Host,
    whatever gunicorn quotes, bodies of sign-ins and authentication), not by the key's shape."""
    _, plaintext = make_api_key(client_id="odd-places")
    secret = plaintext.split("_")[2]
    env = {"DATABASE_URL": live_database_url(), "GERION_LOG_LEVEL": "DEBUG"}
    with gunicorn(tmp_path, workers=2, env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        auth = server.url + "/api/v1/auth/m2m/authenticate"
        for value in _variants(plaintext).values():
            for headers in (
                {"X-API-Key": value},
                {"Authorization": f"Bearer {value}"},
                {"Authorization": value},
                {"Cookie": f"sessionid={value}; csrftoken={value}"},
                {"X-Request-ID": value},
                {"Host": value},
                {"X-Forwarded-For": value},
                {"Referer": f"https://example.com/?k={value}"},
            ):
                requests.post(auth, json={"client_id": "odd-places"}, headers=headers, timeout=10)
                requests.get(server.url + "/api/v1/findings", headers=headers, timeout=10)
                requests.get(server.url + "/findings/", headers=headers, timeout=10)
            # Bodies of authentication and sign-in requests.
            requests.post(auth, json={"client_id": value}, timeout=10)
            requests.post(auth, data=f'{{"client_id": "x", "api_key": "{value}"', timeout=10)
            requests.post(
                server.url + "/accounts/login/",
                data={"username": value, "password": value},
                timeout=10,
            )
            # What gunicorn refuses and quotes: a header line without a colon, a bad method,
            # a bad request line, an invalid header value.
            for data in (
                f"GET / HTTP/1.1\r\nHost: x\r\nX-API-Key {value}\r\n\r\n",
                f"{value} / HTTP/1.1\r\nHost: x\r\n\r\n",
                f"GET /?api_key={value} HTTP/1.1 x\r\nHost: x\r\n\r\n",
                f"GET /?api_key={value} HTTP/9.9\r\nHost: x\r\n\r\n",
                f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {value}\x01\r\n\r\n",
            ):
                _raw(port, data.encode())
        time.sleep(0.5)
        log = server.log()

    for name, value in _variants(secret).items():
        for form in {value, value.lower()}:
            assert form not in log, f"the secret ({name}) is in the log"
    assert "request refused: DisallowedHost" in log  # the bad hosts were noticed, briefly
    assert "Invalid request from ip=" in log  # and what gunicorn refused


def test_a_flood_of_bad_host_headers_is_one_brief_warning_per_request(tmp_path):
    """The probe: every request with a Host not allowed wrote a full traceback at ERROR."""
    with gunicorn(tmp_path, workers=1) as server:
        for n in range(20):
            requests.get(server.url + "/", headers={"Host": f"evil-{n}.example"}, timeout=10)
        # Other suspicious requests Django refuses the same way.
        requests.post(
            server.url + "/accounts/login/",
            data="&".join(f"f{n}=1" for n in range(1200)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        time.sleep(0.5)
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line["logger"].startswith("django.security.")]
    hosts = [line for line in refused if line["logger"] == "django.security.DisallowedHost"]
    assert len(hosts) == 20
    assert {line["level"] for line in refused} == {"WARNING"}
    assert all("exception" not in line for line in refused)
    assert all(len(json.dumps(line)) < 400 for line in refused)
    assert not any("evil-" in json.dumps(line) for line in lines)
    assert any(line["logger"] == "django.security.TooManyFieldsSent" for line in refused)
    assert not [line for line in lines if line["level"] == "ERROR"]
