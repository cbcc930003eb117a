"""Faults, against gunicorn: PostgreSQL or Redis unreachable for a while (through proxies the
test cuts and restores; the machine's servers are never touched), and uploads cut off
half-way. Clean 503 problems while it lasts, recovery without a restart, nothing half-written."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings

from findings.models import Finding, Upload
from tests.factories import PASSWORD, StaffFactory, make_api_key
from tests.support.servers import Server, gunicorn
from tests.support.tcpproxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def body(n: int, repository: str = "acme/faults", build: str = "1") -> dict[str, Any]:
    return {
        "metadata": {
            "repository_name": repository,
            "branch_name": "main",
            "build_id": build,
            "code_path": ".",
            "scan_type": "SCA",
        },
        "findings": [
            {
                "finding_id": f"f{i}",
                "title": f"Finding {i}",
                "severity": "High",
                "description": "x" * 200,
            }
            for i in range(n)
        ],
    }


@pytest.fixture
def proxied() -> Iterator[tuple[Server, TcpProxy, TcpProxy]]:
    """gunicorn whose PostgreSQL and Redis connections go through proxies the test controls."""
    import tempfile
    from pathlib import Path

    db = settings.DATABASES["default"]
    redis_url = urlparse(settings.REDIS_URL)
    with (
        TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as db_proxy,
        TcpProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379) as redis_proxy,
        gunicorn(
            Path(tempfile.mkdtemp(prefix="gerion-faults-")),
            workers=2,
            env={
                "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{db_proxy.port}/{db['NAME']}",
                "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}{redis_url.path}",
                "GERION_DB_CONNECT_TIMEOUT": "2",
            },
        ) as server,
    ):
        yield server, db_proxy, redis_proxy


def authenticate(server: Server, plaintext: str, client_id: str) -> requests.Response:
    return requests.post(
        server.url + "/api/v1/auth/m2m/authenticate",
        json={"client_id": client_id},
        headers={"X-API-Key": plaintext},
        timeout=20,
    )


def eventually(check, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_a_database_outage_gives_503_problems_and_the_service_recovers(proxied):
    server, db_proxy, _ = proxied
    _, plaintext = make_api_key(client_id="outage-ci")
    token = authenticate(server, plaintext, "outage-ci").json()["access_token"]
    # A key the workers have not kept yet: its state can only come from the database. (One
    # that a worker kept, confirmed by Redis, may authenticate for up to
    # GERION_KEY_STATE_MAX_AGE seconds more; nothing can change it while the database is down.)
    _, unseen = make_api_key(client_id="outage-new-ci")
    bearer = {"Authorization": f"Bearer {token}"}
    StaffFactory(username="analyst")
    staff = requests.Session()
    staff.get(server.url + "/accounts/login/", timeout=10)
    signed_in = staff.post(
        server.url + "/accounts/login/",
        timeout=10,
        data={
            "username": "analyst",
            "password": PASSWORD,
            "csrfmiddlewaretoken": staff.cookies["csrftoken"],
        },
    )
    assert signed_in.url.endswith("/")

    db_proxy.cut()
    calls = {
        "authenticate": lambda: authenticate(server, unseen, "outage-new-ci"),
        "list": lambda: requests.get(server.url + "/api/v1/findings", headers=bearer, timeout=20),
        "upload": lambda: requests.post(
            server.url + "/api/v1/findings", json=body(10), headers=bearer, timeout=20
        ),
    }
    for name, call in calls.items():
        response = call()
        assert response.status_code == 503, (name, response.text)
        assert response.headers["Content-Type"] == "application/problem+json", name
        assert response.json()["code"] == "service_unavailable", name
        assert response.headers["Retry-After"], name
    page = staff.get(server.url + "/findings/", timeout=20, allow_redirects=False)
    assert page.status_code == 503
    assert "Temporarily unavailable" in page.text
    # The JWKS needs no database: verifiers keep working through the outage.
    assert requests.get(server.url + "/api/v1/auth/jwks", timeout=10).status_code == 200

    db_proxy.restore()
    upload = eventually(
        lambda: (
            (
                r := requests.post(
                    server.url + "/api/v1/findings", json=body(10), headers=bearer, timeout=20
                )
            ).status_code
            == 201
            and r
        )
    )
    assert upload, "the service did not recover by itself"
    assert upload.json()["created"] == 10
    assert Upload.objects.count() == 1  # the upload refused during the outage left nothing


def test_a_redis_outage_does_not_stop_authentication(proxied):
    server, _, redis_proxy = proxied
    _, plaintext = make_api_key(client_id="cache-outage-ci")
    assert authenticate(server, plaintext, "cache-outage-ci").status_code == 200

    redis_proxy.cut()
    statuses = [authenticate(server, plaintext, "cache-outage-ci").status_code for _ in range(5)]
    assert statuses == [200] * 5  # fail open, on per-process buckets
    ready = requests.get(server.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "cache": "unavailable"}
    # Wrong keys still get their own answer, not a 500, while the failure counter is away.
    wrong = authenticate(server, "gerion_abcdefghijkl_" + "A" * 38, "cache-outage-ci")
    assert wrong.status_code == 401

    redis_proxy.restore()
    assert eventually(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 200)
    assert authenticate(server, plaintext, "cache-outage-ci").status_code == 200
    log = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert any("Redis unreachable" in line.get("message", "") for line in log)


def _send_partial_upload(server: Server, token: str, payload: bytes, fraction: float) -> bytes:
    """A client that dies half-way through sending its body; what the server answered, if
    anything, once it noticed."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /api/v1/findings HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        sock.sendall(head + payload[: int(len(payload) * fraction)])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_an_upload_cut_off_by_the_client_leaves_nothing_behind(proxied):
    server, _, _ = proxied
    _, plaintext = make_api_key(client_id="flaky-network")
    token = authenticate(server, plaintext, "flaky-network").json()["access_token"]
    payload = json.dumps(body(2000)).encode()
    for fraction in (0.0, 0.1, 0.5, 0.99):
        answer = _send_partial_upload(server, token, payload, fraction)
        # The server saw a short body: a 400 problem (or nothing, if it gave up on the
        # connection), never a 201 or a 500.
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line in (b"", b"HTTP/1.1 400 Bad Request"), (fraction, status_line)
    assert not Upload.objects.exists()
    assert not Finding.objects.exists()
    # The workers are fine and the next, complete upload is stored whole.
    complete = requests.post(
        server.url + "/api/v1/findings",
        data=payload,
        timeout=60,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert complete.status_code == 201
    assert Finding.objects.count() == 2000


def _wait_for_statement(fragment: str, until, timeout: float = 60) -> str | None:
    import psycopg

    db = settings.DATABASES["default"]
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} "
    with psycopg.connect(dsn + f"dbname={db['NAME']}", autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until():
            row = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s",
                [f"%{fragment}%"],
            ).fetchone()
            if row:
                return str(row[0])
            time.sleep(0.005)
    return None


