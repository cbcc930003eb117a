"""POST /api/v1/auth/m2m/authenticate: every status of the contract."""

import json
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from apikeys.keys import generate_key
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from tests.apikeys.conftest import AUTH_URL, authenticate
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"], ids=["x-api-key", "bearer"])
def test_a_valid_key_gets_a_token_with_the_documented_body(client, api_key, header):
    key, plaintext = api_key
    response = authenticate(client, plaintext, "jenkins-main", header=header)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "client_id", "api_key_id"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert body["client_id"] == "jenkins-main"
    assert body["api_key_id"] == key.api_key_id
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "JWT"
    assert header["kid"]


def test_the_token_carries_every_claim_of_the_contract(client, api_key):
    key, plaintext = api_key
    token = authenticate(client, plaintext).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "client_id",
        "api_key_id",
        "scope",
        "iat",
        "nbf",
        "exp",
        "jti",
    }
    assert claims["sub"] == claims["client_id"] == "jenkins-main"
    assert claims["api_key_id"] == key.api_key_id
    assert claims["scope"] == "read:findings write:findings"
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["nbf"] == claims["iat"]
    assert claims["iss"] == "https://api.gerion.dev"
    assert claims["aud"] == "gerion-api"


def test_each_token_has_its_own_jti(client, api_key):
    _, plaintext = api_key
    tokens = [authenticate(client, plaintext).json()["access_token"] for _ in range(3)]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3


def test_authenticating_records_last_use(client, api_key):
    key, plaintext = api_key
    assert key.last_used_at is None
    authenticate(client, plaintext)
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", None),
        (b"not json", None),
        (b'{"client_id": ', None),
        (b"[]", None),
        (b'"jenkins-main"', None),
        (b"{}", "client_id"),
        (b'{"client_id": null}', "client_id"),
        (b'{"client_id": 42}', "client_id"),
        (b'{"client_id": "ab"}', "client_id"),
        (json.dumps({"client_id": "x" * 51}).encode(), "client_id"),
        (b'{"client_id": "has space"}', "client_id"),
        (b'{"client_id": "semi;colon"}', "client_id"),
        (b'{"client_id": "line\\nbreak"}', "client_id"),
        (b'{"client_id": "\\u00e9t\\u00e9"}', "client_id"),
        (b"\xff\xfe", None),
    ],
    ids=[
        "empty",
        "text",
        "truncated",
        "array",
        "string",
        "missing",
        "null",
        "number",
        "too-short",
        "too-long",
        "space",
        "semicolon",
        "newline",
        "non-ascii",
        "not-utf8",
    ],
)
def test_a_bad_body_is_a_400_problem(client, api_key, body, path):
    _, plaintext = api_key
    response = authenticate(client, plaintext, body=body)
    if path is None:
        problem(response, 400, "invalid_json")
    else:
        assert [e["path"] for e in problem(response, 400, "validation_error")["errors"]] == [path]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
        ({"HTTP_AUTHORIZATION": "Bearer"}, "invalid_api_key"),
        ({"HTTP_X_API_KEY": ""}, "invalid_api_key"),
    ],
    ids=["no-header", "basic-auth", "empty-bearer", "empty-x-api-key"],
)
def test_no_key_is_a_401_problem_with_a_challenge(client, db, headers, code):
    response = client.post(
        AUTH_URL, data={"client_id": "jenkins-main"}, content_type="application/json", **headers
    )
    problem(response, 401, code)
    assert response["WWW-Authenticate"] == 'ApiKey realm="gerion"'


