"""The OpenAPI document and its viewer work offline."""

import re

from django.test import Client


def test_schema_is_an_openapi_3_document():
    response = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "Gerion API"


def test_docs_viewer_loads_only_assets_served_by_this_service():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, "the viewer page should reference its script and style"
    assert all(not s.startswith(("http://", "https://", "//")) for s in sources), sources
    for source in sources:
        if source.startswith("/static/"):
            assert Client().get(source).status_code == 200, source
