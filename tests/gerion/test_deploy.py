"""The container's start check is the README's (warnings included), and the settings that
compose.yaml ships pass it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import yaml

from tests.gerion.test_settings import _production_env, generated_signing_key
from tests.support.servers import REPO


def container_start_check() -> str:
    """The `manage.py check` part of the Dockerfile's CMD."""
    found = re.search(r"^CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), re.M)
    assert found is not None
    cmd = json.loads(found[1])
    assert cmd[:2] == ["sh", "-c"]
    check, _, start = cmd[2].partition("&&")
    assert start.strip() == "exec gunicorn gerion.wsgi"
    return check.strip()


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(container_start_check())
    assert argv[:2] == ["python", "manage.py"]
    return subprocess.run(
        [sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True, env=env, check=False
    )


def test_the_container_runs_the_readmes_start_check():
    """The probe: the Dockerfile said --fail-level ERROR where the README says WARNING."""
    assert container_start_check() == "python manage.py check --deploy --fail-level WARNING"
    assert container_start_check() in (REPO / "README.md").read_text()


def test_the_container_refuses_to_start_on_a_deploy_warning(tmp_path):
    env = _production_env(tmp_path, generated_signing_key(tmp_path))
    del env["DJANGO_SECURE_SSL_REDIRECT"]  # plain HTTP, insecure cookies, no HSTS: warnings
    result = run_check(env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr


def test_the_settings_compose_ships_pass_the_start_check(tmp_path):
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    shipped = {k: str(v) for k, v in compose["services"]["web"]["environment"].items()}
    env = _production_env(tmp_path, generated_signing_key(tmp_path))
    del env["DJANGO_SECURE_SSL_REDIRECT"]  # compose must bring its own production settings
    for name, value in shipped.items():
        if name not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "GERION_JWT_SIGNING_KEY"}:
            env[name] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)  # compose's ${X:-default}
    result = run_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
