"""The authenticate request and the token check do only the work they need, without losing
what that work was for: one statement reads the key's state, and it also stands in for
Django's connection health check, so a connection the database dropped is still replaced
without an error."""

import psycopg
import pytest
import requests
from django.db import connection
from django.test import Client

from apikeys.selectors import api_key_state
from apikeys.services import principal_from_token
from apikeys.state_cache import get_key_state_cache
from tests.apikeys.conftest import AUTH_URL, authenticate, token_for
from tests.factories import make_api_key
from tests.support.servers import gunicorn, live_database_url


def _terminate_backends(*pids):
    """What a PostgreSQL restart or failover does to pooled connections."""
    with psycopg.connect(live_database_url(), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def usable_checks(monkeypatch):
    """Counts Django's connection health checks (`SELECT 1` round trips)."""
    from django.db import connections

    wrapper = type(connections["default"])
    calls = []
    original = wrapper.is_usable

    def is_usable(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    return calls


@pytest.mark.django_db(transaction=True)
def test_the_key_state_statement_is_the_requests_health_check(usable_checks):
    key, _ = make_api_key(client_id="health")
    connection.ensure_connection()
    assert connection.health_check_enabled
    # What Django does at the start of every request: the next statement must check the
    # connection first.
    connection.close_if_unusable_or_obsolete()
    assert api_key_state(lookup_id=key.lookup_id).client_id == "health"
    assert usable_checks == []  # no extra `SELECT 1` round trip
    assert connection.health_check_done

    # The server drops the pooled connection between two requests: the next request still
    # gets its answer, on a new connection, as a failed health check would have given it.
    old_pid = connection.connection.info.backend_pid
    _terminate_backends(old_pid)
    connection.close_if_unusable_or_obsolete()
    assert api_key_state(lookup_id=key.lookup_id).client_id == "health"
    assert connection.connection.info.backend_pid != old_pid
    assert usable_checks == []


@pytest.mark.django_db(transaction=True)
def test_an_unknown_lookup_id_reads_nothing_else():
    assert api_key_state(lookup_id="000000000000") is None


@pytest.mark.django_db
def test_a_findings_request_checks_its_token_with_one_statement_or_none(
    django_assert_num_queries,
):
    _, plaintext = make_api_key(client_id="one-query")
    token = token_for(Client(), plaintext, "one-query")
    principal_from_token(token=token)  # the once-a-minute last-used write happens here
    # The state authentication kept, confirmed by its epoch in Redis: no statement.
    with django_assert_num_queries(0):
        assert principal_from_token(token=token).client_id == "one-query"
    # A worker that keeps nothing (another worker authenticated): one statement.
    get_key_state_cache.cache_clear()
    with django_assert_num_queries(1):
        assert principal_from_token(token=token).client_id == "one-query"
    with django_assert_num_queries(0):  # and from then on it keeps it
        assert principal_from_token(token=token).client_id == "one-query"


@pytest.mark.django_db
def test_authenticate_answers_json_whatever_the_client_accepts(client):
    _, plaintext = make_api_key(client_id="picky")
    for accept in ("text/html", "application/xml", "*/*", ""):
        response = client.post(
            AUTH_URL,
            data=b'{"client_id": "picky"}',
            content_type="application/json",
            HTTP_X_API_KEY=plaintext,
            HTTP_ACCEPT=accept,
        )
        assert response.status_code == 200, accept
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert set(response.json()) == {
            "access_token",
            "token_type",
            "expires_in",
            "client_id",
            "api_key_id",
        }
    # Errors are still problem documents.
    refused = authenticate(client, plaintext, "someone-else")
    assert refused["Content-Type"].startswith("application/problem+json")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_after_the_database_drops_idle_connections_the_next_requests_succeed(tmp_path):
    _, plaintext = make_api_key(client_id="survivor")
    env = {"DATABASE_URL": live_database_url(), "GERION_THREADS": "1"}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        session = requests.Session()

        def sign_in():
            return session.post(
                server.url + AUTH_URL,
                json={"client_id": "survivor"},
                headers={"X-API-Key": plaintext},
                timeout=20,
            )

        token = sign_in().json()["access_token"]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            pids = [row[0] for row in cursor.fetchall()]
        assert pids  # the worker's persistent connection
        _terminate_backends(*pids)
        assert sign_in().status_code == 200
        findings = session.get(
            server.url + "/api/v1/findings",
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
        )
        assert findings.status_code == 200
