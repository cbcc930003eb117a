"""Logs are one JSON object per line, carry the request id, and never a secret."""

import json
import logging

import pytest
from django.test import Client

from gerion.logging import JsonFormatter, RequestContextFilter, SuspiciousRequestFilter


@pytest.fixture
def json_lines(caplog):
    formatter, context = JsonFormatter(), RequestContextFilter()
    caplog.handler.addFilter(context)

    def lines() -> list[dict]:
        return [json.loads(formatter.format(record)) for record in caplog.records]

    caplog.set_level(logging.INFO)
    return lines


def test_access_log_is_json_with_the_request_id_echoed_to_the_client(json_lines):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="ci-run-42.step-7")
    assert response["X-Request-ID"] == "ci-run-42.step-7"
    access = [line for line in json_lines() if line["logger"] == "gerion.access"]
    assert access[-1]["request_id"] == "ci-run-42.step-7"
    assert access[-1]["status"] == 200
    assert access[-1]["path"] == "/healthz"
    assert access[-1]["method"] == "GET"


def test_a_hostile_request_id_is_replaced(json_lines):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID='x" injected\nline')
    assert response["X-Request-ID"] != 'x" injected\nline'
    assert len(response["X-Request-ID"]) == 32


def test_query_strings_never_reach_the_access_log(json_lines):
    Client().get("/healthz?token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    text = json.dumps(json_lines())
    assert "eyJhbGci" not in text
    assert "token=" not in text


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (
            "key gerion_abcdefghijkl_AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef",
            "AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef",
        ),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
        (
            "pem -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n"
            "-----END PRIVATE KEY----- ok",
            "MIIEvQIBADANBgkqhkiG9w0B",
        ),
        (
            "cut -----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B",
            "MIIEvQIBADANBgkqhkiG9w0B",
        ),
    ],
    ids=["api-key", "jwt", "pem", "pem-truncated"],
)
def test_secret_shapes_are_masked_even_if_a_message_carries_one(message, secret):
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "x"})
    line = JsonFormatter().format(record)
    assert "[REDACTED]" in line
    assert secret not in line


def test_djangos_error_records_log_the_path_without_the_query_string(settings, caplog):
    settings.ROOT_URLCONF = "tests.gerion.urls"
    caplog.set_level(logging.ERROR, logger="django.request")
    Client(raise_request_exception=False).get("/api/v1/_test/boom?api_key=hunter2&x=1")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    line = JsonFormatter().format(records[-1])
    assert "hunter2" not in line
    assert json.loads(line)["path"] == "/api/v1/_test/boom"


KEY = "gerion_abcdefghijkl_AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef"
SECRET = "AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef"
MANGLED = {
    "percent-encoded": KEY.replace("_", "%5F"),
    "dashes": KEY.replace("_", "-"),
    "secret-alone": SECRET,
}


@pytest.mark.parametrize("value", list(MANGLED.values()), ids=list(MANGLED))
@pytest.mark.parametrize(
    "extra",
    [
        lambda v: {"headers": {"Authorization": f"Bearer {v}", "Accept": "*/*"}},
        lambda v: {"headers": {"X-API-Key": v}},
        lambda v: {"headers": {"x_api_key": v}},
        lambda v: {"meta": {"HTTP_AUTHORIZATION": v, "HTTP_COOKIE": f"a={v}"}},
        lambda v: {"headers": [("Set-Cookie", f"sessionid={v}; HttpOnly")]},
        lambda v: {"form": {"username": "admin", "password": v}},
        lambda v: {"body": {"client_id": "ci", "anything": v}},
        lambda v: {"token": v},
    ],
    ids=[
        "authorization",
        "x-api-key",
        "x_api_key",
        "wsgi-meta",
        "set-cookie",
        "password",
        "body",
        "token",
    ],
)
def test_fields_that_carry_secrets_are_redacted_whatever_their_value(extra, value):
    record = logging.makeLogRecord(
        {"msg": "something happened", "levelname": "INFO", "name": "x", **extra(value)}
    )
    line = JsonFormatter().format(record)
    assert SECRET not in line
    assert "[REDACTED]" in line
    json.loads(line)  # still one JSON object


@pytest.mark.parametrize(
    "message",
    [
        "rejected Authorization: Bearer {v}",
        "headers {{'X-Api-Key': '{v}', 'Accept': '*/*'}}",
        "cookie={v}",
    ],
)
def test_a_header_quoted_in_a_message_loses_its_value(message):
    for value in MANGLED.values():
        record = logging.makeLogRecord(
            {"msg": message.format(v=value), "levelname": "INFO", "name": "x"}
        )
        line = JsonFormatter().format(record)
        assert SECRET not in line
        json.loads(line)


@pytest.mark.parametrize("value", list(MANGLED.values()), ids=list(MANGLED))
def test_a_request_id_that_carries_a_secret_is_replaced(json_lines, value):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=value)
    assert SECRET not in response["X-Request-ID"]
    assert SECRET not in json.dumps(json_lines())


@pytest.mark.parametrize(
    "request_id", ["5f0c3a3e-1b2c-4d5e-8f90-123456789abc", "0123456789abcdef0123456789abcdef"]
)
def test_usual_request_ids_are_kept(request_id):
    assert Client().get("/healthz", HTTP_X_REQUEST_ID=request_id)["X-Request-ID"] == request_id


def test_a_refused_host_is_one_brief_warning_without_a_traceback(json_lines, caplog):
    caplog.handler.addFilter(SuspiciousRequestFilter())
    response = Client().get("/findings/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    refused = [line for line in json_lines() if line["logger"].startswith("django.security")]
    assert len(refused) == 1
    assert refused[0]["level"] == "WARNING"
    assert refused[0]["message"] == "request refused: DisallowedHost"
    assert refused[0]["path"] == "/findings/"
    assert "exception" not in refused[0]
    assert "evil.example" not in json.dumps(refused[0])
