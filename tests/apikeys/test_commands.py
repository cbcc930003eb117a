"""The management commands of SPEC "Fixed names"."""

import io
import os
import stat
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from apikeys.keys import parse_key
from apikeys.models import ApiKey, AuditEvent
from apikeys.signing_keys import load_signing_key
from tests.apikeys.conftest import authenticate
from tests.support.servers import REPO

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createapikey_prints_the_plaintext_alone_on_the_last_line(client):
    out, _ = run(
        "createapikey",
        "--name",
        "Jenkins",
        "--client-id",
        "jenkins-1",
        "--permissions",
        "write:findings,read:findings",
    )
    plaintext = out.strip().splitlines()[-1]
    assert parse_key(plaintext) is not None
    key = ApiKey.objects.get(client_id="jenkins-1")
    assert key.permissions == ["read:findings", "write:findings"]
    assert authenticate(client, plaintext, "jenkins-1").status_code == 200


def test_createapikey_reads_a_zoneless_expiry_as_utc():
    run(
        "createapikey",
        "--name",
        "n",
        "--client-id",
        "exp-1",
        "--permissions",
        "read:findings",
        "--expires-at",
        "2099-01-02T03:04:05",
    )
    assert (
        ApiKey.objects.get(client_id="exp-1").expires_at.isoformat() == "2099-01-02T03:04:05+00:00"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--client-id", "x!", "--permissions", "read:findings"],
        ["--client-id", "ok-id", "--permissions", "root"],
        ["--client-id", "ok-id", "--permissions", "read:findings", "--expires-at", "tomorrow"],
        ["--client-id", "ok-id", "--permissions", "read:findings", "--expires-at", "2001-01-01"],
    ],
    ids=["bad-client-id", "bad-permission", "bad-date", "past-date"],
)
def test_createapikey_refuses_bad_input_with_a_message(args):
    with pytest.raises(CommandError):
        run("createapikey", "--name", "n", *args)
    assert not ApiKey.objects.exists()


def test_createapikey_as_a_process_writes_the_key_last_and_nothing_else_to_stdout(transactional_db):
    from tests.support.servers import django_env, live_database_url

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createapikey",
            "--name",
            "CLI",
            "--client-id",
            "proc-runner",
            "--permissions",
            "write:findings",
        ],
        cwd=REPO,
        env=django_env(DATABASE_URL=live_database_url()),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert parse_key(lines[-1]) is not None
    assert lines[-1] not in result.stderr


def test_revokeapikey_revokes_by_api_key_id(client):
    out, _ = run(
        "createapikey", "--name", "n", "--client-id", "rev-1", "--permissions", "read:findings"
    )
    plaintext = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(client_id="rev-1")
    out, _ = run("revokeapikey", key.api_key_id)
    assert "Revoked" in out
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert authenticate(client, plaintext, "rev-1").status_code == 401
    out, _ = run("revokeapikey", key.api_key_id)
    assert "already revoked" in out
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_REVOKED)
    assert event.actor_name == "manage.py revokeapikey"


@pytest.mark.parametrize(
    "api_key_id", ["key-doesnotexist", "nonsense", ""], ids=["unknown", "shape", "empty"]
)
def test_revokeapikey_refuses_an_unknown_id(api_key_id):
    with pytest.raises(CommandError):
        run("revokeapikey", api_key_id)


def test_generatesigningkey_writes_a_private_rsa_key_readable_only_by_its_owner(tmp_path):
    path = tmp_path / "jwt.pem"
    out, _ = run("generatesigningkey", str(path))
    key = load_signing_key(path)
    assert key.bits == 3072
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.kid in out
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.SIGNING_KEY_GENERATED, subject=key.kid
    ).exists()


def test_generatesigningkey_ignores_files_planted_next_to_the_key(tmp_path):
    victim = tmp_path / "world-readable.txt"
    victim.write_text("")
    victim.chmod(0o666)
    (tmp_path / ".jwt.pem.tmp").symlink_to(victim)
    (tmp_path / ".jwt.pem.12345.tmp").write_text("")
    run("generatesigningkey", str(tmp_path / "jwt.pem"), "--bits", "2048")
    assert stat.S_IMODE(os.lstat(tmp_path / "jwt.pem").st_mode) == 0o600
    assert not (tmp_path / "jwt.pem").is_symlink()
    assert victim.read_text() == ""


def test_generatesigningkey_never_overwrites_by_accident(tmp_path):
    path = tmp_path / "jwt.pem"
    run("generatesigningkey", str(path), "--bits", "2048")
    before = path.read_bytes()
    with pytest.raises(CommandError, match="exists"):
        run("generatesigningkey", str(path))
    assert path.read_bytes() == before
    with pytest.raises(CommandError, match="at least 2048"):
        run("generatesigningkey", str(tmp_path / "weak.pem"), "--bits", "1024")
