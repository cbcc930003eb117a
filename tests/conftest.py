"""Suite-wide guard and fixtures. The suite runs against PostgreSQL and Redis, as production."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    _use_a_fresh_signing_key()
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        pytest.exit(
            "The tests run against PostgreSQL and Redis: set DATABASE_URL=postgres://... and "
            "REDIS_URL=redis://..., or run `make test`, which defaults to the local servers.",
            returncode=4,
        )
    if not _reachable(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)):
        pytest.exit(f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT']}.", returncode=4)
    redis = urlparse(settings.REDIS_URL)
    if not _reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        pytest.exit(f"Redis is not reachable at {redis.hostname}:{redis.port}.", returncode=4)


def _use_a_fresh_signing_key() -> None:
    """Tests sign with a key generated now (never one from the repository); servers the tests
    start inherit it through the environment."""
    from apikeys.signing_keys import generate_private_key_pem

    directory = Path(tempfile.mkdtemp(prefix="gerion-test-keys-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "signing.pem"
    path.write_bytes(generate_private_key_pem(2048))
    path.chmod(0o600)
    os.environ["GERION_JWT_SIGNING_KEY"] = str(path)
    os.environ.pop("GERION_JWT_RETIRED_KEYS", None)
    settings.GERION_JWT_SIGNING_KEY = str(path)
    settings.GERION_JWT_RETIRED_KEYS = []


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Each test starts with an empty cache (rate-limit buckets, failure counters)."""
    from django.core.cache import cache

    from apikeys.ratelimit import get_bucket, redis_client
    from apikeys.state_cache import get_key_state_cache

    cache.clear()
    get_bucket.cache_clear()
    redis_client.cache_clear()
    get_key_state_cache.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _no_lingering_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Threads of the live server keep browser keep-alive connections, and with them database
    connections, open past the last test; end them so the test database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
