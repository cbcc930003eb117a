"""Fuzzing every endpoint from the OpenAPI document (schemathesis), with and without valid
credentials: no 5xx, every error a problem+json body with a code, every documented response
conforming to the schema. A fixed number of examples per operation keeps it CI-sized."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.apikeys.conftest import token_for
from tests.factories import make_api_key

EXAMPLES = 100  # per operation, per credential mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """SPEC "Errors": every error is an RFC 9457 problem with a stable code."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("Content-Type", response.headers.get("content-type"))
    if isinstance(content_type, list):
        content_type = content_type[0]
    assert content_type == "application/problem+json", (response.status_code, content_type)
    body = response.json()
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    assert body["status"] == response.status_code, body
    for member in ("type", "title", "detail"):
        assert isinstance(body.get(member), str), (member, body)
    return True


def _load_schema() -> Any:
    # The schema view touches no database: loading it at collection is safe.
    from gerion.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", application)


schema = _load_schema()
pytestmark = pytest.mark.django_db


@contextmanager
def _test_transaction_kept() -> Iterator[None]:
    """The WSGI application closes "obsolete" connections at the end of each request, which
    would end the test's transaction; Django's own test client switches that off the same way
    (and back on after each of its requests, so this wraps each call)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def fuzz_call(case: Any) -> None:
    with _test_transaction_kept():
        case.call_and_validate(checks=CHECKS, additional_checks=[problem_details])


@pytest.fixture
def credentials(db):
    """A key with both permissions and a token minted from it."""
    _, plaintext = make_api_key(client_id="fuzz-ci")
    return {"key": plaintext, "token": token_for(Client(), plaintext, "fuzz-ci")}


@schema.parametrize()
@FUZZ
def test_fuzz_without_credentials(case):
    case.headers = {
        k: v
        for k, v in (case.headers or {}).items()
        if k.lower() not in ("authorization", "x-api-key")
    }
    fuzz_call(case)


@schema.parametrize()
@FUZZ
def test_fuzz_with_valid_credentials(case, credentials, settings):
    # The key's bucket would otherwise turn most examples into 429s.
    settings.GERION_AUTH_BURST = 100_000
    headers = dict(case.headers or {})
    if case.path.endswith("/authenticate"):
        headers["X-API-Key"] = credentials["key"]
        headers.pop("Authorization", None)
    else:
        headers["Authorization"] = f"Bearer {credentials['token']}"
    case.headers = headers
    fuzz_call(case)
