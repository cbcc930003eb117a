"""The production server: gunicorn with the repository's config serves the app and its static
files (the admin must look right under gunicorn, not only under runserver)."""

import pytest
import requests

from tests.support.servers import gunicorn


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
