"""Liveness and readiness, in process and against a real gunicorn whose backing services the
test cuts and restores."""

import json
import time
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings
from django.test import Client

from tests.support.servers import gunicorn
from tests.support.tcpproxy import TcpProxy


def test_healthz_answers_ok():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_probes_by_ip_over_http_work_in_the_production_configuration(settings):
    # The container's health check and load balancers probe http://<ip>/healthz: neither the
    # host allow-list nor the HTTPS redirect, which protect clients, may turn that away.
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz", HTTP_HOST="10.1.2.3").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3").status_code == 200
    assert client.get("/api/v1/auth/jwks", HTTP_HOST="10.1.2.3").status_code == 400
    assert client.get("/api/v1/auth/jwks", HTTP_HOST="api.example.com").status_code == 301


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_cache_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}


def _wait_for(url: str, status: int, timeout: float = 15) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_readyz_reports_each_outage_and_recovers_without_a_restart(tmp_path):
    db = settings.DATABASES["default"]
    redis_url = urlparse(settings.REDIS_URL)
    with (
        TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as db_proxy,
        TcpProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379) as redis_proxy,
    ):
        env = {
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{db_proxy.port}/{db['NAME']}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}{redis_url.path}",
        }
        with gunicorn(tmp_path, workers=2, env=env) as server:
            ready = server.url + "/readyz"
            assert _wait_for(ready, 200).status_code == 200

            db_proxy.cut()
            response = _wait_for(ready, 503)
            assert response.status_code == 503
            assert response.headers["Content-Type"] == "application/problem+json"
            body = response.json()
            assert body["code"] == "not_ready"
            assert body["checks"]["database"] == "unavailable"
            db_proxy.restore()
            assert _wait_for(ready, 200).status_code == 200

            redis_proxy.cut()
            response = _wait_for(ready, 503)
            assert response.status_code == 503
            assert response.json()["checks"] == {"database": "ok", "cache": "unavailable"}
            redis_proxy.restore()
            assert _wait_for(ready, 200).status_code == 200

            # Liveness never depended on either.
            assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(
        line.get("message", "").startswith("readiness: database unavailable") for line in lines
    )