def test_a_malformed_key_costs_no_query(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = authenticate(client, "gerion_abcdefghijkl_" + "A" * 38)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "not-a-key",
        "gerion_short_x",
        "GERION_ABCDEFGHIJKL_" + "A" * 38,
        "gerion_abcdefghijkl_" + "A" * 38,  # right shape, wrong checksum
        "gerion_abcdefghijkl_" + "A" * 3800,
        "' OR 1=1 --",
        "gerion_abcdefghij%0_" + "A" * 38,
    ],
    ids=["empty", "garbage", "short", "upper-case", "bad-checksum", "huge", "sql", "escape"],
)
def test_a_malformed_key_is_a_401_problem(client, db, presented):
    response = authenticate(client, presented)
    problem(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"].startswith("ApiKey")


def test_a_well_formed_key_with_an_unknown_lookup_id_is_a_404_problem(client, db):
    problem(authenticate(client, generate_key().plaintext), 404, "api_key_not_found")


def test_the_right_lookup_id_with_a_wrong_secret_is_a_401_problem(client, api_key):
    key, _ = api_key
    forged = generate_key()
    # The victim's public lookup id with someone else's (well-formed) secret and checksum.
    from apikeys.keys import _checksum

    body = f"gerion_{key.lookup_id}_{forged.plaintext.split('_')[2][:32]}"
    response = authenticate(client, body + _checksum(body))
    problem(response, 401, "invalid_api_key")


def test_a_revoked_key_is_a_401_problem(client, api_key):
    key, plaintext = api_key
    api_key_revoke(api_key=key, actor_name="tests")
    problem(authenticate(client, plaintext), 401, "api_key_revoked")


def test_an_expired_key_is_a_401_problem(client, db):
    key, plaintext = make_api_key(
        client_id="short-lived", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    problem(authenticate(client, plaintext, "short-lived"), 401, "api_key_expired")


def test_another_client_id_than_the_keys_is_a_401_problem(client, api_key):
    make_api_key(client_id="someone-else")
    _, plaintext = api_key
    response = authenticate(client, plaintext, "someone-else")
    problem(response, 401, "client_id_mismatch")
    assert response["WWW-Authenticate"]


def test_both_headers_with_different_keys_are_refused(client, api_key):
    _, plaintext = api_key
    response = client.post(
        AUTH_URL,
        data={"client_id": "jenkins-main"},
        content_type="application/json",
        HTTP_X_API_KEY=plaintext,
        HTTP_AUTHORIZATION=f"Bearer {generate_key().plaintext}",
    )
    problem(response, 401, "invalid_api_key")


def test_any_content_type_with_a_json_body_is_accepted(client, api_key):
    _, plaintext = api_key
    response = client.post(
        AUTH_URL,
        data=b'{"client_id": "jenkins-main"}',
        content_type="text/plain",
        HTTP_X_API_KEY=plaintext,
    )
    assert response.status_code == 200


def test_get_is_a_405_problem(client, db):
    response = client.get(AUTH_URL)
    problem(response, 405, "method_not_allowed")


def test_no_error_body_echoes_the_key(client, api_key):
    key, plaintext = api_key
    api_key_revoke(api_key=key, actor_name="tests")
    for presented in (plaintext, plaintext[:-1], generate_key().plaintext):
        response = authenticate(client, presented)
        assert presented not in response.content.decode()
        assert presented.split("_")[-1] not in response.content.decode()


# --- rate limiting --------------------------------------------------------------------------------


def test_the_eleventh_request_at_once_is_a_429_problem_with_retry_after(client, api_key, settings):
    # A slow refill makes "at once" exact on a busy machine; the bucket is the documented one.
    settings.GERION_AUTH_RATE_PER_SECOND = 0.01
    _, plaintext = api_key
    statuses = [authenticate(client, plaintext).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    response = authenticate(client, plaintext)
    problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_wrong_secrets_spend_the_callers_ip_bucket_not_the_keys(client, api_key, settings):
    settings.GERION_AUTH_RATE_PER_SECOND = 0.01
    key, plaintext = api_key
    from apikeys.keys import _checksum

    body = f"gerion_{key.lookup_id}_{'Z' * 32}"
    forged = body + _checksum(body)
    attacker = [authenticate(client, forged, ip="203.0.113.66").status_code for _ in range(12)]
    assert attacker[:10] == [401] * 10
    assert attacker[10:] == [429, 429]
    # The key's owner, from their own address, is not affected at all.
    assert authenticate(client, plaintext, ip="198.51.100.7").status_code == 200


def test_a_deeply_nested_body_is_a_400_not_a_crash(client, api_key):
    _, plaintext = api_key
    response = authenticate(client, plaintext, body=b"[" * 3000)
    problem(response, 400, "invalid_json")


def test_a_body_over_4_kib_is_refused_before_it_is_read(client, api_key):
    _, plaintext = api_key
    body = json.dumps({"client_id": "jenkins-main", "pad": "x" * 5000}).encode()
    problem(authenticate(client, plaintext, body=body), 413, "payload_too_large")


def test_one_ip_is_capped_on_failed_attempts(client, db, settings):
    settings.GERION_AUTH_FAILURES_PER_MINUTE = 5
    statuses = [
        authenticate(client, generate_key().plaintext, ip="203.0.113.9").status_code
        for _ in range(7)
    ]
    assert statuses[:5] == [404] * 5
    assert statuses[5:] == [429, 429]
    other_ip = authenticate(client, generate_key().plaintext, ip="203.0.113.10")
    assert other_ip.status_code == 404
    assert authenticate(client, None, ip="203.0.113.9").json()["code"] == (
        "too_many_failed_attempts"
    )


def test_a_valid_key_is_never_refused_because_its_address_failed_before(client, api_key, settings):
    # Behind a NAT, or a proxy whose hops are not configured, many clients share an address.
    settings.GERION_AUTH_FAILURES_PER_MINUTE = 3
    _, plaintext = api_key
    for _ in range(6):
        authenticate(client, generate_key().plaintext, ip="192.0.2.50")
    assert authenticate(client, plaintext, ip="192.0.2.50").status_code == 200


def test_an_ipv6_client_cannot_dodge_the_ip_bucket_by_rotating_its_64(client, db, settings):
    settings.GERION_AUTH_RATE_PER_SECOND = 0.01
    statuses = [
        authenticate(client, None, ip=f"2001:db8:1:2::{i:x}").status_code for i in range(12)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert authenticate(client, None, ip="2001:db8:1:3::1").status_code == 401
