"""Operators issue, inspect, revoke and delete keys in the admin."""

import re

import pytest
from django.contrib.auth.models import Permission as AuthPermission
from django.test import Client

from apikeys.keys import KEY_RE
from apikeys.models import ApiKey, AuditEvent
from tests.apikeys.conftest import authenticate
from tests.factories import StaffFactory, SuperuserFactory, make_api_key

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/apikeys/apikey/add/"
LIST_URL = "/admin/apikeys/apikey/"


@pytest.fixture
def operator():
    return SuperuserFactory(username="oncall")


@pytest.fixture
def admin_client(operator):
    client = Client()
    client.force_login(operator)
    return client


def _create(admin_client, **fields):
    data = {
        "name": "Jenkins main",
        "client_id": "jenkins-main",
        "permissions": ["write:findings", "read:findings"],
        "repository_patterns": "*",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(fields)
    return admin_client.post(ADD_URL, data)


def test_creating_a_key_shows_its_plaintext_once(admin_client, operator):
    response = _create(admin_client)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    plaintext = re.search(r'value="(gerion_[^"]+)"', html).group(1)
    assert KEY_RE.match(plaintext)
    key = ApiKey.objects.get(client_id="jenkins-main")
    assert key.created_by == operator
    # It works...
    assert authenticate(Client(), plaintext, "jenkins-main").status_code == 200
    # ...and no later page shows it again.
    for url in (LIST_URL, f"{LIST_URL}{key.pk}/change/", "/admin/apikeys/auditevent/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert plaintext not in page.content.decode()
        assert plaintext.split("_")[2] not in page.content.decode()


def test_an_invalid_key_form_is_shown_again_with_errors(admin_client):
    response = _create(admin_client, client_id="no spaces allowed", permissions=[])
    assert response.status_code == 200
    assert b"errornote" in response.content
    assert not ApiKey.objects.exists()


def test_the_list_shows_status_at_a_glance_and_filters_by_it(admin_client):
    _active, _ = make_api_key(client_id="live-one")
    revoked, _ = make_api_key(client_id="dead-one")
    admin_client.post(f"{LIST_URL}{revoked.pk}/revoke/", {"confirm": "yes"})
    html = admin_client.get(LIST_URL).content.decode()
    assert "apikey-status-active" in html
    assert "apikey-status-revoked" in html
    only_revoked = admin_client.get(LIST_URL, {"status": "revoked"}).content.decode()
    assert "dead-one" in only_revoked
    assert "live-one" not in only_revoked
    search = admin_client.get(LIST_URL, {"q": "live"}).content.decode()
    assert "live-one" in search
    assert "dead-one" not in search


def test_revoking_from_the_list_asks_for_confirmation_first(admin_client):
    first, _ = make_api_key(client_id="leaked-1")
    second, _ = make_api_key(client_id="leaked-2")
    selection = {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]}
    confirm_page = admin_client.post(LIST_URL, selection)
    assert confirm_page.status_code == 200
    assert b"cannot be undone" in confirm_page.content
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0
    done = admin_client.post(LIST_URL, {**selection, "confirm": "yes"})
    assert done.status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.KEY_REVOKED).count() == 2


def test_revoking_one_key_from_its_page_kills_its_tokens(admin_client, operator):
    key, plaintext = make_api_key(client_id="leaked")
    client = Client()
    token = authenticate(client, plaintext, "leaked").json()["access_token"]
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/")
    assert f"{LIST_URL}{key.pk}/revoke/" in page.content.decode()
    assert admin_client.get(f"{LIST_URL}{key.pk}/revoke/").status_code == 200  # confirmation
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    admin_client.post(f"{LIST_URL}{key.pk}/revoke/", {"confirm": "yes"})
    key.refresh_from_db()
    assert key.revoked_by == operator
    assert authenticate(client, plaintext, "leaked").status_code == 401
    from apikeys.services import principal_from_token
    from gerion.problems import ProblemError

    with pytest.raises(ProblemError):
        principal_from_token(token=token)


def test_a_revoked_key_is_read_only_in_the_admin(admin_client):
    key, _ = make_api_key(client_id="gone")
    admin_client.post(f"{LIST_URL}{key.pk}/revoke/", {"confirm": "yes"})
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/").content.decode()
    assert 'name="name"' not in page  # no editable inputs
    assert "revoke-link" not in page
    response = admin_client.post(
        f"{LIST_URL}{key.pk}/change/", {"name": "revived", "permissions": ["read:findings"]}
    )
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=key.pk).name != "revived"


def test_deleting_from_the_admin_keeps_the_audit_trail(admin_client):
    key, _ = make_api_key(client_id="to-delete")
    api_key_id = key.api_key_id
    admin_client.post(f"{LIST_URL}{key.pk}/delete/", {"post": "yes"})
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_DELETED)
    assert (event.subject, event.actor_name) == (api_key_id, "oncall")
    assert api_key_id in admin_client.get("/admin/apikeys/auditevent/").content.decode()


