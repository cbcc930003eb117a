"""Creating, changing, revoking and deleting keys, each audited."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from apikeys.models import ApiKey, AuditEvent
from apikeys.services import (
    api_key_create,
    api_key_delete,
    api_key_revoke,
    api_key_touch,
    api_key_update,
)
from tests.factories import SuperuserFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_the_plaintext_is_stored_nowhere_in_the_database():
    api_key, plaintext = make_api_key()
    secret = plaintext.split("_")[2]
    with connection.cursor() as cursor:
        for table in ("apikeys_apikey", "apikeys_auditevent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            dump = repr(cursor.fetchall())
            assert secret not in dump
            assert plaintext not in dump
    assert api_key.secret_hash != plaintext


def test_create_records_who_created_it():
    operator = SuperuserFactory()
    api_key, _ = api_key_create(
        name="GitHub Actions",
        client_id="gha.repo-1",
        permissions=["write:findings"],
        created_by=operator,
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_CREATED, subject=api_key.api_key_id)
    assert event.actor == operator
    assert event.actor_name == operator.username
    assert event.client_id == "gha.repo-1"
    assert event.detail["permissions"] == ["write:findings"]


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"client_id": "ab"}, "client_id"),
        ({"client_id": "a" * 51}, "client_id"),
        ({"client_id": "has space"}, "client_id"),
        ({"client_id": "slash/no"}, "client_id"),
        ({"permissions": []}, "permissions"),
        ({"permissions": ["admin:everything"]}, "permissions"),
        ({"expires_at": "past"}, "expires_at"),
    ],
    ids=[
        "client-id-short",
        "client-id-long",
        "client-id-space",
        "client-id-slash",
        "no-permissions",
        "unknown-permission",
        "expired-already",
    ],
)
def test_invalid_keys_are_refused(fields, bad_field):
    kwargs = {"name": "x", "client_id": "valid-id", "permissions": ["read:findings"]}
    kwargs.update(fields)
    if kwargs.get("expires_at") == "past":
        kwargs["expires_at"] = timezone.now() - timedelta(seconds=1)
    with pytest.raises(ValidationError) as excinfo:
        api_key_create(**kwargs)
    assert bad_field in excinfo.value.message_dict
    assert not ApiKey.objects.exists()


def test_client_ids_are_unique():
    make_api_key(client_id="dup-runner")
    with pytest.raises(ValidationError) as excinfo:
        make_api_key(client_id="dup-runner")
    assert "client_id" in excinfo.value.message_dict


def test_revoke_is_immediate_audited_and_idempotent():
    operator = SuperuserFactory()
    api_key, _ = make_api_key()
    assert api_key_revoke(api_key=api_key, revoked_by=operator) is True
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.revoked_at is not None
    assert stored.revoked_by == operator
    first_revocation = stored.revoked_at
    assert api_key_revoke(api_key=stored, revoked_by=operator) is False
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first_revocation
    assert AuditEvent.objects.filter(action=AuditEvent.Action.KEY_REVOKED).count() == 1


def test_delete_removes_the_key_but_keeps_its_audit_trail():
    api_key, _ = make_api_key(client_id="to-delete")
    api_key_id = api_key.api_key_id
    api_key_delete(api_key=api_key, actor_name="tests")
    assert not ApiKey.objects.filter(client_id="to-delete").exists()
    actions = list(
        AuditEvent.objects.filter(subject=api_key_id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [AuditEvent.Action.KEY_CREATED, AuditEvent.Action.KEY_DELETED]


def test_update_audits_exactly_what_changed():
    api_key, _ = make_api_key(permissions=("write:findings", "read:findings"))
    api_key_update(
        api_key=api_key,
        changed_by=None,
        actor_name="tests",
        name=api_key.name,
        permissions=["read:findings"],
        expires_at=None,
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_UPDATED)
    assert event.detail == {"permissions": ["read:findings"]}
    assert ApiKey.objects.get(pk=api_key.pk).permissions == ["read:findings"]


def test_last_used_is_written_at_most_once_a_minute(django_assert_num_queries):
    api_key, _ = make_api_key()
    now = timezone.now()
    with django_assert_num_queries(1):
        api_key_touch(api_key=api_key, now=now)
    with django_assert_num_queries(0):
        api_key_touch(api_key=api_key, now=now + timedelta(seconds=59))
    with django_assert_num_queries(1):
        api_key_touch(api_key=api_key, now=now + timedelta(seconds=61))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == now + timedelta(seconds=61)
