"""The one place that signs tokens and the one place that verifies them (RS256, with kid).

Signing is the JWS compact serialisation written out (a constant header per key, the claims,
one RSA signature): every token is checked by PyJWT in the tests, as verifiers elsewhere
check it. Verification is PyJWT's, with the algorithm pinned, every claim we mint required,
and only keys of our own key set accepted, looked up by `kid`; `jku`, `x5u`, `jwk` and
similar headers are never read. The key's current state (revoked, deleted, expired, rolled)
is checked by the caller (apikeys.services.principal_from_token): that needs the database.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from jwt.utils import base64url_decode, base64url_encode

from apikeys.signing_keys import KeySet, get_keyset

ALGORITHM = "RS256"
TOKEN_TYPE = "JWT"  # noqa: S105 - the JOSE "typ" header, not a secret
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]
# A token is ~800 bytes with a 3072-bit key; anything far larger is not ours.
MAX_TOKEN_LENGTH = 4096
# Seconds of clock difference tolerated between our machines for nbf and exp.
LEEWAY_SECONDS = 5
# What each claim we mint must be: text without control characters, or whole seconds since
# the epoch (up to 9999-12-31). Anything else was not minted here.
TEXT_CLAIMS = ("iss", "aud", "sub", "client_id", "api_key_id", "scope", "jti")
TIME_CLAIMS = ("iat", "nbf", "exp")
MAX_TEXT_CLAIM_LENGTH = 255
MAX_TIMESTAMP = 253402300799


class TokenRejected(Exception):
    """The token is not one of ours, or no longer valid. `code` is the problem code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class MintedToken:
    token: str
    claims: dict[str, Any]
    expires_in: int
    kid: str


def mint_token(
    *,
    client_id: str,
    api_key_id: str,
    scopes: list[str],
    now: float | None = None,
    keyset: KeySet | None = None,
) -> MintedToken:
    keyset = keyset or get_keyset()
    issued_at = int(now if now is not None else time.time())
    lifetime = settings.GERION_JWT_LIFETIME_SECONDS
    claims: dict[str, Any] = {
        "iss": settings.GERION_JWT_ISSUER,
        "aud": settings.GERION_JWT_AUDIENCE,
        "sub": client_id,
        "client_id": client_id,
        "api_key_id": api_key_id,
        "scope": " ".join(sorted(scopes)),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": uuid.uuid4().hex,
    }
    active = keyset.active
    # RFC 7515 compact serialisation, RS256 (RFC 7518 3.3: RSASSA-PKCS1-v1_5 with SHA-256):
    # what PyJWT's encode does, without building the constant header again for every token.
    signing_input = _header_segment(active.kid) + b"." + _b64url(orjson.dumps(claims))
    signature = active.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    token = (signing_input + b"." + _b64url(signature)).decode("ascii")
    return MintedToken(token=token, claims=claims, expires_in=lifetime, kid=active.kid)


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=16)
def _header_segment(kid: str) -> bytes:
    """The protected header of every token signed with `kid`, encoded once."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}
    return _b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))


# Compact JWS: three unpadded base64url segments. Checked in one compiled pass, before any
# decoding.
_BASE64URL = "[A-Za-z0-9_-]"
_COMPACT_RE = re.compile(rf"{_BASE64URL}+\.{_BASE64URL}+\.{_BASE64URL}+")
_SEGMENT_RE = re.compile(rf"{_BASE64URL}*".encode())


class _Jws(jwt.PyJWS):
    """PyJWT's JWS decoding with its segment check done by one compiled expression. PyJWT
    2.15 checks each segment's alphabet with a Python loop over every character (against
    GHSA-hxm8-2xgr-2p9m), about 0.1 ms of a token of ours, half of its verification, on every
    findings request. This check accepts a subset of what PyJWT's accepts (no `=` padding,
    which _COMPACT_RE refuses anyway) and decodes the same way (tests/apikeys/test_tokens.py
    compares the two)."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        if len(segment) % 4 == 1 or not _SEGMENT_RE.fullmatch(segment):
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64url_decode(segment)
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err
        if base64url_encode(decoded) != segment:  # canonical only: no stray trailing bits
            raise jwt.DecodeError(f"Invalid {name} padding")
        return decoded


