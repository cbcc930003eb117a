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
    "message",
    [
        "key gerion_abcdefghijkl_AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef",
        "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "-----BEGIN PRIVATE KEY-----",
    ],
    ids=["api-key", "jwt", "pem"],
)
def test_secret_shapes_are_masked_even_if_a_message_carries_one(message):
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "x"})
    line = JsonFormatter().format(record)
    assert "[REDACTED]" in line
    assert message.split()[-1] not in line
