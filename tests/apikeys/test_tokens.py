"""Signing and verification: RS256 pinned, our keys only, every claim checked; rotation."""

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from apikeys.signing_keys import (
    SigningKeyError,
    generate_private_key_pem,
    get_keyset,
    load_signing_key,
    rfc7638_thumbprint,
)
from apikeys.tokens import TokenRejected, mint_token, verify_token


def _mint(**overrides):
    kwargs = {"client_id": "ci-1", "api_key_id": "key-abcdefghijkl", "scopes": ["read:findings"]}
    kwargs.update(overrides)
    return mint_token(**kwargs)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _sign_rs256(header: dict, claims: dict, key: rsa.RSAPrivateKey) -> str:
    """A JWS built by hand, so that headers PyJWT would refuse to write can be tested."""
    signing_input = f"{_b64(header)}.{_b64(claims)}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    paths = []
    for name in ("a", "b"):
        path = directory / f"{name}.pem"
        path.write_bytes(generate_private_key_pem(2048))
        paths.append(str(path))
    return paths


def test_a_minted_token_verifies():
    minted = _mint()
    claims = verify_token(minted.token)
    assert claims["client_id"] == "ci-1"
    assert claims["scope"] == "read:findings"


def test_kid_is_the_rfc7638_thumbprint():
    # RFC 7638 section 3.1's example key and its published thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    assert rfc7638_thumbprint(n, "AQAB") == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_verification_refuses_alg_none():
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    header = {"alg": "none", "typ": "JWT", "kid": get_keyset().active.kid}
    forged = f"{_b64(header)}.{_b64(claims)}."
    with pytest.raises(TokenRejected):
        verify_token(forged)


def test_verification_refuses_hs256_signed_with_our_public_key():
    public_pem = get_keyset().active.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "JWT", "kid": get_keyset().active.kid}
    signing_input = f"{_b64(header)}.{_b64(claims)}".encode()
    import hashlib
    import hmac

    signature = (
        base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(TokenRejected):
        verify_token(f"{signing_input.decode()}.{signature}")


def test_verification_refuses_another_rsa_key_even_with_our_kid():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    forged = jwt.encode(
        claims, other, algorithm="RS256", headers={"kid": get_keyset().active.kid, "typ": "JWT"}
    )
    with pytest.raises(TokenRejected):
        verify_token(forged)


def test_verification_refuses_an_altered_payload():
    header, payload, signature = _mint().token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "read:findings write:findings"
    with pytest.raises(TokenRejected):
        verify_token(f"{header}.{_b64(claims)}.{signature}")


@pytest.mark.parametrize(
    ("claim", "value", "code"),
    [
        ("exp", int(time.time()) - 60, "token_expired"),
        ("nbf", int(time.time()) + 3600, "invalid_token"),
        ("iss", "https://evil.example", "invalid_token"),
        ("aud", "another-service", "invalid_token"),
        ("exp", None, "invalid_token"),
        ("jti", None, "invalid_token"),
        ("sub", "someone-else", "invalid_token"),
        ("api_key_id", None, "invalid_token"),
        ("exp", int(time.time()) + 10**9, "invalid_token"),
        ("aud", ["gerion-api", "other"], "invalid_token"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-iss",
        "wrong-aud",
        "no-exp",
        "no-jti",
        "sub-mismatch",
        "no-api-key-id",
        "lifetime-too-long",
        "aud-list",
    ],
)
def test_verification_checks_every_claim(claim, value, code):
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    if value is None:
        del claims[claim]
    else:
        claims[claim] = value
    active = get_keyset().active
    token = jwt.encode(
        claims, active.private_key, algorithm="RS256", headers={"kid": active.kid, "typ": "JWT"}
    )
    with pytest.raises(TokenRejected) as excinfo:
        verify_token(token)
    assert excinfo.value.code == code


@pytest.mark.parametrize(
    "headers",
    [
        {"kid": "unknown-kid", "typ": "JWT"},
        {"kid": "../../etc/passwd", "typ": "JWT"},
        {"kid": "https://evil.example/key.pem", "typ": "JWT"},
        {"typ": "JWT"},
        {"kid": None, "typ": "JWT"},
        {"typ": "at+jwt", "kid": "ACTIVE"},
        {"typ": "JWT", "kid": "ACTIVE", "crit": ["exp"]},
    ],
    ids=["unknown-kid", "path-kid", "url-kid", "no-kid", "null-kid", "wrong-typ", "crit"],
)
def test_verification_refuses_foreign_headers(headers):
    active = get_keyset().active
    header = {
        "alg": "RS256",
        **{k: (active.kid if v == "ACTIVE" else v) for k, v in headers.items()},
    }
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    token = _sign_rs256(header, claims, active.private_key)
    # The control: the same claims under our own header do verify.
    assert verify_token(
        _sign_rs256({"alg": "RS256", "typ": "JWT", "kid": active.kid}, claims, active.private_key)
    )
    with pytest.raises(TokenRejected):
        verify_token(token)


def test_jku_and_x5u_headers_are_never_fetched(monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the verifier tried to fetch a URL from the token")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    active = get_keyset().active
    claims = jwt.decode(_mint().token, options={"verify_signature": False})
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims,
        attacker,
        algorithm="RS256",
        headers={
            "kid": active.kid,
            "typ": "JWT",
            "jku": "https://evil.example/jwks",
            "x5u": "https://evil.example/cert",
        },
    )
    with pytest.raises(TokenRejected):
        verify_token(token)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "a.b.c.d", "x" * 5000, "eyJhbGciOiJSUzI1NiJ9.e30.sig"],
    ids=["empty", "word", "two-parts", "junk", "four-parts", "oversized", "no-typ"],
)
def test_malformed_tokens_are_refused(token):
    with pytest.raises(TokenRejected):
        verify_token(token)


