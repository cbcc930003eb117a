"""Every API error is an RFC 9457 problem document with a stable code, DEBUG on or off."""

import json

import pytest
from django.test import Client

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = "tests.gerion.urls"
    return request.param


@pytest.fixture
def client() -> Client:
    # raise_request_exception=False: see what a real client gets, not the test's traceback.
    return Client(raise_request_exception=False)


def test_unknown_api_path_is_a_404_problem_not_an_html_page(debug, client):
    response = client.get("/api/v1/does-not-exist")
    body = assert_problem(response, 404, "not_found")
    assert "<html" not in response.content.decode().lower()
    assert body["request_id"] == response["X-Request-ID"]


def test_wrong_method_on_an_api_view_is_a_405_problem_with_allow(debug, client):
    response = client.delete("/api/v1/_test/validate")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_unhandled_exception_is_a_500_problem_without_internals(debug, client):
    for path in ("/api/v1/_test/boom", "/api/v1/_test/drf-boom"):
        response = client.get(path)
        body = assert_problem(response, 500, "internal_error")
        text = response.content.decode()
        assert "secret-internal-detail" not in text
        assert "Traceback" not in text
        assert "SELECT" not in text
        assert set(body) == {"type", "title", "status", "detail", "code", "request_id"}


def test_database_outage_is_a_503_problem_that_leaks_nothing(debug, client):
    response = client.get("/api/v1/_test/db-down")
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"]
    assert "hunter2" not in response.content.decode()
    assert "10.0.0.5" not in response.content.decode()


def test_database_outage_on_a_page_is_a_503_page(debug, client):
    response = client.get("/_test/db-down")
    assert response.status_code == 503
    assert "hunter2" not in response.content.decode()


def test_body_over_the_limit_is_a_413_problem_before_it_is_read(debug, client, settings):
    settings.GERION_MAX_BODY_BYTES = 1000
    response = client.post(
        "/api/v1/_test/validate", data=b"x" * 1001, content_type="application/json"
    )
    assert_problem(response, 413, "payload_too_large")


def test_a_chunked_body_without_length_is_a_411_problem_not_read_as_empty(debug, client):
    response = client.post(
        "/api/v1/_test/validate",
        data=b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert_problem(response, 411, "length_required")


def test_non_json_content_type_is_a_415_problem(debug, client):
    response = client.post("/api/v1/_test/validate", data="name=a", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")


def test_malformed_json_is_a_400_problem(debug, client):
    response = client.post(
        "/api/v1/_test/validate", data=b'{"name": ', content_type="application/json"
    )
    assert_problem(response, 400, "invalid_json")


def test_validation_errors_list_every_problem_with_its_json_path(debug, client):
    response = client.post(
        "/api/v1/_test/validate",
        data={"items": [{"title": "ok"}, {"title": "far too long"}, {}]},
        content_type="application/json",
    )
    body = assert_problem(response, 400, "validation_error")
    paths = {e["path"]: e["message"] for e in body["errors"]}
    assert set(paths) == {"name", "items[1].title", "items[2].title"}
    assert "5 characters" in paths["items[1].title"]


def test_unknown_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