def test_staff_without_key_permissions_cannot_see_or_revoke_keys():
    staff = StaffFactory()
    key, _ = make_api_key()
    client = Client()
    client.force_login(staff)
    assert client.get(LIST_URL).status_code == 403
    assert client.post(f"{LIST_URL}{key.pk}/revoke/", {"confirm": "yes"}).status_code == 403
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_viewing_keys_does_not_grant_revoking_them():
    staff = StaffFactory()
    staff.user_permissions.add(AuthPermission.objects.get(codename="view_apikey"))
    key, _ = make_api_key()
    client = Client()
    client.force_login(staff)
    assert client.get(LIST_URL).status_code == 200
    assert client.post(f"{LIST_URL}{key.pk}/revoke/", {"confirm": "yes"}).status_code == 403
    staff.user_permissions.add(AuthPermission.objects.get(codename="revoke_apikey"))
    client.post(f"{LIST_URL}{key.pk}/revoke/", {"confirm": "yes"})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_anonymous_visitors_are_sent_to_the_login_page():
    response = Client().get(LIST_URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _change(admin_client, key, **fields):
    data = {
        "name": key.name,
        "permissions": key.permissions,
        "repository_patterns": "\n".join(key.repository_patterns),
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(fields)
    return admin_client.post(f"{LIST_URL}{key.pk}/change/", data)


def test_removing_a_permission_in_the_admin_takes_effect_and_is_audited(admin_client):
    key, plaintext = make_api_key(client_id="narrowed")
    token = authenticate(Client(), plaintext, "narrowed").json()["access_token"]
    response = _change(admin_client, key, permissions=["read:findings"])
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).permissions == ["read:findings"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_UPDATED)
    assert event.detail == {"permissions": ["read:findings"]}
    assert event.actor_name == "oncall"
    from apikeys.services import principal_from_token

    assert principal_from_token(token=token).scopes == {"read:findings"}


def test_renaming_and_setting_an_expiry_in_the_admin_are_saved(admin_client):
    key, _ = make_api_key(client_id="renamed", permissions=("read:findings",))
    _change(
        admin_client, key, name="Jenkins (old)", expires_at_0="2099-01-01", expires_at_1="00:00:00"
    )
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.name == "Jenkins (old)"
    assert stored.expires_at.year == 2099
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_UPDATED)
    assert set(event.detail) == {"name", "expires_at"}


def test_an_unknown_key_id_in_the_revoke_url_is_a_404(admin_client):
    assert admin_client.get(f"{LIST_URL}abc/revoke/").status_code == 404
    assert admin_client.get(f"{LIST_URL}999999/revoke/").status_code == 404


# --- repositories -------------------------------------------------------------------------------


def _upload_to(*repositories):
    """Findings in these repositories, so that they are known to the admin."""
    from tests.findings.conftest import documented_body, post, sast

    _, plaintext = make_api_key(client_id="seeder")
    token = authenticate(Client(), plaintext, "seeder").json()["access_token"]
    for repository in repositories:
        assert (
            post(Client(), token, documented_body(sast(1), repository=repository)).status_code
            == 201
        )


def test_a_key_limited_in_the_admin_shows_what_it_may_touch(admin_client):
    _upload_to("payments/api", "payments/web", "search/indexer")
    response = _create(admin_client, repository_patterns="payments/*\r\ntools/cli")
    assert response.status_code == 200
    key = ApiKey.objects.get(client_id="jenkins-main")
    assert key.repository_patterns == ["payments/*", "tools/cli"]
    assert b"the repositories payments/*, tools/cli" in response.content
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/").content.decode()
    assert "every repository under payments/" in page
    assert "tools/cli (exactly)" in page
    assert "2 of the 3 repositories with findings: payments/api, payments/web." in page
    listing = admin_client.get(LIST_URL).content.decode()
    assert "payments/*, tools/cli" in listing


def test_an_empty_repositories_field_is_refused_not_read_as_every_repository(admin_client):
    response = _create(admin_client, repository_patterns="  \r\n ")
    assert response.status_code == 200
    assert "Give at least one pattern" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_narrowing_in_the_admin_is_audited_and_reaches_existing_tokens(admin_client):
    from apikeys.services import principal_from_token

    key, plaintext = make_api_key(client_id="narrow-me")
    token = authenticate(Client(), plaintext, "narrow-me").json()["access_token"]
    assert _change(admin_client, key, repository_patterns="payments/api").status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_UPDATED)
    assert event.detail == {
        "repository_patterns": ["payments/api"],
        "repository_patterns_before": ["*"],
    }
    assert event.actor_name == "oncall"
    assert principal_from_token(token=token).repository_patterns == ("payments/api",)


