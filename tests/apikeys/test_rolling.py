"""Rolling a key: a successor with the same client_id, permissions, repositories and name; the
old key (and its tokens) keep working for the grace period, then behave as expired."""

import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from apikeys.keys import parse_key
from apikeys.models import ApiKey, AuditEvent, RollIsFinal
from apikeys.services import api_key_revoke, api_key_roll
from tests.apikeys.conftest import authenticate, token_for
from tests.factories import SuperuserFactory, make_api_key
from tests.findings.conftest import documented_body, get, post, sast

pytestmark = pytest.mark.django_db


@pytest.fixture
def old():
    """A key limited to repositories, with a token minted from it."""
    key, plaintext = make_api_key(
        client_id="gha-payments", name="GitHub Actions, payments", repositories=("payments/*",)
    )
    return key, plaintext, token_for(Client(), plaintext, "gha-payments")


def _end_grace(key):
    """The grace period is over (as if its hours had passed)."""
    ApiKey.objects.filter(pk=key.pk).update(retires_at=timezone.now() - timedelta(seconds=1))


def _uploads(client, token):
    return post(client, token, documented_body(sast(1), repository="payments/api")).status_code


def test_the_successor_is_the_same_key_with_a_new_secret(old):
    key, old_plaintext, _ = old
    operator = SuperuserFactory(username="oncall")
    successor, plaintext = api_key_roll(api_key=key, grace=timedelta(hours=24), rolled_by=operator)
    assert parse_key(plaintext) is not None
    assert plaintext != old_plaintext
    assert successor.pk != key.pk
    assert successor.lookup_id != key.lookup_id
    assert (successor.name, successor.client_id, successor.permissions) == (
        key.name,
        key.client_id,
        key.permissions,
    )
    assert successor.repository_patterns == ["payments/*"]
    assert successor.rolled_from == key
    assert successor.created_by == operator
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.status() == ApiKey.Status.RETIRING
    assert (
        timedelta(hours=23, minutes=59) < stored.retires_at - timezone.now() <= timedelta(hours=24)
    )


def test_during_the_grace_both_keys_and_the_old_tokens_work(client, old):
    key, old_plaintext, old_token = old
    _, plaintext = api_key_roll(api_key=key, grace=timedelta(hours=24))
    assert authenticate(client, old_plaintext, "gha-payments").status_code == 200
    assert authenticate(client, plaintext, "gha-payments").status_code == 200
    assert _uploads(client, old_token) == 201
    new_token = token_for(client, plaintext, "gha-payments")
    assert _uploads(client, new_token) == 201
    # The successor carries the repositories: outside them it is refused like the old key.
    outside = post(client, new_token, documented_body(sast(1), repository="search/x"))
    assert outside.status_code == 403


def test_after_the_grace_the_old_key_and_its_tokens_behave_as_expired(client, old):
    key, old_plaintext, old_token = old
    _, plaintext = api_key_roll(api_key=key, grace=timedelta(hours=1))
    _end_grace(key)
    refused = authenticate(client, old_plaintext, "gha-payments")
    assert refused.status_code == 401
    assert refused.json()["code"] == "api_key_expired"
    response = get(client, old_token)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_expired"
    assert ApiKey.objects.get(pk=key.pk).status() == ApiKey.Status.EXPIRED
    # The new key is untouched.
    assert _uploads(client, token_for(client, plaintext, "gha-payments")) == 201


def test_without_grace_the_old_key_and_its_tokens_stop_at_once(client, old):
    key, old_plaintext, old_token = old
    _, plaintext = api_key_roll(api_key=key, grace=timedelta(0))
    assert authenticate(client, old_plaintext, "gha-payments").json()["code"] == "api_key_expired"
    assert get(client, old_token).status_code == 401
    assert authenticate(client, plaintext, "gha-payments").status_code == 200


def test_rolling_is_audited_on_both_keys(old):
    key, _, _ = old
    operator = SuperuserFactory(username="oncall")
    successor, _ = api_key_roll(api_key=key, grace=timedelta(hours=2), rolled_by=operator)
    rolled = AuditEvent.objects.get(action=AuditEvent.Action.KEY_ROLLED)
    assert (rolled.subject, rolled.client_id, rolled.actor_name) == (
        key.api_key_id,
        "gha-payments",
        "oncall",
    )
    assert rolled.detail["successor"] == successor.api_key_id
    assert rolled.detail["grace_seconds"] == 7200
    created = AuditEvent.objects.get(
        action=AuditEvent.Action.KEY_CREATED, subject=successor.api_key_id
    )
    assert created.detail["rolled_from"] == key.api_key_id
    assert created.detail["repository_patterns"] == ["payments/*"]
    assert created.actor == operator


