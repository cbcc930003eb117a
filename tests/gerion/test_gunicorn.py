"""The production server: gunicorn with the repository's config serves the app and its static
files (the admin must look right under gunicorn, not only under runserver)."""

import runpy
from types import SimpleNamespace

import pytest
import requests

from tests.support.servers import REPO, gunicorn


@pytest.mark.slow
def test_gunicorn_serves_health_schema_and_admin_static_files(tmp_path):
    with gunicorn(tmp_path, workers=2) as server:
        assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
        schema = requests.get(server.url + "/api/v1/schema?format=json", timeout=5)
        assert schema.status_code == 200
        assert schema.json()["openapi"].startswith("3.")
        css = requests.get(server.url + "/static/admin/css/base.css", timeout=5)
        assert css.status_code == 200
        assert "text/css" in css.headers["Content-Type"]
        missing = requests.get(server.url + "/api/v1/nope", timeout=5)
        assert missing.status_code == 404
        assert missing.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("bind", "proxies", "warned"),
    [
        (["0.0.0.0:8000"], "0", True),
        (["10.1.2.3:8000", "127.0.0.1:8000"], "0", True),
        (["0.0.0.0:8000"], "1", False),
        (["127.0.0.1:8000", "[::1]:8000", "unix:/run/gerion.sock"], "0", False),
    ],
    ids=["exposed", "one-of-two-exposed", "behind-a-proxy", "local-only"],
)
def test_gunicorn_warns_when_it_faces_clients_without_a_proxy(monkeypatch, bind, proxies, warned):
    """It cannot bound slow clients itself (gunicorn.conf.py): it says so where operators look.
    (gunicorn's arbiter stands in as a plain object: binding all interfaces in a test would
    expose the test server.)"""
    monkeypatch.setenv("GERION_TRUSTED_PROXY_COUNT", proxies)
    config = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    warnings: list[str] = []
    arbiter = SimpleNamespace(
        cfg=SimpleNamespace(bind=bind),
        log=SimpleNamespace(warning=lambda message, *args: warnings.append(message % args)),
    )
    config["when_ready"](arbiter)
    assert bool(warnings) is warned
    if warned:
        assert "no reverse proxy declared" in warnings[0]