@pytest.mark.parametrize(
    "segment",
    [
        b"", b"e30", b"eyJhIjoxfQ", b"a", b"ab", b"abc", b"abcd", b"abcde", b"ab-_", b"-_-_-",
        b"!!!!", b"ab!d", b"ab+/", b"ab==", b"abc=", b"a===", b"ab cd", b"ab\ncd", b"ab.cd",
        b"\xc3\xa9abc", b"ab\x00c", b"A" * 641, b"B" * 640, base64.urlsafe_b64encode(b"x" * 255),
    ],
)  # fmt: skip
def test_token_segments_are_decoded_as_pyjwt_decodes_them(segment):
    """Verification decodes the three segments with one compiled check instead of PyJWT's
    loop over each character (apikeys.tokens._Jws): the same bytes, and refused whenever
    PyJWT refuses (also refused: the `=` padding PyJWT tolerates and our tokens never have)."""
    from apikeys.tokens import _Jws

    try:
        expected: bytes | None = jwt.PyJWS._decode_base64url_segment(segment, "payload")
    except jwt.DecodeError:
        expected = None
    try:
        ours: bytes | None = _Jws._decode_base64url_segment(segment, "payload")
    except jwt.DecodeError:
        ours = None
    if b"=" in segment:
        assert ours is None
    else:
        assert ours == expected


def test_verification_uses_the_compiled_segment_check():
    """PyJWT's own per-character check costs half a verification: a PyJWT release that moved
    it would make every findings request slower unnoticed."""
    from apikeys.tokens import _decoder, _Jws

    assert type(_decoder._jws) is _Jws
    assert "_decode_base64url_segment" in vars(jwt.PyJWS)


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(settings, pem_files):
    old, new = pem_files
    settings.GERION_JWT_SIGNING_KEY = old
    settings.GERION_JWT_RETIRED_KEYS = []
    old_token = _mint().token
    old_kid = load_signing_key(old).kid

    settings.GERION_JWT_SIGNING_KEY = new
    settings.GERION_JWT_RETIRED_KEYS = [old]
    new_token = _mint().token
    assert jwt.get_unverified_header(new_token)["kid"] == load_signing_key(new).kid
    assert verify_token(old_token)["client_id"] == "ci-1"
    assert verify_token(new_token)["client_id"] == "ci-1"
    assert {k["kid"] for k in get_keyset().jwks["keys"]} == {old_kid, load_signing_key(new).kid}

    # Once the old key is dropped from the configuration, its tokens are refused.
    settings.GERION_JWT_RETIRED_KEYS = []
    with pytest.raises(TokenRejected):
        verify_token(old_token)


def test_unusable_key_files_are_refused(tmp_path):
    weak = tmp_path / "weak.pem"
    weak.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for path, message in [
        (weak, "1024 bits"),
        (ec_key, "not an RSA key"),
        (garbage, "not an unencrypted PEM"),
        (tmp_path / "missing.pem", "cannot read"),
    ]:
        with pytest.raises(SigningKeyError, match=message):
            load_signing_key(path)
