"""Revocation cannot be undone, whatever path a write takes; audit rows never change."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apikeys.models import ApiKey, AuditEvent, RevocationIsFinal
from apikeys.services import api_key_revoke
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def revoked_key():
    api_key, _ = make_api_key()
    api_key_revoke(api_key=api_key, actor_name="tests")
    return ApiKey.objects.get(pk=api_key.pk)


def test_saving_a_revoked_key_is_refused(revoked_key):
    revoked_key.revoked_at = None
    with pytest.raises(RevocationIsFinal):
        revoked_key.save()
    revoked_key.refresh_from_db()
    assert revoked_key.revoked_at is not None


def test_even_renaming_a_revoked_key_is_refused(revoked_key):
    revoked_key.name = "renamed"
    with pytest.raises(RevocationIsFinal):
        revoked_key.save()


def test_bulk_unrevoke_is_refused(revoked_key):
    with pytest.raises(RevocationIsFinal):
        ApiKey.objects.filter(pk=revoked_key.pk).update(revoked_at=None)


def test_the_database_refuses_raw_sql_that_would_unrevoke(revoked_key):
    with (
        pytest.raises(DatabaseError, match="revocation cannot be undone"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE apikeys_apikey SET revoked_at = NULL WHERE id = %s", [revoked_key.pk]
        )
    assert ApiKey.objects.get(pk=revoked_key.pk).revoked_at is not None


def test_status_reflects_revocation_and_expiry():
    now = timezone.now()
    active, _ = make_api_key()
    assert active.status(now) == ApiKey.Status.ACTIVE
    assert active.status(now + timedelta(days=3650)) == ApiKey.Status.ACTIVE
    expiring, _ = make_api_key(expires_at=now + timedelta(hours=1))
    assert expiring.status(now) == ApiKey.Status.ACTIVE
    assert expiring.status(now + timedelta(hours=1)) == ApiKey.Status.EXPIRED
    api_key_revoke(api_key=expiring, actor_name="tests")
    assert expiring.status(now) == ApiKey.Status.REVOKED


def test_audit_events_are_append_only():
    api_key, _ = make_api_key()
    event = AuditEvent.objects.get(api_key=api_key)
    event.actor_name = "someone else"
    with pytest.raises(ValidationError):
        event.save()
