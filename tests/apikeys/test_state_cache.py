"""Workers keep a key's state between authentications (apikeys.state_cache) and still refuse a
revoked, narrowed, rolled or deleted key on the very next request: in this process, in every
worker of every server, after Redis lost its data, while Redis is down, and without Redis."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import jwt
import pytest
import redis
import requests
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apikeys.keys import PREFIX, SECRET_LENGTH, _checksum
from apikeys.models import ApiKey
from apikeys.ratelimit import RedisTokenBucket, get_bucket
from apikeys.services import api_key_delete, api_key_revoke, api_key_roll, api_key_update
from apikeys.state_cache import get_key_state_cache
from tests.apikeys.conftest import AUTH_URL, authenticate
from tests.factories import make_api_key
from tests.support.servers import REPO, django_env, free_port, gunicorn, live_database_url

CLIENT_ID = "kept-runner"


@pytest.fixture
def kept_key(db):
    """A key that authenticated twice: its state is kept by this process from the first."""
    api_key, plaintext = make_api_key(client_id=CLIENT_ID)
    client = Client(raise_request_exception=False)
    for _ in range(2):
        assert authenticate(client, plaintext, CLIENT_ID).status_code == 200
    assert get_key_state_cache().kept(api_key.lookup_id) is not None
    return api_key, plaintext, client


def _code(response) -> str:
    return response.json()["code"]


def test_a_kept_key_authenticates_without_reading_the_database(kept_key, django_assert_num_queries):
    _, plaintext, client = kept_key
    with django_assert_num_queries(0):
        assert authenticate(client, plaintext, CLIENT_ID).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_revocation_stops_a_kept_key_on_the_next_request(kept_key):
    api_key, plaintext, client = kept_key
    assert api_key_revoke(api_key=api_key, actor_name="test")
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 401
    assert _code(response) == "api_key_revoked"


def test_a_revocation_inside_a_transaction_not_yet_committed_stops_it_too(kept_key):
    # (pytest-django's `db` runs each test in a transaction that never commits.)
    api_key, plaintext, client = kept_key
    api_key_revoke(api_key=api_key, actor_name="test")
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_removed_permissions_are_gone_from_the_next_token(kept_key):
    api_key, plaintext, client = kept_key
    api_key_update(
        api_key=api_key,
        changed_by=None,
        name=api_key.name,
        permissions=["read:findings"],
        expires_at=None,
        actor_name="test",
    )
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 200
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "read:findings"


@pytest.mark.django_db(transaction=True)
def test_a_key_rolled_without_grace_stops_at_once_and_its_successor_works(kept_key):
    api_key, plaintext, client = kept_key
    _, successor = api_key_roll(api_key=api_key, grace=timedelta(0), actor_name="test")
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 401
    assert _code(response) == "api_key_expired"
    assert authenticate(client, successor, CLIENT_ID).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_deleted_key_is_unknown_on_the_next_request(kept_key):
    api_key, plaintext, client = kept_key
    api_key_delete(api_key=api_key, actor_name="test")
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 404
    assert _code(response) == "api_key_not_found"


def test_a_change_announced_by_another_process_reaches_the_token_made_meanwhile(kept_key):
    """Another worker narrows the key: it writes the database and renews the epoch; this
    process still keeps the old state, signs with it while Redis answers, and must throw that
    token away."""
    api_key, plaintext, client = kept_key
    ApiKey.objects.filter(pk=api_key.pk).update(permissions=["read:findings"])
    redis.Redis.from_url(settings.REDIS_URL).set(
        get_key_state_cache().epoch_key(api_key.lookup_id), "renewed-elsewhere"
    )
    assert get_key_state_cache().kept(api_key.lookup_id) is not None  # still the old one
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 200
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "read:findings"


def _revoke_behind_the_services_back(api_key: ApiKey) -> None:
    """What an operator's hand-written SQL does: no epoch is renewed."""
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())


def test_a_change_made_in_sql_by_hand_is_seen_within_the_max_age(kept_key):
    api_key, plaintext, client = kept_key
    cache = get_key_state_cache()
    now = [1000.0]
    cache.clock = lambda: now[0]
    # Kept again under the fake clock.
    cache.forget(api_key.lookup_id)
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 200
    # Used again meanwhile: a busy key's state still ages from when it was read.
    now[0] += settings.GERION_KEY_STATE_MAX_AGE * 0.6
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 200
    _revoke_behind_the_services_back(api_key)
    now[0] += settings.GERION_KEY_STATE_MAX_AGE * 0.5
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 401
    assert _code(response) == "api_key_revoked"


def test_when_redis_lost_the_epochs_a_kept_state_is_not_trusted(kept_key):
    api_key, plaintext, client = kept_key
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # a restart without persistence
    _revoke_behind_the_services_back(api_key)
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 401


