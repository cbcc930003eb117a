"""The findings API's bearer authentication: the token, then the key's state, every request."""

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_delete, api_key_revoke, api_key_update
from apikeys.state_cache import state_changed
from tests.apikeys.conftest import token_for
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

URL = "/api/v1/_test/protected"


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = "tests.apikeys.urls"


def get(client, token):
    return client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_401(response, code):
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_valid_token_reaches_the_view_as_its_key(client, api_key):
    _, plaintext = api_key
    response = get(client, token_for(client, plaintext, "jenkins-main"))
    assert response.status_code == 200
    assert response.json() == {
        "client_id": "jenkins-main",
        "scopes": ["read:findings", "write:findings"],
    }


def test_no_token_is_a_401_problem_with_a_bearer_challenge(client):
    assert_401(client.get(URL), "not_authenticated")


def test_a_revoked_keys_existing_token_is_refused_on_its_next_use(client, api_key):
    key, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    assert get(client, token).status_code == 200
    api_key_revoke(api_key=key, actor_name="tests")
    assert_401(get(client, token), "api_key_revoked")


def test_a_deleted_keys_existing_token_is_refused(client, api_key):
    key, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    api_key_delete(api_key=key, actor_name="tests")
    assert_401(get(client, token), "invalid_token")


def test_an_expired_keys_existing_token_is_refused(client, api_key):
    key, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    state_changed(key.lookup_id)  # as every change made through the services does
    assert_401(get(client, token), "api_key_expired")


def test_a_token_whose_client_id_no_longer_matches_its_key_is_refused(client, api_key):
    key, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    ApiKey.objects.filter(pk=key.pk).update(client_id="renamed-runner")
    state_changed(key.lookup_id)
    assert_401(get(client, token), "invalid_token")


def test_a_token_without_the_views_permission_is_a_403_problem(client, db):
    _, plaintext = make_api_key(client_id="reader-2", permissions=("read:findings",))
    response = get(client, token_for(client, plaintext, "reader-2"))
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "insufficient_scope"


def test_a_permission_removed_from_the_key_is_removed_from_its_tokens_at_once(client, api_key):
    key, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    api_key_update(
        api_key=key,
        changed_by=None,
        actor_name="tests",
        name=key.name,
        permissions=["read:findings"],
        expires_at=None,
    )
    assert get(client, token).status_code == 403


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer a b",
        "Bearer not.a.token",
        "Bearer " + "x" * 5000,
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ],
    ids=["empty", "three-parts", "junk", "oversized", "alg-none"],
)
def test_malformed_authorization_headers_are_401_problems(client, db, authorization):
    response = client.get(URL, HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_the_bearer_scheme_is_case_insensitive(client, api_key):
    _, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    assert client.get(URL, HTTP_AUTHORIZATION=f"bearer {token}").status_code == 200


def test_the_api_key_itself_is_not_a_bearer_token(client, api_key):
    _, plaintext = api_key
    assert_401(get(client, plaintext), "invalid_token")


def test_an_expired_token_is_refused_with_a_distinct_code(client, api_key):
    from apikeys.signing_keys import get_keyset

    key, _ = api_key
    now = int(timezone.now().timestamp())
    claims = {
        "iss": "https://api.gerion.dev",
        "aud": "gerion-api",
        "sub": "jenkins-main",
        "client_id": "jenkins-main",
        "api_key_id": key.api_key_id,
        "scope": "write:findings",
        "iat": now - 3600,
        "nbf": now - 3600,
        "exp": now - 1800,
        "jti": "x",
    }
    active = get_keyset().active
    token = jwt.encode(
        claims, active.private_key, algorithm="RS256", headers={"kid": active.kid, "typ": "JWT"}
    )
    assert_401(get(client, token), "token_expired")