def test_the_successor_can_be_rolled_during_the_first_grace(client, old):
    """A new secret lost before it was deployed: roll again at once."""
    key, old_plaintext, _ = old
    second, _ = api_key_roll(api_key=key, grace=timedelta(hours=24))
    third, plaintext = api_key_roll(api_key=second, grace=timedelta(hours=24))
    assert ApiKey.objects.filter(client_id="gha-payments").count() == 3
    assert ApiKey.objects.filter(client_id="gha-payments", retires_at__isnull=True).get() == third
    for secret in (old_plaintext, plaintext):
        assert authenticate(client, secret, "gha-payments").status_code == 200


@pytest.mark.parametrize(
    "state", ["rolled", "revoked", "expired", "retired"], ids=lambda state: f"{state}-key"
)
def test_only_a_usable_key_that_was_not_rolled_yet_can_be_rolled(old, state):
    key, _, _ = old
    if state in ("rolled", "retired"):
        api_key_roll(api_key=key, grace=timedelta(hours=1))
        if state == "retired":
            _end_grace(key)
    elif state == "revoked":
        api_key_revoke(api_key=key)
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    keys_before = ApiKey.objects.count()
    with pytest.raises(ValidationError):
        api_key_roll(api_key=ApiKey.objects.get(pk=key.pk), grace=timedelta(hours=1))
    assert ApiKey.objects.count() == keys_before


@pytest.mark.parametrize(
    "grace", [timedelta(hours=-1), timedelta(days=31)], ids=["negative", "over-30-days"]
)
def test_the_grace_period_is_bounded(old, grace):
    key, _, _ = old
    with pytest.raises(ValidationError):
        api_key_roll(api_key=key, grace=grace)
    assert ApiKey.objects.get(pk=key.pk).retires_at is None


def test_client_id_stays_unique_among_keys_that_were_not_rolled(old):
    key, _, _ = old
    with pytest.raises(ValidationError):
        make_api_key(client_id="gha-payments")
    successor, _ = api_key_roll(api_key=key, grace=timedelta(hours=1))
    # The successor took the client_id over: another key cannot have it, rolled or not.
    with pytest.raises(ValidationError):
        make_api_key(client_id="gha-payments")
    # The database says so too, whatever the code path.
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(
            name="copy", client_id="gha-payments", lookup_id="abcdefabcdef", secret_hash="0" * 64
        )
    # And the rolled key cannot come back.
    with pytest.raises(RollIsFinal):
        ApiKey.objects.filter(pk=key.pk).update(retires_at=None)
    stored = ApiKey.objects.get(pk=key.pk)
    stored.retires_at = None
    with pytest.raises(RollIsFinal):
        stored.save()
    assert ApiKey.objects.get(pk=successor.pk).retires_at is None


def test_a_rolled_key_cannot_be_edited_its_successor_can(old):
    from apikeys.services import KeyIsRetiring, api_key_update

    key, _, _ = old
    successor, _ = api_key_roll(api_key=key, grace=timedelta(hours=1))
    with pytest.raises(KeyIsRetiring):
        api_key_update(
            api_key=ApiKey.objects.get(pk=key.pk),
            changed_by=None,
            name="renamed",
            permissions=["read:findings"],
            expires_at=None,
        )
    api_key_update(
        api_key=successor,
        changed_by=None,
        name="renamed",
        permissions=["read:findings"],
        expires_at=None,
    )
    assert ApiKey.objects.get(pk=successor.pk).name == "renamed"
    assert ApiKey.objects.get(pk=key.pk).name == "GitHub Actions, payments"


def test_narrowing_the_successor_narrows_the_key_still_in_its_grace_and_its_tokens(client, old):
    """The old key stands in for its successor until it retires: an operator who narrows the
    new key after a roll narrows the pipeline still on the old one, at its next request."""
    from apikeys.services import api_key_update

    key, old_plaintext, old_token = old
    successor, _ = api_key_roll(api_key=key, grace=timedelta(hours=24))
    assert _uploads(client, old_token) == 201
    api_key_update(
        api_key=successor,
        changed_by=None,
        name=successor.name,
        permissions=["read:findings"],
        expires_at=None,
        repository_patterns=["payments/web"],
    )
    assert _uploads(client, old_token) == 403  # no write:findings any more
    fresh = token_for(client, old_plaintext, "gha-payments")
    assert _uploads(client, fresh) == 403
    listed = get(client, fresh, repository_name="payments/api")
    assert listed.status_code == 200
    assert listed.json() == []  # payments/api is outside payments/web now
    stored = ApiKey.objects.get(pk=key.pk)
    assert (stored.permissions, stored.repository_patterns) == (
        ["read:findings"],
        ["payments/web"],
    )
    followed = AuditEvent.objects.filter(subject=key.api_key_id, action="api_key.updated").get()
    assert followed.detail["followed_successor"] == successor.api_key_id


