"""The README's run command works on a bare machine: no database, cache or key configured."""

import subprocess
import sys

import pytest
import requests

from tests.support.servers import REPO, django_env, gunicorn

EMBEDDED_DROP = ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "GERION_JWT_SIGNING_KEY")


@pytest.mark.slow
def test_embedded_defaults_migrate_and_serve_health_and_schema(tmp_path):
    env = {"GERION_DATA_DIR": str(tmp_path / "var")}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=django_env(EMBEDDED_DROP, **env),
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "var" / "db.sqlite3").exists()
    with gunicorn(tmp_path, workers=1, env=env, drop=EMBEDDED_DROP) as server:
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        ready = requests.get(server.url + "/readyz", timeout=5)
        assert ready.json()["checks"] == {"database": "ok", "cache": "ok"}
        schema = requests.get(server.url + "/api/v1/schema", timeout=5)
        assert schema.status_code == 200
        assert b"openapi: 3" in schema.content


@pytest.mark.slow
def test_several_workers_without_redis_are_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "gerion.wsgi", "--check-config"],
        cwd=REPO,
        env=django_env(EMBEDDED_DROP, GERION_WORKERS="3"),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs REDIS_URL" in result.stdout + result.stderr
