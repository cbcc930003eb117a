from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from tests.factories import make_api_key

AUTH_URL = "/api/v1/auth/m2m/authenticate"


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def api_key(db):
    """An active key with both permissions, and its plaintext."""
    return make_api_key(client_id="jenkins-main")


def authenticate(
    client: Client,
    plaintext: str | None,
    client_id: object = "jenkins-main",
    *,
    header: str = "X-API-Key",
    ip: str = "198.51.100.7",
    body: bytes | None = None,
):
    headers: dict[str, Any] = {}
    if plaintext is not None:
        headers["HTTP_X_API_KEY" if header == "X-API-Key" else "HTTP_AUTHORIZATION"] = (
            plaintext if header == "X-API-Key" else f"Bearer {plaintext}"
        )
    data = body if body is not None else json.dumps({"client_id": client_id}).encode()
    return client.post(
        AUTH_URL, data=data, content_type="application/json", REMOTE_ADDR=ip, **headers
    )


def token_for(client: Client, plaintext: str, client_id: str) -> str:
    response = authenticate(client, plaintext, client_id)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]
