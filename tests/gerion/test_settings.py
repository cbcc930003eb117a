"""Settings come from the environment, with embedded defaults when nothing is set."""

import json
import subprocess
import sys

from tests.support.servers import REPO

PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "debug": settings.DEBUG,
    "hosts": settings.ALLOWED_HOSTS,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "secret_len": len(settings.SECRET_KEY),
}))
"""

_CONFIG_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SECRET_KEY",
    "DJANGO_SECURE_SSL_REDIRECT",
    "GERION_JWT_SIGNING_KEY",
    "GERION_DATA_DIR",
)


def run_python(code: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    base.update({"DJANGO_SETTINGS_MODULE": "gerion.settings", "GERION_DATA_DIR": str(tmp_path)})
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=base,
        capture_output=True,
        text=True,
        check=False,
    )


def probe(env: dict[str, str], tmp_path) -> dict:
    result = run_python(PROBE, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_nothing_set_means_sqlite_local_cache_and_debug_off(tmp_path):
    found = probe({}, tmp_path)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["db_name"] == str(tmp_path / "db.sqlite3")
    assert found["cache"].endswith("LocMemCache")
    assert found["debug"] is False
    assert found["ssl_redirect"] is False
    # A generated secret, persisted so that every process and restart agrees on it.
    assert found["secret_len"] >= 50
    assert probe({}, tmp_path)["secret_len"] == found["secret_len"]
    assert (tmp_path / "secret-key").stat().st_mode & 0o777 == 0o600


def test_urls_switch_to_postgresql_and_redis(tmp_path):
    found = probe(
        {
            "DATABASE_URL": "postgres://alice@db.internal:6543/gerion",
            "REDIS_URL": "redis://cache.internal:6380/2",
        },
        tmp_path,
    )
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["db_name"] == "gerion"
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert found["cache_location"] == "redis://cache.internal:6380/2"


def test_debug_hosts_and_ssl_redirect_are_read_from_the_environment(tmp_path):
    found = probe(
        {
            "DJANGO_DEBUG": "true",
            "DJANGO_ALLOWED_HOSTS": "api.example.com, .example.org",
            "DJANGO_SECURE_SSL_REDIRECT": "1",
        },
        tmp_path,
    )
    assert found["debug"] is True
    assert found["hosts"] == ["api.example.com", ".example.org"]
    assert found["ssl_redirect"] is True


def generated_signing_key(tmp_path):
    key = tmp_path / "signing.pem"
    subprocess.run(
        [sys.executable, "manage.py", "generatesigningkey", str(key)],
        cwd=REPO,
        check=True,
        capture_output=True,
        env=_production_env(tmp_path, None),
    )
    return key


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    key = generated_signing_key(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=_production_env(tmp_path, key),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_refuses_generated_secrets(tmp_path):
    env = _production_env(tmp_path, None)
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "apikeys.E010" in result.stderr  # no signing key configured
    assert "gerion.E001" in result.stderr  # no secret key configured


def _production_env(tmp_path, key):
    import os

    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    env.update(
        {
            "DJANGO_SECRET_KEY": "x" * 30 + "production-secret-key-with-enough-entropy-0123456789",
            "DJANGO_ALLOWED_HOSTS": "api.example.com",
            "DJANGO_SECURE_SSL_REDIRECT": "1",
            "GERION_DATA_DIR": str(tmp_path),
            "DATABASE_URL": os.environ["DATABASE_URL"],
            "REDIS_URL": os.environ["REDIS_URL"],
        }
    )
    if key is not None:
        env["GERION_JWT_SIGNING_KEY"] = str(key)
    return env