@pytest.mark.django_db(transaction=True)
def test_two_operators_rolling_the_same_key_at_once_make_one_successor():
    from tests.support.parallel import at_once

    key, _ = make_api_key(client_id="raced")

    def roll():
        try:
            return api_key_roll(api_key=key, grace=timedelta(hours=1))[0].pk
        except ValidationError:
            return "refused"

    results = sorted(str(result) for result, _ in at_once([roll, roll]))
    assert results[1] == "refused"
    assert ApiKey.objects.filter(client_id="raced").count() == 2
    assert ApiKey.objects.filter(client_id="raced", retires_at__isnull=True).count() == 1


# --- manage.py rollapikey -----------------------------------------------------------------------


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_rollapikey_prints_the_new_key_alone_on_the_last_line(client, old):
    key, old_plaintext, _ = old
    out, err = _run("rollapikey", key.api_key_id)
    plaintext = out.strip().splitlines()[-1]
    assert parse_key(plaintext) is not None
    assert plaintext not in err
    assert old_plaintext not in out + err
    assert "keeps working until" in err
    stored = ApiKey.objects.get(pk=key.pk)
    assert (
        timedelta(hours=23, minutes=59) < stored.retires_at - timezone.now() <= timedelta(hours=24)
    )
    assert authenticate(client, plaintext, "gha-payments").status_code == 200
    assert authenticate(client, old_plaintext, "gha-payments").status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_ROLLED)
    assert event.actor_name == "manage.py rollapikey"


def test_rollapikey_with_no_grace_stops_the_old_key_at_once(client, old):
    key, old_plaintext, old_token = old
    out, _ = _run("rollapikey", key.api_key_id, "--grace-hours", "0")
    assert authenticate(client, old_plaintext, "gha-payments").status_code == 401
    assert get(client, old_token).status_code == 401
    assert authenticate(client, out.strip().splitlines()[-1], "gha-payments").status_code == 200


def test_rollapikey_takes_hours_with_a_fraction(old):
    key, _, _ = old
    _run("rollapikey", key.api_key_id, "--grace-hours", "1.5")
    left = ApiKey.objects.get(pk=key.pk).retires_at - timezone.now()
    assert timedelta(hours=1, minutes=29) < left <= timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("api_key_id", "grace"),
    [
        ("key-doesnotexist", "24"),
        ("nonsense", "24"),
        (None, "-1"),
        (None, "721"),
        (None, "soon"),
        (None, "nan"),
        (None, "inf"),
    ],
    ids=["unknown", "shape", "negative", "too-long", "words", "nan", "inf"],
)
def test_rollapikey_refuses_bad_input_and_changes_nothing(old, api_key_id, grace):
    key, _, _ = old
    with pytest.raises(CommandError):
        _run("rollapikey", api_key_id or key.api_key_id, "--grace-hours", grace)
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get(pk=key.pk).retires_at is None


def test_createapikey_limits_the_key_to_the_repositories_given(client):
    out, err = _run(
        "createapikey",
        "--name",
        "payments",
        "--client-id",
        "payments-ci",
        "--permissions",
        "write:findings,read:findings",
        "--repositories",
        "payments/*, tools/cli",
    )
    key = ApiKey.objects.get(client_id="payments-ci")
    assert key.repository_patterns == ["payments/*", "tools/cli"]
    assert "payments/*, tools/cli" in err
    token = token_for(client, out.strip().splitlines()[-1], "payments-ci")
    assert post(client, token, documented_body(sast(1), repository="tools/cli")).status_code == 201
    assert post(client, token, documented_body(sast(1), repository="tools/x")).status_code == 403


@pytest.mark.parametrize("repositories", ["", " , ", "a\tb"], ids=["empty", "blank", "tab"])
def test_createapikey_refuses_unusable_repositories(repositories):
    with pytest.raises(CommandError):
        _run(
            "createapikey",
            "--name",
            "n",
            "--client-id",
            "bad-scope",
            "--permissions",
            "read:findings",
            "--repositories",
            repositories,
        )
    assert not ApiKey.objects.exists()
