"""JWT attacks against the running service (gunicorn, several workers, PostgreSQL, Redis).

Every forged, altered, expired or orphaned token must be refused with a 401 problem, and
nothing may be written. Tokens that need our signature are signed with the service's real
key, so the refusal comes from the check under attack and not from a bad signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_delete, api_key_revoke, api_key_update
from apikeys.signing_keys import get_keyset
from findings.models import Finding, Upload
from tests.factories import make_api_key
from tests.support.servers import gunicorn, live_database_url, token_over_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
BODY: dict[str, Any] = {
    "metadata": {
        "repository_name": "victim/repo",
        "branch_name": "main",
        "build_id": "1",
        "code_path": ".",
        "scan_type": "SAST",
    },
    "findings": [{"finding_id": "planted", "title": "planted by an attacker"}],
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(part: dict[str, Any]) -> str:
    return b64(json.dumps(part).encode())


def sign_rs256(
    header: dict[str, Any],
    claims: dict[str, Any],
    key: rsa.RSAPrivateKey,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    pad: padding.AsymmetricPadding | None = None,
) -> str:
    signing_input = f"{encode(header)}.{encode(claims)}".encode()
    signature = key.sign(
        signing_input, pad or padding.PKCS1v15(), hash_algorithm or hashes.SHA256()
    )
    return f"{signing_input.decode()}.{b64(signature)}"


def sign_hmac(
    header: dict[str, Any],
    claims: dict[str, Any],
    secret: bytes,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    signing_input = f"{encode(header)}.{encode(claims)}".encode()
    return f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, digest).digest())}"


class JwksBait:
    """An attacker's JWKS server: counts every fetch (there must be none)."""

    def __init__(self) -> None:
        numbers = ATTACKER_KEY.public_key().public_numbers()
        document = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "attacker",
                    "use": "sig",
                    "alg": "RS256",
                    "n": b64(numbers.n.to_bytes(256, "big")),
                    "e": b64(numbers.e.to_bytes(3, "big")),
                }
            ]
        }
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                payload = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    with gunicorn(
        tmp_path_factory.mktemp("gunicorn"), workers=2, env={"DATABASE_URL": live_database_url()}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def bait() -> Iterator[JwksBait]:
    bait = JwksBait()
    yield bait
    bait.server.shutdown()


@pytest.fixture
def victim(server):
    """A live key and a genuine token for it, from the running service."""
    key, plaintext = make_api_key(client_id="victim-ci")
    token = token_over_http(server.url, plaintext, "victim-ci")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return {"key": key, "token": token, "header": header, "claims": claims}


def our_key() -> rsa.RSAPrivateKey:
    return get_keyset().active.private_key


def with_claims(victim: dict[str, Any], **changes: Any) -> dict[str, Any]:
    claims = dict(victim["claims"])
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def resigned(
    victim: dict[str, Any], header_changes: dict[str, Any] | None = None, **claim_changes: Any
) -> str:
    header = {**victim["header"], **(header_changes or {})}
    header = {k: v for k, v in header.items() if v is not None}
    return sign_rs256(header, with_claims(victim, **claim_changes), our_key())


def public_pem() -> bytes:
    return (
        our_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _now() -> int:
    return int(time.time())


# Each attack builds a token from a genuine one (victim) and the attacker's tools.
ATTACKS: dict[str, Callable[[dict[str, Any], JwksBait], str]] = {
    "alg-none": lambda v, b: f"{encode({**v['header'], 'alg': 'none'})}.{encode(v['claims'])}.",
    "alg-None-capitalised": lambda v, b: (
        f"{encode({**v['header'], 'alg': 'None'})}.{encode(v['claims'])}."
    ),
    "alg-none-with-signature": lambda v, b: (
        f"{encode({**v['header'], 'alg': 'none'})}.{encode(v['claims'])}.{v['token'].split('.')[2]}"
    ),
    "hs256-key-confusion": lambda v, b: sign_hmac(
        {**v["header"], "alg": "HS256"}, v["claims"], public_pem()
    ),
    "hs512-key-confusion": lambda v, b: sign_hmac(
        {**v["header"], "alg": "HS512"}, v["claims"], public_pem(), hashlib.sha512
    ),
    "hs256-empty-secret": lambda v, b: sign_hmac({**v["header"], "alg": "HS256"}, v["claims"], b""),
    "ps256-substitution": lambda v, b: sign_rs256(
        {**v["header"], "alg": "PS256"},
        v["claims"],
        our_key(),
        hashes.SHA256(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
    ),
    "rs512-substitution": lambda v, b: sign_rs256(
        {**v["header"], "alg": "RS512"}, v["claims"], our_key(), hashes.SHA512()
    ),
    "unknown-kid": lambda v, b: resigned(v, {"kid": "gerion-api-gateway-key-1"}),
    "no-kid": lambda v, b: resigned(v, {"kid": None}),
    "kid-path-traversal": lambda v, b: resigned(v, {"kid": "../../../../../../dev/null"}),
    "kid-url": lambda v, b: resigned(v, {"kid": f"{b.url}/key.pem"}),
    "kid-sql": lambda v, b: resigned(v, {"kid": "' OR '1'='1"}),
    "kid-number": lambda v, b: resigned(v, {"kid": 1}),
    "dropped-retired-key": lambda v, b: sign_rs256(
        {**v["header"], "kid": "retired-2025"}, v["claims"], ATTACKER_KEY
    ),
    "jku-to-attacker-jwks": lambda v, b: sign_rs256(
        {**v["header"], "kid": "attacker", "jku": f"{b.url}/jwks.json"}, v["claims"], ATTACKER_KEY
    ),
    "x5u-to-attacker": lambda v, b: sign_rs256(
        {**v["header"], "kid": "attacker", "x5u": f"{b.url}/cert.pem"}, v["claims"], ATTACKER_KEY
    ),
    "embedded-jwk": lambda v, b: sign_rs256(
        {
            **v["header"],
            "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key())),
        },
        v["claims"],
        ATTACKER_KEY,
    ),
    "other-rsa-key-our-kid": lambda v, b: sign_rs256(v["header"], v["claims"], ATTACKER_KEY),
    "expired": lambda v, b: resigned(v, iat=_now() - 3600, nbf=_now() - 3600, exp=_now() - 1800),
    "not-yet-valid": lambda v, b: resigned(
        v, iat=_now() + 3600, nbf=_now() + 3600, exp=_now() + 5400
    ),
    "wrong-iss": lambda v, b: resigned(v, iss="https://evil.example"),
    "wrong-aud": lambda v, b: resigned(v, aud="another-service"),
    "aud-list": lambda v, b: resigned(v, aud=["gerion-api", "another-service"]),
    "wrong-typ": lambda v, b: resigned(v, {"typ": "at+jwt"}),
    "crit-header": lambda v, b: resigned(v, {"crit": ["exp"]}),
    "no-exp": lambda v, b: resigned(v, exp=None),
    "no-jti": lambda v, b: resigned(v, jti=None),
    "no-iat": lambda v, b: resigned(v, iat=None),
    "lifetime-of-a-year": lambda v, b: resigned(v, exp=v["claims"]["iat"] + 365 * 86400),
    "sub-is-another-client": lambda v, b: resigned(v, sub="someone-else"),
    "scope-escalated-after-signing": lambda v, b: (
        f"{v['token'].split('.')[0]}.{encode(with_claims(v, scope='write:findings admin'))}."
        f"{v['token'].split('.')[2]}"
    ),
    "client-id-altered-after-signing": lambda v, b: (
        f"{v['token'].split('.')[0]}.{encode(with_claims(v, client_id='other'))}."
        f"{v['token'].split('.')[2]}"
    ),
    "signature-stripped": lambda v, b: v["token"].rsplit(".", 1)[0] + ".",
    "signature-truncated": lambda v, b: v["token"][:-10],
    # Over our 4 KiB token limit but within gunicorn's header limit: the app refuses it.
    "oversized": lambda v, b: resigned(v, padding="x" * 6_000),
    "garbage": lambda v, b: "not-a-token",
    "two-parts": lambda v, b: ".".join(v["token"].split(".")[:2]),
    "four-parts": lambda v, b: v["token"] + ".extra",
    "bad-base64": lambda v, b: "eyJ!!!.eyJ???.sig",
    "header-not-json": lambda v, b: f"{b64(b'not json')}.{encode(v['claims'])}.sig",
    "claims-not-an-object": lambda v, b: sign_rs256(v["header"], ["a", "list"], our_key()),  # type: ignore[arg-type]
}


def retyped(victim: dict[str, Any], claim: str, value: Any) -> str:
    """The genuine claims, one of them replaced by a value of another type, re-signed."""
    return sign_rs256(victim["header"], {**victim["claims"], claim: value}, our_key())


def raw_claims(victim: dict[str, Any], payload: bytes) -> str:
    """Claims as given bytes (duplicate names, say), re-signed with our key."""
    signing_input = f"{encode(victim['header'])}.{b64(payload)}".encode()
    signature = our_key().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(signature)}"


# A validly signed token whose claims have the wrong type must be a 401, never a 500 (the
# probe: string iat/exp reached the lifetime arithmetic).
_TIME_VALUES: dict[str, Callable[[int], Any]] = {
    "string": str,
    "fraction": lambda t: t + 0.5,
    "whole-float": float,
    "true": lambda t: True,
    "null": lambda t: None,
    "huge": lambda t: 10**40,
    "negative": lambda t: -t,
    "nan": lambda t: float("nan"),
    "infinity": lambda t: float("inf"),
    "minus-infinity": lambda t: float("-inf"),
    "object": lambda t: {"$date": t},
    "list": lambda t: [t],
}
_TEXT_VALUES: dict[str, Any] = {
    "number": 12345,
    "true": True,
    "null": None,
    "list": ["gerion-api"],
    "object": {"value": "x"},
    "nul": "x\u0000y",
}


def _time_attack(
    claim: str, make: Callable[[int], Any]
) -> Callable[[dict[str, Any], JwksBait], str]:
    return lambda v, b: retyped(v, claim, make(v["claims"][claim]))


def _text_attack(claim: str, value: Any) -> Callable[[dict[str, Any], JwksBait], str]:
    return lambda v, b: retyped(v, claim, value)


for _claim in ("iat", "nbf", "exp"):
    for _label, _make in _TIME_VALUES.items():
        ATTACKS[f"{_claim}-{_label}"] = _time_attack(_claim, _make)
for _claim in ("iss", "aud", "sub", "client_id", "api_key_id", "scope", "jti"):
    for _label, _value in _TEXT_VALUES.items():
        ATTACKS[f"{_claim}-{_label}"] = _text_attack(_claim, _value)
ATTACKS["api-key-id-with-nul"] = lambda v, b: retyped(
    v, "api_key_id", v["claims"]["api_key_id"] + "\x00"
)
ATTACKS["duplicate-exp"] = lambda v, b: raw_claims(
    v,
    json.dumps(v["claims"]).encode()[:-1] + f', "exp": {v["claims"]["exp"]}}}'.encode(),
)
ATTACKS["claims-a-string"] = lambda v, b: raw_claims(v, b'"claims"')
ATTACKS["claims-not-utf8"] = lambda v, b: raw_claims(v, b'{"sub": "\xff\xfe"}')


def assert_refused(server, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    post = requests.post(server.url + "/api/v1/findings", json=BODY, headers=headers, timeout=10)
    get = requests.get(server.url + "/api/v1/findings", headers=headers, timeout=10)
    for response in (post, get):
        assert response.status_code == 401, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["code"] in {
            "invalid_token",
            "token_expired",
            "api_key_revoked",
            "api_key_expired",
        }
    assert not Upload.objects.exists()
    assert not Finding.objects.exists()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forged_and_tampered_tokens_are_refused(server, bait, victim, attack):
    # The genuine token works: each refusal below is the check under attack at work.
    assert (
        requests.get(
            server.url + "/api/v1/findings",
            headers={"Authorization": f"Bearer {victim['token']}"},
            timeout=10,
        ).status_code
        == 200
    )
    assert_refused(server, ATTACKS[attack](victim, bait))
    assert bait.hits == []  # jku, x5u and URL kids are never fetched


@pytest.mark.parametrize("fate", ["revoked", "deleted", "expired"])
def test_a_genuine_token_dies_with_its_key(server, victim, fate):
    key = ApiKey.objects.get(pk=victim["key"].pk)
    if fate == "revoked":
        api_key_revoke(api_key=key, actor_name="tests")
    elif fate == "deleted":
        api_key_delete(api_key=key, actor_name="tests")
    else:  # it reaches its expiry (set through the service: an edit renews the key's epoch)
        expiry = timezone.now() + timedelta(seconds=1)
        api_key_update(
            api_key=key,
            changed_by=None,
            name=key.name,
            permissions=key.permissions,
            expires_at=expiry,
            actor_name="tests",
        )
        time.sleep(max(0.0, (expiry - timezone.now()).total_seconds()) + 0.1)
    assert_refused(server, victim["token"])


def test_a_header_over_the_servers_limit_is_refused_before_the_application(server, victim):
    """SPEC "Errors": the HTTP server may refuse a header over its size limits itself."""
    token = resigned(victim, padding="x" * 20_000)
    response = requests.get(
        server.url + "/api/v1/findings", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 431
    assert not Upload.objects.exists()
