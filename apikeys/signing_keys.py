"""RS256 signing keys: the active key, the retired keys still published, and the JWKS.

Every process and machine must sign with the same configured key (GERION_JWT_SIGNING_KEY) and
publish the same set (plus GERION_JWT_RETIRED_KEYS). With nothing configured, a development
key is created once under GERION_DATA_DIR and shared by every process of that machine.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from gerion.files import create_once

MIN_KEY_BITS = 2048
DEFAULT_KEY_BITS = 3072
DEV_KEY_BITS = 2048  # fast to generate on first start; production keys are made with the command


class SigningKeyError(Exception):
    """A configured key cannot be used; the message says which file and why."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def rfc7638_thumbprint(n: str, e: str) -> str:
    """The JWK thumbprint (RFC 7638 section 3): SHA-256 over the required members, sorted and
    without whitespace, base64url. Stable for a key and distinct between keys."""
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    path: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    public_jwk: dict[str, str]
    # Derived once: every token check verifies with it.
    public_key: rsa.RSAPublicKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_key", self.private_key.public_key())

    @property
    def bits(self) -> int:
        return self.private_key.key_size


def load_signing_key(path: str | Path) -> SigningKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError(f"{path} is not an RSA key (RS256 needs RSA)")
    if key.key_size < MIN_KEY_BITS:
        raise SigningKeyError(f"{path} has {key.key_size} bits; at least {MIN_KEY_BITS} needed")
    numbers = key.public_key().public_numbers()
    n, e = _b64url_uint(numbers.n), _b64url_uint(numbers.e)
    kid = rfc7638_thumbprint(n, e)
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}
    return SigningKey(path=str(path), private_key=key, kid=kid, public_jwk=jwk)


@dataclass(frozen=True)
class KeySet:
    active: SigningKey
    retired: tuple[SigningKey, ...]
    # Built once per key set: the JWKS view serves it without converting PEM again.
    jwks: dict[str, Any] = field(init=False, repr=False)
    _by_kid: dict[str, SigningKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, SigningKey] = {}
        for key in (self.active, *self.retired):
            by_kid.setdefault(key.kid, key)
        object.__setattr__(self, "_by_kid", by_kid)
        object.__setattr__(self, "jwks", {"keys": [k.public_jwk for k in by_kid.values()]})

    def verification_key(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)


def generate_private_key_pem(bits: int = DEFAULT_KEY_BITS) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def development_key_path() -> Path:
    """The embedded run's key: created on first use, then the same for every process."""
    path = Path(settings.GERION_JWT_DEV_KEY_PATH)
    if not path.exists():
        create_once(path, generate_private_key_pem(DEV_KEY_BITS))
    return path


def active_key_path() -> str:
    return settings.GERION_JWT_SIGNING_KEY or str(development_key_path())


@functools.lru_cache(maxsize=8)
def _load_keyset(active_path: str, retired_paths: tuple[str, ...]) -> KeySet:
    return KeySet(
        active=load_signing_key(active_path),
        retired=tuple(load_signing_key(p) for p in retired_paths),
    )


_current: KeySet | None = None


def get_keyset() -> KeySet:
    """The configured key set, loaded once per process per configuration. Rotating keys is a
    configuration change followed by a (graceful) restart, as with any secret. Every token
    minted or checked asks for it, so it is kept at hand rather than looked up again."""
    global _current
    keyset = _current
    if keyset is None:
        keyset = _current = _load_keyset(active_key_path(), tuple(settings.GERION_JWT_RETIRED_KEYS))
    return keyset


@receiver(setting_changed)
def _forget_keyset(*, setting: str, **kwargs: Any) -> None:
    """Tests (and anything else that changes settings at run time) get the new key set."""
    global _current
    if setting.startswith("GERION_JWT_"):
        _current = None