# --- rolling ------------------------------------------------------------------------------------


def test_rolling_from_the_list_asks_for_the_grace_then_shows_the_new_key_once(admin_client):
    key, old_plaintext = make_api_key(client_id="gha-web", repositories=("web/*",))
    selection = {"action": "roll_key", "_selected_action": [key.pk]}
    confirm = admin_client.post(LIST_URL, selection)
    assert confirm.status_code == 200
    assert b'name="grace_hours"' in confirm.content
    assert ApiKey.objects.count() == 1  # nothing before confirming
    shown = admin_client.post(LIST_URL, {**selection, "confirm": "yes", "grace_hours": "2"})
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    plaintext = re.search(r'value="(gerion_[^"]+)"', html).group(1)
    assert f"It replaces {key.api_key_id}" in html
    assert "keeps working for 1" in html  # "1 hour, 59 minutes"
    successor = ApiKey.objects.get(client_id="gha-web", retires_at__isnull=True)
    assert successor.repository_patterns == ["web/*"]
    assert authenticate(Client(), plaintext, "gha-web").status_code == 200
    assert authenticate(Client(), old_plaintext, "gha-web").status_code == 200
    # Both keys in the list: the old one retiring, with the time left and its successor.
    listing = admin_client.get(LIST_URL).content.decode()
    assert "apikey-status-retiring" in listing
    assert f"successor {successor.api_key_id}" in listing
    assert f"successor of {key.api_key_id}" in listing
    assert "hour" in listing
    # Shown once.
    for url in (LIST_URL, f"{LIST_URL}{successor.pk}/change/", f"{LIST_URL}{key.pk}/change/"):
        assert plaintext not in admin_client.get(url).content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_ROLLED)
    assert (event.actor_name, event.detail["grace_seconds"]) == ("oncall", 7200)


def test_rolling_from_the_keys_page_with_no_grace_stops_the_old_key(admin_client):
    key, old_plaintext = make_api_key(client_id="gha-api")
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/").content.decode()
    assert f"{LIST_URL}{key.pk}/roll/" in page
    assert admin_client.get(f"{LIST_URL}{key.pk}/roll/").status_code == 200
    shown = admin_client.post(f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes", "grace_hours": "0"})
    html = shown.content.decode()
    assert "has stopped working, with every token it minted" in html
    assert authenticate(Client(), old_plaintext, "gha-api").status_code == 401
    plaintext = re.search(r'value="(gerion_[^"]+)"', html).group(1)
    assert authenticate(Client(), plaintext, "gha-api").status_code == 200


@pytest.mark.parametrize("grace", ["-1", "721", "soon"], ids=["negative", "too-long", "words"])
def test_a_bad_grace_period_is_asked_again(admin_client, grace):
    key, _ = make_api_key(client_id="gha-bad")
    response = admin_client.post(
        f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes", "grace_hours": grace}
    )
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert ApiKey.objects.count() == 1


def test_a_rolled_key_is_read_only_and_cannot_be_rolled_again(admin_client):
    key, _ = make_api_key(client_id="rolled")
    admin_client.post(f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes", "grace_hours": "24"})
    page = admin_client.get(f"{LIST_URL}{key.pk}/change/").content.decode()
    assert 'name="name"' not in page
    assert "roll-link" not in page
    assert "revoke-link" in page  # ending the grace early is a revocation
    assert "retires in" in page
    assert b"roll its successor instead" in admin_client.get(f"{LIST_URL}{key.pk}/roll/").content
    again = admin_client.post(
        f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes", "grace_hours": "1"}, follow=True
    )
    assert b"roll the successor instead" in again.content
    assert ApiKey.objects.count() == 2


def test_rolling_several_keys_at_once_is_refused(admin_client):
    first, _ = make_api_key(client_id="one")
    second, _ = make_api_key(client_id="two")
    response = admin_client.post(
        LIST_URL, {"action": "roll_key", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    assert "Select exactly one key to roll." in response.content.decode()
    assert ApiKey.objects.count() == 2


def test_rolling_needs_the_roll_permission():
    staff = StaffFactory()
    staff.user_permissions.add(
        *AuthPermission.objects.filter(codename__in=["view_apikey", "change_apikey"])
    )
    key, _ = make_api_key()
    client = Client()
    client.force_login(staff)
    assert "roll-link" not in client.get(f"{LIST_URL}{key.pk}/change/").content.decode()
    assert client.post(f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes"}).status_code == 403
    staff.user_permissions.add(AuthPermission.objects.get(codename="roll_apikey"))
    client.post(f"{LIST_URL}{key.pk}/roll/", {"confirm": "yes", "grace_hours": "1"})
    assert ApiKey.objects.get(pk=key.pk).retires_at is not None