class _Jwt(jwt.PyJWT):
    """PyJWT's decoder (claims, signature, algorithms: all its own) over _Jws."""

    def __init__(self) -> None:
        super().__init__()
        self._jws = _Jws()


_decoder = _Jwt()


def _header_of(token: str) -> dict[str, Any]:
    """The token's protected header, read once; TokenRejected if it is not a JSON object."""
    segment = token[: token.index(".")]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise TokenRejected("invalid_token", "The token is malformed.") from exc
    if not isinstance(header, dict):
        raise TokenRejected("invalid_token", "The token is malformed.")
    return header


def verify_token(token: str, *, keyset: KeySet | None = None) -> dict[str, Any]:
    """The claims of a token we signed that is valid now; TokenRejected otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not _COMPACT_RE.fullmatch(token):
        raise TokenRejected("invalid_token", "The token is malformed.")
    header = _header_of(token)
    if header.get("alg") != ALGORITHM:
        raise TokenRejected("invalid_token", "The token's algorithm is not accepted.")
    if header.get("typ") != TOKEN_TYPE:
        raise TokenRejected("invalid_token", "The token's type is not accepted.")
    if "crit" in header:  # RFC 7515 4.1.11: we understand no extensions
        raise TokenRejected("invalid_token", "The token uses unsupported critical headers.")
    kid = header.get("kid")
    keyset = keyset or get_keyset()
    key = keyset.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenRejected("invalid_token", "The token was not signed by a key we publish.")
    # Before PyJWT and the lifetime arithmetic below use them (a string `iat` was a 500).
    _check_claims(_unverified_claims(token))
    try:
        claims: dict[str, Any] = _decoder.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=settings.GERION_JWT_AUDIENCE,
            issuer=settings.GERION_JWT_ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected("token_expired", "The token has expired; authenticate again.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenRejected("invalid_token", "The token is not valid yet.") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected("invalid_token", "The token is invalid.") from exc
    # We only ever mint tokens of exactly this lifetime; anything else was not minted here.
    lifetime = settings.GERION_JWT_LIFETIME_SECONDS
    if claims["exp"] - claims["iat"] != lifetime or claims["nbf"] != claims["iat"]:
        raise TokenRejected("invalid_token", "The token's lifetime is not one we issue.")
    if claims["sub"] != claims["client_id"]:
        raise TokenRejected("invalid_token", "The token's subject is inconsistent.")
    return claims


def unverified_api_key_id(token: str) -> str | None:
    """The `api_key_id` claim as the token says it, signature unchecked, or None: only a hint,
    to start reading the key's state while the token is verified (the verified claims decide
    which key's state is used)."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        claims = orjson.loads(base64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    value = claims.get("api_key_id") if isinstance(claims, dict) else None
    return value if isinstance(value, str) else None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):  # RFC 7519 section 4: we reject, not pick the last
        raise ValueError("duplicate claim names")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json would accept them


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload as strict JSON (one object, unique names, no NaN), signature unchecked."""
    try:
        claims = json.loads(
            base64url_decode(token.split(".")[1]),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise TokenRejected("invalid_token", "The token is malformed.") from exc
    if not isinstance(claims, dict):
        raise TokenRejected("invalid_token", "The token is malformed.")
    return claims


def _check_claims(claims: dict[str, Any]) -> None:
    for name in TEXT_CLAIMS:
        value = claims.get(name)
        if not (
            isinstance(value, str)
            and 0 < len(value) <= MAX_TEXT_CLAIM_LENGTH
            and value.isprintable()
        ):
            raise TokenRejected(
                "invalid_token", f"The token's {name} claim is missing or malformed."
            )
    for name in TIME_CLAIMS:
        value = claims.get(name)
        # bool is an int in Python; a float is not a time we mint.
        if type(value) is not int or not 0 < value <= MAX_TIMESTAMP:
            raise TokenRejected(
                "invalid_token", f"The token's {name} claim is missing or malformed."
            )
