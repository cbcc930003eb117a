"""No plaintext API key and no token in any log line, error body or admin page.

A real gunicorn serves a whole working day in miniature (an operator issues a key in the
admin, a pipeline authenticates, uploads and lists, people make mistakes, the key is revoked)
with DEBUG logging; then every log line and every page and body it answered is searched for
the secrets."""

from __future__ import annotations

import re

import pytest
import requests

from tests.factories import PASSWORD, SuperuserFactory
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
