"""Benchmark: the authenticate request, in process and over HTTP against gunicorn, and the token
check of every findings request, each against its hardware reference measured in the same run:
a raw RSA signature (verification) with the same key.

    python bench/auth.py [--seconds 3] [--workers 3] [--bits 2048,3072]

PostgreSQL: BENCH_DATABASE_URL (default gerion_bench); Redis: BENCH_REDIS_URL (default db 14).
gunicorn runs the repository's gunicorn.conf.py (gerion.workers.ThreadWorker) with --workers
workers; a minimal client sends requests one after another on a keep-alive connection. Logs are
on at INFO, production's default, written to /dev/null (in process) or a file (gunicorn). Each
figure is measured in rounds alternating with its reference; printed: operations per second
(medians of 5 rounds) and the median ratio; then, for the first key size, where an authenticate
request's time goes. Token checks run after the key authenticated in this process, so its state
is kept, as in a worker that served it in the last 10 s (confirmed by its epoch in Redis, a GET
that overlaps the verification); the second token-check line forgets it first (its state is
then read from PostgreSQL too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import configure, ensure_database, start_gunicorn, wsgi_request

configure(
    redis=True,
    GERION_AUTH_BURST="100000000",  # measure the work, not the limiter
    GERION_LOG_LEVEL="INFO",
)
WORKDIR = Path(tempfile.mkdtemp(prefix="gerion-bench-auth-"))
AUTHENTICATE = "/api/v1/auth/m2m/authenticate"


def _round(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second over about `seconds`."""
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        operation()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def rate(operation: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Median operations per second over `rounds` rounds of about `seconds / rounds` each."""
    for _ in range(20):
        operation()
    return statistics.median(_round(operation, seconds / rounds) for _ in range(rounds))


@dataclass(frozen=True)
class Paired:
    """An operation and its reference, measured in alternating rounds so that a machine
    busy with something else slows both alike; the ratio is the median of the rounds'."""

    reference: float
    operation: float
    ratio: float


def paired(
    reference: Callable[[], object],
    operation: Callable[[], object],
    seconds: float,
    rounds: int = 5,
) -> Paired:
    for _ in range(20):
        reference()
        operation()
    references, operations = [], []
    for _ in range(rounds):
        references.append(_round(reference, seconds / rounds / 2))
        operations.append(_round(operation, seconds / rounds / 2))
    return Paired(
        reference=statistics.median(references),
        operation=statistics.median(operations),
        ratio=statistics.median(o / r for o, r in zip(operations, references, strict=True)),
    )


@dataclass
class Figures:
    bits: int
    mint: Paired  # each against a raw signature
    authenticate: Paired
    authenticate_http: Paired
    verify: Paired  # each against a raw verification
    token_check: Paired  # the key's state kept by the worker, confirmed by its epoch
    token_check_read: Paired  # not kept: read from the database (1 SELECT), then kept
    # Where one authenticate request's time goes (ms, medians), for the first key size.
    parts: dict[str, float] = field(default_factory=dict)


def measure(bits: int, seconds: float, workers: int, *, parts: bool) -> Figures:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from django.test.utils import override_settings

    from apikeys.services import api_key_create, principal_from_token
    from apikeys.signing_keys import generate_private_key_pem, get_keyset
    from apikeys.state_cache import get_key_state_cache
    from apikeys.tokens import mint_token, verify_token
    from gerion.wsgi import application

    key_path = WORKDIR / f"jwt-{bits}.pem"
    key_path.write_bytes(generate_private_key_pem(bits))
    key_path.chmod(0o600)
    with override_settings(GERION_JWT_SIGNING_KEY=str(key_path)):
        key = get_keyset().active
        api_key, plaintext = api_key_create(
            name="bench",
            client_id=f"bench-auth-{os.getpid()}-{int(time.time())}-{bits}",
            permissions=["read:findings"],
            actor_name="bench/auth.py",
        )
        body = json.dumps({"client_id": api_key.client_id}).encode()
        sample = b"x" * 700  # about the signing input of one of our tokens
        signature = key.private_key.sign(sample, padding.PKCS1v15(), hashes.SHA256())
        token = mint_token(
            client_id=api_key.client_id, api_key_id=api_key.api_key_id, scopes=["read:findings"]
        ).token

        def raw_sign() -> None:
            key.private_key.sign(sample, padding.PKCS1v15(), hashes.SHA256())

        def raw_verify() -> None:
            key.public_key.verify(signature, sample, padding.PKCS1v15(), hashes.SHA256())

        def mint() -> None:
            mint_token(
                client_id=api_key.client_id,
                api_key_id=api_key.api_key_id,
                scopes=["read:findings"],
            )

        def check_not_kept() -> None:
            # What a worker that has not kept the key (or kept it 10 s ago) does.
            get_key_state_cache().forget(api_key.lookup_id)
            principal_from_token(token=token)

        def authenticate() -> None:
            status, content = wsgi_request(
                application, "POST", AUTHENTICATE, body, {"X-API-Key": plaintext}
            )
            assert status == 200, content

        figures = Figures(
            bits=bits,
            mint=paired(raw_sign, mint, seconds),
            authenticate=paired(raw_sign, authenticate, seconds),
            authenticate_http=authenticate_over_http(
                key_path, workers, body, plaintext, raw_sign, seconds
            ),
            verify=paired(raw_verify, lambda: verify_token(token), seconds),
            token_check=paired(raw_verify, lambda: principal_from_token(token=token), seconds),
            token_check_read=paired(raw_verify, check_not_kept, seconds),
        )
        if parts:
            figures.parts = trace(authenticate, raw_sign, rounds=300)
    return figures


def trace(
    authenticate: Callable[[], None], raw_sign: Callable[[], None], rounds: int
) -> dict[str, float]:
    """Time the stages of real authenticate requests (wrappers around the functions that
    do each stage, ~1 µs each), medians in ms of each stage's time per request; the signature
    alone is timed beside them."""
    from rest_framework.views import APIView

    import apikeys.services
    import apikeys.views
    from apikeys.ratelimit import get_bucket
    from apikeys.state_cache import KeyStateCache

    spent: dict[str, list[float]] = defaultdict(list)
    this_request: dict[str, float] = defaultdict(float)

    def timed(
        stage: str, function: Callable[..., Any], *, returns_finish: bool = False
    ) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            finally:
                this_request[stage] += time.perf_counter() - started
            # start_take sends; the function it returns waits for the answer: both count.
            return timed(stage, result) if returns_finish else result

        return wrapper

    bucket = get_bucket()
    stages = [
        (apikeys.services, "api_key_state", "key state"),
        (KeyStateCache, "kept", "key state"),
        (KeyStateCache, "current_epoch", "key state"),
        (apikeys.services, "mint_token", "token"),
        (apikeys.views, "m2m_authenticate", "service"),
        (APIView, "dispatch", "view"),
        (bucket, "start_take", "bucket"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in stages]
    try:
        for owner, name, stage in stages:
            wrapped = timed(stage, getattr(owner, name), returns_finish=name == "start_take")
            setattr(owner, name, wrapped)
        for _ in range(rounds):
            this_request.clear()
            started = time.perf_counter()
            authenticate()
            spent["request"].append(time.perf_counter() - started)
            for stage in {stage for _, _, stage in stages}:
                spent[stage].append(this_request[stage])
    finally:
        for owner, name, original in originals:
            if owner is bucket:
                delattr(owner, name)  # back to the class's method
            else:
                setattr(owner, name, original)
    for _ in range(rounds):
        started = time.perf_counter()
        raw_sign()
        spent["signature"].append(time.perf_counter() - started)
    return {stage: statistics.median(times) * 1000 for stage, times in spent.items()}


def authenticate_over_http(
    key_path: Path,
    workers: int,
    body: bytes,
    plaintext: str,
    raw_sign: Callable[[], object],
    seconds: float,
) -> Paired:
    log = WORKDIR / f"gunicorn-{key_path.stem}.log"
    server = start_gunicorn(workers, key_path, log)
    try:
        address = urlsplit(server.url)
        request = (
            f"POST {AUTHENTICATE} HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"X-API-Key: {plaintext}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        call = keep_alive_client(address, request)
        # The other workers are still importing Django for a second or so after the first
        # answers; measured meanwhile, they would compete for the CPU.
        _round(call, 2.0)
        return paired(raw_sign, call, seconds)
    finally:
        server.stop()


def keep_alive_client(address: SplitResult, request: bytes) -> Callable[[], None]:
    """Sends `request` on one keep-alive connection and reads the whole answer: a minimal
    HTTP/1.1 client, so that the figure is the server's (http.client parses headers with
    the email package and would add ~0.15 ms a request)."""
    connection = socket.create_connection((address.hostname or "", address.port or 80))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = b""

    def call() -> None:
        nonlocal pending
        connection.sendall(request)
        while b"\r\n\r\n" not in pending:
            pending += connection.recv(65536)
        head, _, rest = pending.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += connection.recv(65536)
        pending = rest[length:]

    return call


def ms(per_second: float) -> float:
    return 1000 / per_second if per_second else 0.0


def report(all_figures: list[Figures], seconds: float, workers: int) -> None:
    print(
        f"auth bench: {seconds:g} s per figure, alternating with its reference, medians of 5 "
        f"rounds; PostgreSQL and Redis on this machine; gunicorn.conf.py with {workers} "
        "workers, one minimal keep-alive client; logs at INFO"
    )
    print(f"{'':32}{'key':10}{'per second':>11}{'per call':>13}{'ratio':>8}")

    def rows(label: str, pick: Callable[[Figures], Paired], reference: bool = False) -> None:
        for index, figures in enumerate(all_figures):
            pair = pick(figures)
            value = pair.reference if reference else pair.operation
            ratio = "" if reference else f"{pair.ratio:8.2f}"
            print(
                f"{label if index == 0 else '':32}RSA-{figures.bits:<6}{value:11,.0f}"
                f"{ms(value):10.3f} ms{ratio}"
            )

    rows("raw RSA sign (reference)", lambda f: f.authenticate, reference=True)
    rows("mint_token", lambda f: f.mint)
    rows("POST authenticate, in process", lambda f: f.authenticate)
    rows("POST authenticate, over HTTP", lambda f: f.authenticate_http)
    rows("raw RSA verify (reference)", lambda f: f.token_check, reference=True)
    rows("verify_token", lambda f: f.verify)
    rows("token + key state (kept)", lambda f: f.token_check)
    rows("token + key state (1 SELECT)", lambda f: f.token_check_read)

    first = all_figures[0]
    part = first.parts
    http_total = ms(first.authenticate_http.operation)
    print(
        f"\nwhere an authenticate request's time goes (RSA-{first.bits}; stages timed inside "
        "300 requests, medians):"
    )
    for label, value in [
        ("RSA signature", part["signature"]),
        ("claims, JSON and base64 around it", part["token"] - part["signature"]),
        ("key state (kept by the worker)", part["key state"]),
        ("Redis bucket+epoch, not hidden by signing", part["bucket"]),
        (
            "rest of the service (parse, hash, checks)",
            part["service"] - part["token"] - part["key state"] - part["bucket"],
        ),
        ("view and DRF", part["view"] - part["service"]),
        ("Django, middleware, access log", part["request"] - part["view"]),
    ]:
        print(f"  {label:44}{value:7.3f} ms")
    print(f"  {'= in process':44}{part['request']:7.3f} ms")
    print(f"  {'gunicorn, loopback and client':44}{http_total - part['request']:7.3f} ms")
    print(f"  {'= over HTTP':44}{http_total:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--bits", default="2048,3072", help="RSA key sizes, the first profiled")
    args = parser.parse_args()

    ensure_database()
    import gerion.wsgi  # noqa: F401 - sets logging up (again); then it is redirected

    # INFO logs, as in production, but not on the terminal.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    sizes = [int(bits) for bits in args.bits.split(",")]
    all_figures = [
        measure(bits, args.seconds, args.workers, parts=index == 0)
        for index, bits in enumerate(sizes)
    ]
    report(all_figures, args.seconds, args.workers)


if __name__ == "__main__":
    main()
