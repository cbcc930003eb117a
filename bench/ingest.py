"""Benchmark: one upload of N findings through the WSGI application, in process, against
PostgreSQL; then the same body again (all duplicates); and, as the hardware reference, a raw
COPY of the same rows into an empty copy of the findings table (LIKE ... INCLUDING ALL).

    python bench/ingest.py [-n 100000]    (BENCH_DATABASE_URL, default .../gerion_bench)

Prints findings/s of each, the ratios COPY time / upload time (1.0 would be as fast as a bare
COPY of the stored rows), and the peak memory (max RSS) of the process. Each measurement is
repeated (--repeat, fresh stream each time) and the medians are reported.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import configure, ensure_database, wsgi_request

configure()


SCANNERS = ["semgrep", "trivy", "gitleaks", "checkov"]
PACKAGES = ["lodash", "requests", "log4j-core", "openssl", "jackson-databind", "urllib3", "axios"]
CWES = [79, 89, 22, 78, 502, 798, 327, 611, 918, 400]


def realistic_finding(i: int, build: str) -> dict[str, Any]:
    """An SCA finding shaped like the official CLI's: documented fields, the metadata's build
    copied into it, extras and nulls. The same `i` gives the same finding in every build."""
    rng = random.Random(i)
    package = PACKAGES[i % len(PACKAGES)]
    year = rng.randint(2014, 2025)
    return {
        "finding_id": f"trivy-{package}-{i:08x}",
        "build_id": build,
        "title": f"{package}: vulnerable to {rng.choice(['prototype pollution', 'ReDoS', 'RCE'])}",
        "severity": rng.choice(["Critical", "High", "Medium", "Low", "Info"]),
        "scan_type": "SCA",
        "file_path": f"services/svc-{i % 97}/package-lock.json",
        "line_number": rng.randint(1, 5000),
        "active": True,
        "mitigated": False,
        "false_positive": False,
        "creation_date": "2026-11-20T10:15:00",
        "last_update_date": "2026-11-28T08:00:00",
        "description": f"{package} before {rng.randint(1, 9)}.{rng.randint(0, 20)} is vulnerable.",
        "mitigation": "Upgrade to the fixed version.",
        "component_name": package,
        "component_version": f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        "component_fix": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.0",
        "cwe": [rng.choice(CWES)],
        "cve": f"CVE-{year}-{rng.randint(1000, 99999)}",
        "security_scope": None,
    }


def build_body(n: int, repository: str, variant: str = "first") -> bytes:
    """The first scan of a stream, or ("next") the next build's: 10% of the findings fixed,
    10% new, 10% reworded, the rest as before (with the new build id copied into each)."""
    build = "bench-1" if variant == "first" else "bench-2"
    if variant == "first":
        findings = [realistic_finding(i, build) for i in range(n)]
    else:
        ids = range(n // 10, n + n // 10)  # the first tenth is gone, a tenth is new
        findings = [realistic_finding(i, build) for i in ids]
        for finding in findings[: n // 10]:
            finding["title"] += " (reworded)"
    document = {
        "metadata": {
            "repository_name": repository,
            "branch_name": "main",
            "build_id": build,
            "code_path": ".",
            "scan_type": "SCA",
            "commit_hash": "0" * 40,
            "cicd_platform": "bench",
        },
        "findings": findings,
    }
    body = orjson.dumps(document)
    del findings, document
    gc.collect()
    return body


def body_from_subprocess(n: int, repository: str, variant: str = "first") -> bytes:
    """The body, built in a child process so that this process's peak memory measures the
    upload, not the generator."""
    import subprocess

    return subprocess.run(
        [sys.executable, __file__, "--emit-body", str(n), repository, variant],
        check=True,
        capture_output=True,
    ).stdout


def copy_reference(repository: str) -> float:
    """Seconds to COPY the rows this stream stored into an empty LIKE ... INCLUDING ALL table."""
    from django.db import connection

    with connection.cursor() as cursor:
        buffer = io.BytesIO()
        query = (
            "COPY (SELECT * FROM findings_finding WHERE repository_name = "
            f"'{repository}') TO STDOUT"
        )
        with cursor.copy(query) as copy:
            for data in copy:
                buffer.write(data)
        data = buffer.getvalue()
        cursor.execute("DROP TABLE IF EXISTS bench_copy_reference")
        cursor.execute("CREATE TABLE bench_copy_reference (LIKE findings_finding INCLUDING ALL)")
        started = time.perf_counter()
        with cursor.copy("COPY bench_copy_reference FROM STDIN") as copy:
            view = memoryview(data)
            for offset in range(0, len(view), 1 << 20):
                copy.write(view[offset : offset + (1 << 20)])
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy_reference")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--findings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--emit-body", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit_body:
        n, repository, variant = args.emit_body
        sys.stdout.buffer.write(build_body(int(n), repository, variant))
        return

    ensure_database()
    from django.conf import settings
    from django.db import connection

    from apikeys.services import api_key_create
    from apikeys.tokens import mint_token
    from gerion.wsgi import application

    settings.GERION_JWT_LIFETIME_SECONDS = 3600
    run_tag = f"{os.getpid()}-{int(time.time())}"
    api_key, _ = api_key_create(
        name="bench",
        client_id=f"bench-{run_tag}",
        permissions=["write:findings"],
        actor_name="bench/ingest.py",
    )
    token = mint_token(
        client_id=api_key.client_id, api_key_id=api_key.api_key_id, scopes=["write:findings"]
    ).token

    first: list[float] = []
    again: list[float] = []
    following: list[float] = []
    reference: list[float] = []
    body_mb = 0.0

    def upload(body: bytes, times: list[float]) -> dict[str, int]:
        started = time.perf_counter()
        status, content = wsgi_request(
            application, "POST", "/api/v1/findings", body, {"Authorization": f"Bearer {token}"}
        )
        times.append(time.perf_counter() - started)
        if status != 201:
            raise SystemExit(f"upload failed: {status} {content[:500]!r}")
        counts: dict[str, int] = orjson.loads(content)
        return counts

    n = args.findings
    for round_ in range(args.repeat):
        repository = f"bench/{run_tag}-{round_}"
        body = body_from_subprocess(n, repository)
        body_mb = len(body) / 1e6
        upload(body, first)
        counts = upload(body, again)
        assert counts["updated"] == n, counts
        del body
        gc.collect()
        reference.append(copy_reference(repository))
        body = body_from_subprocess(n, repository, "next")
        counts = upload(body, following)
        assert (counts["created"], counts["mitigated"]) == (n // 10, n // 10), counts
        del body
        gc.collect()
        with connection.cursor() as cursor:  # leave the benchmark database small
            cursor.execute(
                "DELETE FROM findings_findingevent WHERE finding_id IN "
                "(SELECT id FROM findings_finding WHERE repository_name = %s)",
                [repository],
            )
            cursor.execute("DELETE FROM findings_finding WHERE repository_name = %s", [repository])

    med_first, med_again, med_next, med_copy = (
        statistics.median(t) for t in (first, again, following, reference)
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"findings per upload      {n:,} ({body_mb:.1f} MB of JSON), {args.repeat} rounds")
    print(f"first upload             {med_first:6.2f} s  {n / med_first:10,.0f} findings/s")
    print(f"re-upload (duplicates)   {med_again:6.2f} s  {n / med_again:10,.0f} findings/s")
    print(
        f"next build (10% new, 10% gone, 10% changed)"
        f"\n                         {med_next:6.2f} s  {n / med_next:10,.0f} findings/s"
    )
    print(f"raw COPY (reference)     {med_copy:6.2f} s  {n / med_copy:10,.0f} rows/s")
    print(f"ratio COPY/first upload  {med_copy / med_first:6.2f}")
    print(f"ratio COPY/re-upload     {med_copy / med_again:6.2f}")
    print(f"ratio COPY/next build    {med_copy / med_next:6.2f}")
    ratio = peak_mib * 1.048576 / body_mb
    print(f"peak memory (max RSS)    {peak_mib:6.0f} MiB ({ratio:.1f}x the body)")
    print(
        "rounds (first, re-upload, next build, copy): "
        + "; ".join(
            f"{a:.2f}/{b:.2f}/{c:.2f}/{d:.2f}"
            for a, b, c, d in zip(first, again, following, reference, strict=True)
        )
    )


if __name__ == "__main__":
    main()