def test_a_database_lost_in_the_middle_of_an_upload_leaves_nothing_half_written(proxied):
    server, db_proxy, _ = proxied
    _, plaintext = make_api_key(client_id="mid-upload")
    token = authenticate(server, plaintext, "mid-upload").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    # A first scan, so that the second one has rows to update, insert and mitigate.
    first = requests.post(
        server.url + "/api/v1/findings", json=body(20_000), headers=headers, timeout=120
    )
    assert first.status_code == 201
    before = sorted(Finding.objects.values_list("finding_id", "active", "last_seen_build_id"))

    second_body = body(40_000, build="2")
    second_body["findings"] = second_body["findings"][10_000:]  # 10k gone, 20k new, 10k kept
    result: dict[str, Any] = {}

    def upload() -> None:
        try:
            result["response"] = requests.post(
                server.url + "/api/v1/findings", json=second_body, headers=headers, timeout=120
            )
        except requests.RequestException as exc:
            result["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    # Cut the database at the moment the server is writing the upload: watch PostgreSQL
    # (directly, not through the proxy) for the upload's statements.
    writing = _wait_for_statement("COPY findings_finding", until=lambda: not thread.is_alive())
    db_proxy.cut()
    thread.join(timeout=120)
    db_proxy.restore()
    assert writing, "the upload ended before it was seen writing"

    response = result.get("response")
    assert response is not None, result
    assert response.status_code == 503, result
    assert response.headers["Content-Type"] == "application/problem+json"
    # All or nothing: the stream is exactly as the first scan left it.
    assert Upload.objects.count() == 1
    after = sorted(Finding.objects.values_list("finding_id", "active", "last_seen_build_id"))
    assert after == before
