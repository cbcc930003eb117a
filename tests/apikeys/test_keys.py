"""The key format: recognisable, high-entropy, checkable offline."""

import math

import pytest

from apikeys.keys import KEY_RE, generate_key, hash_key, key_matches, parse_key


def test_generated_keys_carry_the_prefix_and_parse_back():
    key = generate_key()
    assert key.plaintext.startswith(f"gerion_{key.lookup_id}_")
    assert KEY_RE.match(key.plaintext)
    assert parse_key(key.plaintext) == key


def test_secret_part_has_at_least_128_bits_of_entropy():
    secrets_seen = [generate_key().plaintext.split("_")[2][:32] for _ in range(2000)]
    assert len(set(secrets_seen)) == 2000
    # 32 positions, each drawn from all 62 symbols: 32 * log2(62) = 190 bits.
    for position in (0, 15, 31):
        assert len({s[position] for s in secrets_seen}) == 62
    assert all(len(s) == 32 for s in secrets_seen)
    assert 32 * math.log2(62) >= 128


def _flip(text: str, index: int) -> str:
    swapped = "A" if text[index] != "A" else "B"
    return text[:index] + swapped + text[index + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1],
        lambda k: k + "x",
        lambda k: k.replace("gerion_", "gerlon_"),
        lambda k: _flip(k, 30),  # one secret character: the checksum no longer matches
        lambda k: _flip(k, len(k) - 1),  # the checksum itself
        lambda k: k.upper(),
        lambda k: k.replace("_", "-"),
        lambda k: " " + k[1:],
        lambda k: "",
    ],
    ids=[
        "short",
        "long",
        "prefix",
        "secret-typo",
        "checksum-typo",
        "upper",
        "dashes",
        "space",
        "empty",
    ],
)
def test_malformed_keys_are_rejected_before_any_hashing_or_query(mangle):
    assert parse_key(mangle(generate_key().plaintext)) is None


def test_only_a_sha256_digest_is_compared_in_constant_time():
    key = generate_key()
    digest = hash_key(key.plaintext)
    assert len(digest) == 64
    assert key.plaintext not in digest
    assert key_matches(key.plaintext, digest)
    assert not key_matches(generate_key().plaintext, digest)
