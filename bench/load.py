"""Load and soak: gunicorn on loopback, many distinct API keys authenticating and uploading at
once for a bounded time; then a check in the database that every finding acknowledged with a
201 is stored exactly once.

    python bench/load.py [--duration 30] [--clients 24] [--threads 16] [--workers 3]

Uses its own database (BENCH_DATABASE_URL, default gerion_bench) and Redis db (BENCH_REDIS_URL,
default db 14). Prints requests/s, latency percentiles per kind of request, and error counts;
exits non-zero on any 5xx, transport error or lost finding.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import configure, ensure_database, start_gunicorn

configure(redis=True)


@dataclass
class Client:
    client_id: str
    key: str
    token: str = ""
    token_at: float = 0.0
    uploads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: list[tuple[str, str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, started: float, status: int) -> None:
        with self.lock:
            self.latencies[kind].append(time.perf_counter() - started)
            self.statuses[(kind, status)] += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=24, help="distinct API keys")
    parser.add_argument("--threads", type=int, default=16, help="concurrent requests")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--findings", type=int, default=200, help="findings per upload")
    parser.add_argument("--max-requests", type=int, default=100_000)
    args = parser.parse_args()

    ensure_database()
    from django.db import connection

    from apikeys.services import api_key_create
    from apikeys.signing_keys import generate_private_key_pem

    tag = f"{os.getpid()}-{int(time.time())}"
    clients = []
    for n in range(args.clients):
        key, plaintext = api_key_create(
            name=f"load {n}",
            client_id=f"load-{tag}-{n}",
            permissions=["write:findings", "read:findings"],
            actor_name="bench/load.py",
        )
        clients.append(Client(key.client_id, plaintext))

    workdir = Path(tempfile.mkdtemp(prefix="gerion-load-"))
    key_path = workdir / "jwt.pem"
    key_path.write_bytes(generate_private_key_pem(2048))
    key_path.chmod(0o600)
    server = start_gunicorn(args.workers, key_path, workdir / "gunicorn.log")
    url = server.url
    results = Results()
    deadline = time.monotonic() + args.duration
    budget = threading.Semaphore(args.max_requests)

    def call(kind: str, method: str, path: str, **kwargs: object) -> requests.Response | None:
        if not budget.acquire(blocking=False):
            return None
        started = time.perf_counter()
        try:
            response = session.request(method, url + path, timeout=60, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            with results.lock:
                results.errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        results.record(kind, started, response.status_code)
        return response

    def authenticate(client: Client) -> None:
        response = call(
            "authenticate",
            "POST",
            "/api/v1/auth/m2m/authenticate",
            json={"client_id": client.client_id},
            headers={"X-API-Key": client.key},
        )
        if response is not None and response.status_code == 200:
            client.token, client.token_at = response.json()["access_token"], time.monotonic()

    def run(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            client = rng.choice(clients)
            roll = rng.random()
            if roll < 0.03:  # a pipeline with a mistyped key
                call(
                    "authenticate (bad key)",
                    "POST",
                    "/api/v1/auth/m2m/authenticate",
                    json={"client_id": client.client_id},
                    headers={"X-API-Key": client.key[:-2] + "zz"},
                )
                continue
            if not client.token or time.monotonic() - client.token_at > 1500:
                authenticate(client)
                if not client.token:
                    continue
            bearer = {"Authorization": f"Bearer {client.token}"}
            if roll < 0.15:
                call("list", "GET", "/api/v1/findings?limit=100", headers=bearer)
                continue
            with client.lock:
                client.uploads += 1
                sequence = client.uploads
            branch = f"branch-{rng.randint(0, 2)}"  # a few streams per client: some collide
            repository = f"load/{client.client_id}"
            # A random half of a pool of ids: each scan re-reports some findings, drops some
            # (mitigated) and brings back others (reactivated), as real scans do.
            ids = rng.sample([f"id-{i}" for i in range(args.findings * 2)], args.findings)
            body = {
                "metadata": {
                    "repository_name": repository,
                    "branch_name": branch,
                    "build_id": str(sequence),
                    "code_path": ".",
                    "scan_type": "SCA",
                },
                "findings": [
                    {
                        "finding_id": fid,
                        "title": f"Finding {fid}",
                        "severity": rng.choice(["High", "Low", "Critical"]),
                        "component_name": "lib",
                        "cve": "CVE-2024-0001",
                    }
                    for fid in ids
                ],
            }
            response = call("upload", "POST", "/api/v1/findings", json=body, headers=bearer)
            if response is not None and response.status_code == 201:
                with results.lock:
                    results.acknowledged.extend((repository, branch, "SCA", fid) for fid in ids)

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.threads))
    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    server.stop()

    # The stored findings of these streams are exactly the ones acknowledged with a 201: none
    # lost, none left behind by a request that failed, each once.
    acknowledged = set(results.acknowledged)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT repository_name, branch_name, scan_type, finding_id "
            "FROM findings_finding WHERE repository_name LIKE %s",
            [f"load/load-{tag}-%"],
        )
        rows = cursor.fetchall()
    present = {tuple(row) for row in rows}
    stored = len(acknowledged & present)
    lost = len(acknowledged - present)
    unacknowledged = len(present - acknowledged)
    duplicates = len(rows) - len(present)

    total = sum(len(v) for v in results.latencies.values())
    server_errors = sum(n for (kind, status), n in results.statuses.items() if status >= 500)
    print(
        f"load: {args.clients} keys, {args.threads} concurrent clients, gunicorn "
        f"{args.workers} workers, {elapsed:.1f} s"
    )
    print(f"requests                 {total:,} ({total / elapsed:,.1f} req/s)")
    for kind, values in sorted(results.latencies.items()):
        print(
            f"  {kind:24} {len(values):6,}  p50 {percentile(values, 0.50):7.1f} ms  "
            f"p95 {percentile(values, 0.95):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
        )
    print(
        "statuses                 "
        + ", ".join(
            f"{kind} {status}: {n}" for (kind, status), n in sorted(results.statuses.items())
        )
    )
    print(f"server errors (5xx)      {server_errors}")
    print(f"transport errors         {sum(results.errors.values())} {dict(results.errors)}")
    print(
        f"findings acknowledged    {len(results.acknowledged):,} in 201s "
        f"({len(results.acknowledged) / elapsed:,.0f}/s), {len(acknowledged):,} distinct"
    )
    print(
        f"stored exactly once      {stored:,}; lost {lost}; duplicated {duplicates}; "
        f"stored without a 201 {unacknowledged}"
    )
    if server_errors or results.errors or lost or duplicates or unacknowledged:
        raise SystemExit(1)


session: requests.Session

if __name__ == "__main__":
    main()
