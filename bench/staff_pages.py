"""Benchmark: the staff pages with a million findings. Loads 1,000,000 findings (10 streams of
100,000, through the ingest service) into its own database once, then times the dashboard,
the list (first page, the 200th page by keyset, filtered, searched) and a finding's page,
against the hardware reference: the same page of rows read by a bare indexed query.

    python bench/staff_pages.py [--findings 1000000]

Prints medians of 7 requests per page, the queries each page made, and the ratios.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import configure, ensure_database

configure()

REPOSITORY_PREFIX = "scale/service-"
SEVERITIES = ["Critical", "High", "Medium", "Low", "Info"]


def load(total: int) -> None:
    from django.db import connection

    from apikeys.models import ApiKey
    from apikeys.services import api_key_create
    from findings.models import Finding
    from findings.services import findings_ingest

    have = Finding.objects.filter(repository_name__startswith=REPOSITORY_PREFIX).count()
    if have >= total:
        return
    api_key = (
        ApiKey.objects.filter(client_id="bench-scale").first()
        or api_key_create(
            name="bench scale",
            client_id="bench-scale",
            permissions=["write:findings"],
            actor_name="bench/staff_pages.py",
        )[0]
    )
    per_stream = 100_000
    rng = random.Random(3)
    for stream in range(total // per_stream):
        findings = [
            {
                "finding_id": f"s{stream}-{i}",
                "title": f"{rng.choice(['lodash', 'openssl', 'log4j-core'])} issue {i}",
                "severity": rng.choice(SEVERITIES),
                "file_path": f"src/module{i % 500}/file{i}.py",
                "component_name": rng.choice(["lodash", "openssl", "log4j-core", ""]),
                "cve": f"CVE-2024-{i % 90000 + 1000}",
            }
            for i in range(per_stream)
        ]
        body = orjson.dumps(
            {
                "metadata": {
                    "repository_name": f"{REPOSITORY_PREFIX}{stream}",
                    "branch_name": "main",
                    "build_id": "1",
                    "code_path": ".",
                    "scan_type": "SCA",
                },
                "findings": findings,
            }
        )
        del findings
        findings_ingest(
            body=body, api_key=api_key, client_id=api_key.client_id, repository_patterns=("*",)
        )
        print(f"loaded stream {stream + 1}", file=sys.stderr)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE findings_finding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=7)
    args = parser.parse_args()

    ensure_database()
    load(args.findings)

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    user = User.objects.filter(username="bench-staff").first() or User.objects.create_superuser(
        "bench-staff", "bench@example.com", None
    )
    client = Client()
    client.force_login(user)

    def timed(url: str) -> tuple[float, int, str]:
        times, queries, html = [], 0, ""
        for _ in range(args.requests):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            queries, html = len(captured), response.content.decode()
        return statistics.median(times) * 1000, queries, html

    # The 200th page: follow the keyset cursor 199 times.
    url = "/findings/?sort=severity"
    for _ in range(199):
        html = client.get(url).content.decode()
        link = re.search(r'href="(\?[^"]*direction=next[^"]*)"', html)
        assert link is not None, "fewer than 200 pages"
        url = "/findings/" + link.group(1).replace("&amp;", "&")
    page_200 = url

    def raw_page() -> float:
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT * FROM findings_finding ORDER BY severity_rank, id DESC LIMIT 51"
                )
                cursor.fetchall()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    reference = raw_page()
    total = connection.cursor()
    total.execute("SELECT count(*) FROM findings_finding")
    print(f"findings in the table     {total.fetchone()[0]:,}")
    print(f"raw indexed page query    {reference:7.1f} ms (reference)")
    pages = {
        "dashboard": "/",
        "list, first page": "/findings/?sort=severity",
        "list, 200th page": page_200,
        "list, repo + severity": f"/findings/?repository_name={REPOSITORY_PREFIX}3&severity=HIGH",
        "list, newest, active": "/findings/?sort=newest&status=Active",
        "list, search": "/findings/?q=log4j-core&repository_name=" + REPOSITORY_PREFIX + "5",
        "finding page": "/findings/1/",
    }
    for name, page_url in pages.items():
        ms, queries, _ = timed(page_url)
        print(f"{name:25} {ms:7.1f} ms  {queries} queries  ratio {reference / ms:5.2f}")


if __name__ == "__main__":
    main()
