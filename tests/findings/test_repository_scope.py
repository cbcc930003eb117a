"""A key limited to repositories can neither write nor read outside them; narrowing it reaches
its outstanding tokens at their next request."""

import pytest
from django.test import Client

from apikeys.models import AuditEvent
from apikeys.services import api_key_update
from findings.models import Finding, FindingEvent, Stream, Upload
from tests.apikeys.conftest import token_for
from tests.findings.conftest import cli_body, documented_body, get, post, sast

pytestmark = pytest.mark.django_db


def _key(client_id, *repositories, permissions=("write:findings", "read:findings")):
    from tests.factories import make_api_key

    key, plaintext = make_api_key(
        client_id=client_id, permissions=permissions, repositories=repositories
    )
    return key, token_for(Client(), plaintext, client_id)


@pytest.fixture
def two_teams(client):
    """Findings of two teams' repositories, uploaded with an unrestricted key."""
    _, admin = _key("platform", "*")
    for repository in ("payments/api", "payments/web", "search/indexer"):
        response = post(client, admin, documented_body(sast(3), repository=repository))
        assert response.status_code == 201, response.content


def _set_repositories(key, *patterns):
    api_key_update(
        api_key=key,
        changed_by=None,
        name=key.name,
        permissions=key.permissions,
        expires_at=None,
        repository_patterns=list(patterns),
        actor_name="tests",
    )


def _state():
    """Everything an upload could change."""
    return (
        Upload.objects.count(),
        Stream.objects.count(),
        FindingEvent.objects.count(),
        sorted(Finding.objects.values_list("repository_name", "finding_id", "active", "mitigated")),
    )


@pytest.mark.parametrize(
    "body",
    [
        documented_body(sast(2), repository="search/indexer"),
        cli_body(sast(2), repository_name="search/indexer", scan_type="SAST"),
        cli_body(sast(2), legacy=True, repository_name="search/indexer", scan_type="SAST"),
        # An empty scan mitigates what is open in its stream: the probe that mitigated
        # another team's findings "in build attacker".
        documented_body([], repository="search/indexer", build_id="attacker"),
        # A new repository outside the scope is refused too, not only existing ones.
        documented_body(sast(1), repository="elsewhere/new"),
    ],
    ids=["documented", "cli", "cli-legacy", "empty-scan", "new-repository"],
)
def test_an_upload_outside_the_keys_repositories_is_refused_and_changes_nothing(
    client, two_teams, body
):
    _, token = _key("payments-ci", "payments/*")
    before = _state()
    response = post(client, token, body)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "repository_not_allowed"
    assert _state() == before
    assert not Finding.objects.filter(repository_name="search/indexer", active=False).exists()


def test_uploads_to_allowed_repositories_are_stored(client, two_teams):
    _, token = _key("payments-ci", "payments/*", "search/indexer")
    assert (
        post(client, token, documented_body(sast(4), repository="payments/api")).status_code == 201
    )
    assert (
        post(client, token, documented_body(sast(1), repository="payments/new")).status_code == 201
    )
    empty = post(client, token, documented_body([], repository="search/indexer", build_id="9"))
    assert empty.status_code == 201
    assert empty.json()["mitigated"] == 3


def test_queries_return_only_the_keys_repositories(client, two_teams):
    _, token = _key("payments-reader", "payments/api", permissions=("read:findings",))
    items = get(client, token, limit=1000).json()
    assert {item["repository_name"] for item in items} == {"payments/api"}
    assert len(items) == 3
    # Asking for another repository by name finds nothing rather than leaking it.
    assert get(client, token, repository_name="search/indexer").json() == []


def test_paging_stays_inside_the_keys_repositories(client, two_teams):
    _, token = _key("payments-reader", "payments/*", permissions=("read:findings",))
    seen, response = [], get(client, token, limit=2)
    while True:
        seen += [item["repository_name"] for item in response.json()]
        if "Link" not in response:
            break
        next_url = response["Link"].split(";")[0].strip("<>")
        response = client.get(next_url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert sorted(seen) == ["payments/api"] * 3 + ["payments/web"] * 3


def test_narrowing_a_key_applies_to_its_outstanding_tokens_at_their_next_request(client, two_teams):
    key, token = _key("payments-ci", "payments/*")
    assert (
        post(client, token, documented_body(sast(1), repository="payments/web")).status_code == 201
    )
    _set_repositories(key, "payments/api")
    # The same token, minted before the change:
    refused = post(client, token, documented_body(sast(1), repository="payments/web"))
    assert refused.status_code == 403
    assert refused.json()["code"] == "repository_not_allowed"
    assert {i["repository_name"] for i in get(client, token, limit=1000).json()} == {"payments/api"}
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_UPDATED)
    assert event.detail["repository_patterns"] == ["payments/api"]
    assert event.detail["repository_patterns_before"] == ["payments/*"]
    # Widening works the same way.
    _set_repositories(key, "*")
    assert (
        post(client, token, documented_body(sast(1), repository="payments/web")).status_code == 201
    )


def test_existing_and_new_keys_may_touch_every_repository_by_default(client):
    from tests.factories import make_api_key

    key, plaintext = make_api_key(client_id="default-scope")
    assert key.repository_patterns == ["*"]
    token = token_for(Client(), plaintext, "default-scope")
    assert post(client, token, documented_body(sast(1), repository="any/thing")).status_code == 201
