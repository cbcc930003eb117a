"""Logs are one JSON object per line, carry the request id, and never a secret."""

import json
import logging

import pytest
from django.test import Client

from gerion.logging import JsonFormatter, RequestContextFilter


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