def test_while_redis_is_unreachable_every_request_reads_the_database(kept_key):
    api_key, plaintext, client = kept_key
    dead = redis.Redis(host="127.0.0.1", port=free_port(), **settings.CACHES["default"]["OPTIONS"])
    bucket = get_bucket()
    bucket.primary = RedisTokenBucket(dead, bucket.capacity, bucket.rate)
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 200  # the local bucket
    _revoke_behind_the_services_back(api_key)
    response = authenticate(client, plaintext, CLIENT_ID)
    assert response.status_code == 401
    assert _code(response) == "api_key_revoked"


def test_without_redis_nothing_is_kept(db, settings):
    settings.REDIS_URL = ""
    for cached in (get_key_state_cache, get_bucket):
        cached.cache_clear()
    from apikeys.ratelimit import redis_client

    redis_client.cache_clear()
    api_key, plaintext = make_api_key(client_id=CLIENT_ID)
    client = Client(raise_request_exception=False)
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 200
    assert get_key_state_cache().kept(api_key.lookup_id) is None
    _revoke_behind_the_services_back(api_key)
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 401


def test_a_wrong_secret_is_refused_for_a_kept_key_and_spends_nothing_of_its_bucket(kept_key):
    api_key, plaintext, client = kept_key
    # Well-formed (checksum included), the key's own lookup id, another secret.
    body = f"{PREFIX}_{api_key.lookup_id}_{'x' * SECRET_LENGTH}"
    wrong = body + _checksum(body)
    for attempt in range(settings.GERION_AUTH_BURST + 5):
        # From as many addresses: each address's own bucket would stop one of them first.
        response = authenticate(client, wrong, CLIENT_ID, ip=f"198.51.{attempt}.7")
        assert response.status_code == 401
        assert _code(response) == "invalid_api_key"
    assert authenticate(client, plaintext, CLIENT_ID).status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_worker_of_every_server_refuses_a_key_and_its_tokens_once_revoked(tmp_path):
    _, plaintext = make_api_key(client_id=CLIENT_ID)
    api_key = ApiKey.objects.get(client_id=CLIENT_ID)
    # Kept states never grow too old here: only their epochs can make the workers refuse.
    env = {
        "DATABASE_URL": live_database_url(),
        "GERION_AUTH_BURST": "1000",
        "GERION_KEY_STATE_MAX_AGE": "3600",
    }

    def sign_in(url: str) -> requests.Response:
        return requests.post(
            url + AUTH_URL,
            json={"client_id": CLIENT_ID},
            headers={"X-API-Key": plaintext, "Connection": "close"},
            timeout=20,
        )

    with gunicorn(tmp_path, workers=2, env=env) as a, gunicorn(tmp_path, workers=2, env=env) as b:
        # Enough requests that every worker has served (and kept) the key.
        tokens = []
        for _ in range(12):
            for server in (a, b):
                response = sign_in(server.url)
                assert response.status_code == 200
                tokens.append(response.json()["access_token"])
        for token in tokens:  # and checked its tokens, with the state it keeps
            listed = requests.get(
                a.url + "/api/v1/findings",
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=20,
            )
            assert listed.status_code == 200
        revoked = subprocess.run(
            [sys.executable, "manage.py", "revokeapikey", api_key.api_key_id],
            cwd=REPO,
            env=django_env(DATABASE_URL=live_database_url()),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        uses = [
            requests.get(
                server.url + "/api/v1/findings",
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=20,
            )
            for token in tokens[:12]
            for server in (a, b)
        ]
        answers = [sign_in(server.url) for _ in range(12) for server in (a, b)]
    assert {response.status_code for response in uses} == {401}
    assert {response.json()["code"] for response in uses} == {"api_key_revoked"}
    assert {response.status_code for response in answers} == {401}
    assert {response.json()["code"] for response in answers} == {"api_key_revoked"}


@pytest.mark.django_db(transaction=True)
def test_a_token_of_a_kept_key_is_refused_once_the_key_is_revoked(kept_key):
    from apikeys.services import principal_from_token
    from tests.apikeys.conftest import token_for

    api_key, plaintext, client = kept_key
    token = token_for(client, plaintext, CLIENT_ID)
    assert principal_from_token(token=token).client_id == CLIENT_ID
    assert api_key_revoke(api_key=api_key, actor_name="test")
    response = client.get("/api/v1/findings", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert _code(response) == "api_key_revoked"


def test_a_token_check_trusts_no_kept_state_another_process_announced_a_change_of(kept_key):
    from apikeys.services import principal_from_token
    from tests.apikeys.conftest import token_for

    api_key, plaintext, client = kept_key
    token = token_for(client, plaintext, CLIENT_ID)
    ApiKey.objects.filter(pk=api_key.pk).update(permissions=["read:findings"])
    redis.Redis.from_url(settings.REDIS_URL).set(
        get_key_state_cache().epoch_key(api_key.lookup_id), "renewed-elsewhere"
    )
    assert principal_from_token(token=token).scopes == {"read:findings"}
