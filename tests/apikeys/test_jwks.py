"""GET /api/v1/auth/jwks: a stock JWT library verifies our tokens given only this document."""

import jwt
import pytest

from tests.apikeys.conftest import token_for

pytestmark = pytest.mark.django_db

JWKS_URL = "/api/v1/auth/jwks"


def test_jwks_is_public_cacheable_and_well_formed(client):
    response = client.get(JWKS_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jwk-set+json"
    assert "max-age=300" in response["Cache-Control"]
    assert "public" in response["Cache-Control"]
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (key["kty"], key["use"], key["alg"], key["e"]) == ("RSA", "sig", "RS256", "AQAB")
    assert "d" not in key
    assert "p" not in key


def test_jwks_is_also_served_as_plain_json_when_asked(client):
    response = client.get(JWKS_URL, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_jwks_is_served_whatever_the_client_accepts(client):
    response = client.get(JWKS_URL, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response.json()["keys"]


def test_a_token_verifies_with_pyjwt_given_only_the_jwks(client, api_key):
    _, plaintext = api_key
    token = token_for(client, plaintext, "jenkins-main")
    jwks = jwt.PyJWKSet.from_dict(client.get(JWKS_URL).json())
    kid = jwt.get_unverified_header(token)["kid"]
    signing_key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience="gerion-api",
        issuer="https://api.gerion.dev",
    )
    assert claims["client_id"] == "jenkins-main"


def test_jwks_publishes_active_and_retired_keys(client, settings, tmp_path):
    from apikeys.signing_keys import generate_private_key_pem, load_signing_key

    retired = tmp_path / "retired.pem"
    retired.write_bytes(generate_private_key_pem(2048))
    settings.GERION_JWT_RETIRED_KEYS = [str(retired)]
    kids = [k["kid"] for k in client.get(JWKS_URL).json()["keys"]]
    assert kids == [
        load_signing_key(settings.GERION_JWT_SIGNING_KEY).kid,
        load_signing_key(retired).kid,
    ]
