"""The API key format: `gerion_<lookup>_<secret><checksum>`.

- `gerion_` is a fixed, recognisable prefix so that secret scanners (GitHub, gitleaks,
  trufflehog) can find leaked keys.
- `<lookup>` (12 of [a-z0-9]) is public: it finds the row without a table scan and names the
  key (`api_key_id` is `key-<lookup>`).
- `<secret>` (32 of [A-Za-z0-9], ~190 bits) is never stored; only SHA-256 of the whole key is.
  A fast hash is right for high-entropy random secrets (a password hasher would cost ~0.4 s a
  check for no gain), and the digest is compared in constant time.
- `<checksum>` (6 base62 of CRC32) lets a scanner or our format check reject typos and random
  strings offline, before any hashing or query.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass

PREFIX = "gerion"
LOOKUP_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + 1 + LOOKUP_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_RE = re.compile(
    rf"^{PREFIX}_([a-z0-9]{{{LOOKUP_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}})$"
)


@dataclass(frozen=True)
class ParsedKey:
    lookup_id: str
    plaintext: str


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key() -> ParsedKey:
    """A fresh random key. The caller stores `hash_key(plaintext)` and shows the plaintext once."""
    lookup = "".join(secrets.choice(_LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))
    secret = "".join(secrets.choice(_BASE62) for _ in range(SECRET_LENGTH))
    body = f"{PREFIX}_{lookup}_{secret}"
    return ParsedKey(lookup_id=lookup, plaintext=body + _checksum(body))


def parse_key(raw: str) -> ParsedKey | None:
    """The key if `raw` is well-formed (length, alphabet, checksum), else None. No I/O."""
    if len(raw) != KEY_LENGTH:
        return None
    match = KEY_RE.match(raw)
    if match is None:
        return None
    body, checksum = raw[:-CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return ParsedKey(lookup_id=match.group(1), plaintext=raw)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("ascii")).hexdigest()


def key_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)


API_KEY_ID_PREFIX = "key-"
_LOOKUP_RE = re.compile(rf"[a-z0-9]{{{LOOKUP_LENGTH}}}")


def api_key_id_for(lookup_id: str) -> str:
    return API_KEY_ID_PREFIX + lookup_id


def lookup_id_from_api_key_id(api_key_id: str) -> str | None:
    lookup_id = api_key_id.removeprefix(API_KEY_ID_PREFIX)
    if lookup_id != api_key_id and _LOOKUP_RE.fullmatch(lookup_id):
        return lookup_id
    return None
