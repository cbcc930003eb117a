"""Benchmark: token minting and the whole authenticate request against the hardware reference,
raw RSA signing with the same key; token checking on the findings API against raw RSA
verification.

    python bench/auth.py [--seconds 3]

In process, against PostgreSQL (BENCH_DATABASE_URL, default gerion_bench) and Redis db 14.
Prints operations per second (medians of 5 rounds) and the ratios to the raw operation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import configure, ensure_database, wsgi_request

_KEY = Path(tempfile.mkdtemp(prefix="gerion-bench-")) / "jwt.pem"
configure(
    REDIS_URL="redis://127.0.0.1:6379/14",
    GERION_AUTH_BURST="100000000",  # measure the work, not the limiter
    GERION_JWT_SIGNING_KEY=str(_KEY),
)


def rate(operation: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Median operations per second over `rounds` rounds of about `seconds / rounds` each."""
    results = []
    for _ in range(rounds):
        count, started = 0, time.perf_counter()
        deadline = started + seconds / rounds
        while True:
            operation()
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        results.append(count / (now - started))
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()

    from apikeys.signing_keys import generate_private_key_pem

    _KEY.write_bytes(generate_private_key_pem(3072))  # what generatesigningkey makes
    _KEY.chmod(0o600)
    ensure_database()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from apikeys.services import api_key_create, principal_from_token
    from apikeys.signing_keys import get_keyset
    from apikeys.tokens import mint_token, verify_token
    from gerion.wsgi import application

    key = get_keyset().active
    tag = f"{os.getpid()}-{int(time.time())}"
    api_key, plaintext = api_key_create(
        name="bench",
        client_id=f"bench-auth-{tag}",
        permissions=["read:findings"],
        actor_name="bench/auth.py",
    )
    payload = b'{"client_id": "%s"}' % api_key.client_id.encode()
    sample = b"x" * 700  # about the signing input of one of our tokens
    signature = key.private_key.sign(sample, padding.PKCS1v15(), hashes.SHA256())
    token = mint_token(
        client_id=api_key.client_id, api_key_id=api_key.api_key_id, scopes=["read:findings"]
    ).token

    def authenticate() -> int:
        return wsgi_request(
            application, "POST", "/api/v1/auth/m2m/authenticate", payload, {"X-API-Key": plaintext}
        )[0]

    assert authenticate() == 200

    raw_sign = rate(
        lambda: key.private_key.sign(sample, padding.PKCS1v15(), hashes.SHA256()), args.seconds
    )
    mint = rate(
        lambda: mint_token(
            client_id=api_key.client_id, api_key_id=api_key.api_key_id, scopes=["read:findings"]
        ),
        args.seconds,
    )
    endpoint = rate(authenticate, args.seconds)
    raw_verify = rate(
        lambda: key.public_key.verify(signature, sample, padding.PKCS1v15(), hashes.SHA256()),
        args.seconds,
    )
    verify = rate(lambda: verify_token(token), args.seconds)
    principal = rate(lambda: principal_from_token(token=token), args.seconds)

    print(f"signing key: RSA-{key.bits}; {args.seconds:.0f} s per figure, medians of 5 rounds")
    print(f"raw RSA sign (reference)      {raw_sign:9,.0f} /s")
    print(f"mint_token                    {mint:9,.0f} /s   ratio {mint / raw_sign:5.2f}")
    print(f"POST authenticate (WSGI)      {endpoint:9,.0f} /s   ratio {endpoint / raw_sign:5.2f}")
    print(f"raw RSA verify (reference)    {raw_verify:9,.0f} /s")
    print(f"verify_token                  {verify:9,.0f} /s   ratio {verify / raw_verify:5.2f}")
    print(
        f"token + key state (1 query)   {principal:9,.0f} /s   ratio {principal / raw_verify:5.2f}"
    )


if __name__ == "__main__":
    main()
