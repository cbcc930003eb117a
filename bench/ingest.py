"""Benchmark: uploads of N findings in the official CLI's wire shape, over HTTP, to gunicorn
started with the repository's configuration (4 workers) against PostgreSQL and Redis.

    python bench/ingest.py [-n 100000] [--repeat 5] [--workers 4]
                                        (BENCH_DATABASE_URL, BENCH_REDIS_URL)

Cases, each on a fresh stream per round (after one unmeasured upload of each kind):
- first upload: a stream's first scan (every finding new);
- identical re-upload: the same bytes again (the CLI re-sends after its 5 s timeout);
- CLI re-scan: the same findings with a new creation_date, last_update_date, build and commit
  on every finding, as the CLI stamps each run;
- next build: 10% of the findings gone, 10% new, 10% reworded, the rest re-scanned;
- SARIF first upload: the first upload's findings as the SARIF 2.1.0 log Trivy writes (a rule
  per CVE with its help text, a result per vulnerable package: ~95,000 rules, the worst case),
  with `Content-Type: application/sarif+json` and the stream in query parameters, on a stream
  of its own, from the same emptied tables as the first upload (rules too); its speed against
  the JSON envelope's first upload is printed (the bar is 0.8);
- the same log to another new stream, its rules stored by the upload before: what a new
  branch's first scan costs once the scanner's rules have been seen (the same set of rules:
  findings.models.ScannerRuleSet). In between, the rules the first one packed are stored as
  rows, outside any upload, as `manage.py expandrules` does (findings.rules.rules_catch_up,
  with its vacuum; the first read of a rule does the same without it): its seconds and CPU
  are printed.

The hardware reference, measured in the same run: COPY from Python (psycopg write_row, the
faster of text and binary format) of the same logical rows (identity, title, severity, file
path, line, description, raw JSON) into a plain table whose only index is the 4-column
identity primary key. For each case it prints the median seconds, findings/s, the ratio
reference time / upload time (1.0 would be as fast as that bare COPY), the peak RSS of the
gunicorn worker that served the request, and the CPU seconds the workers and PostgreSQL (all its
processes, the WAL writer's too) spent on it (on a shared machine, the CPU figures move much
less than the seconds).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import http.client
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (
    configure,
    cpu_seconds,
    cpu_used,
    ensure_database,
    parent_pid,
    start_gunicorn,
    tree_cpu_seconds,
    worker_peak_rss,
)

# A database of its own (BENCH_DATABASE_URL + "_ingest"): each round empties its findings.
os.environ["BENCH_DATABASE_URL"] = (
    os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gerion_bench") + "_ingest"
)
configure(redis=True)

PACKAGES = ["lodash", "requests", "log4j-core", "openssl", "jackson-databind", "urllib3", "axios"]
CWES = ["CWE-79", "CWE-89", "CWE-22", "CWE-78", "CWE-502", "CWE-400", "CWE-1321", "CWE-918"]
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
ADVISORY = (
    "### Impact\n{package} before {fixed} allows {what} when parsing untrusted input. An "
    "attacker who controls the input can {effect}.\n\n### Patches\nUpgrade to {fixed} or later."
)


def cli_finding(i: int, meta: dict[str, Any], stamp: str, reworded: bool = False) -> dict:
    """One SCA finding as the official CLI 1.0.0 sends it: its 31 keys in its order, the
    metadata copied in, `vuln_details`, and the premium keys as nulls. The same `i` is the
    same finding in every build."""
    rng = random.Random(i)
    package = PACKAGES[i % len(PACKAGES)]
    version = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
    fixed = f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.0"
    cve = f"CVE-{rng.randint(2014, 2025)}-{rng.randint(1000, 99999)}"
    severity = rng.choice(SEVERITIES)
    what = rng.choice(["prototype pollution", "a ReDoS", "remote code execution"])
    description = ADVISORY.format(
        package=package, fixed=fixed, what=what, effect="exhaust memory or run code"
    )
    return {
        # As the CLI makes it (gerion_cli/tools/parser.py, generate_unique_id): the first 12
        # hex digits of a SHA-256 of target, vulnerability and package id. Ids in no order,
        # as every scanner's are: a stream's identity index takes them all over its range.
        "finding_id": hashlib.sha256(
            f"services/svc-{i % 97}/package-lock.json{cve}{package}-{i}@{version}".encode()
        ).hexdigest()[:12],
        "title": f"{package}-{i} {version} \u2014 1 vulnerability" + (" (new)" if reworded else ""),
        "description": description,
        "mitigation": f"Upgrade {package} to >= {fixed} (Current: {version}). Fixes all 1.",
        "severity": severity,
        "security_scope": "Code",
        "scan_type": "SCA",
        "repository_name": meta["repository_name"],
        "branch_name": meta["branch_name"],
        "build_id": meta["build_id"],
        "code_path": meta["code_path"],
        "commit_hash": meta["commit_hash"],
        "commit_author": meta["commit_author"],
        "file_path": f"services/svc-{i % 97}/package-lock.json",
        "line_number": None,
        "component_name": f"{package}-{i}",
        "component_version": version,
        "component_fix": fixed,
        "active": True,
        "mitigated": False,
        "false_positive": False,
        "creation_date": stamp,
        "last_update_date": stamp,
        "cwe": [rng.choice(CWES)],
        "cve": [cve],
        "mitigated_on_build_id": None,
        "trace": None,
        "confidence": None,
        "reachability": None,
        "risk_score": None,
        "score_breakdown": None,
        "vuln_details": [
            {
                "id": cve,
                "severity": severity,
                "summary": f"{package}: {what}",
                "fixed": fixed,
                "cvss": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
            }
        ],
    }


def cli_body(n: int, repository: str, case: str) -> bytes:
    build = {"first": "1", "rescan": "2", "next": "3"}[case]
    stamp = (datetime(2026, 11, 20, 10, 15) + timedelta(hours=int(build))).isoformat()
    meta = {
        "repository_name": repository,
        "branch_name": "main",
        "build_id": build,
        "code_path": "/github/workspace",
        "commit_hash": f"{int(build):040x}",
        "commit_author": "dependabot[bot]",
        "cicd_platform": "github_actions",
        "scan_type": "SCA",
        "scan_duration": 41.7,
    }
    if case == "next":
        ids = range(n // 10, n + n // 10)  # the first tenth gone, a tenth new
        findings = [cli_finding(i, meta, stamp, reworded=i < 2 * n // 10) for i in ids]
    else:
        findings = [cli_finding(i, meta, stamp) for i in range(n)]
    body = orjson.dumps({"findings_data": {"scan_metadata": meta, "findings": findings}})
    del findings
    gc.collect()
    return body


LEVELS = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}
SCORES = {"CRITICAL": "9.8", "HIGH": "7.5", "MEDIUM": "5.3", "LOW": "3.1"}


def sarif_body(n: int) -> tuple[bytes, int]:
    """The first upload's findings as Trivy writes them in SARIF: one rule per CVE (described
    once, with its help text), one result per vulnerable package; and how many rules."""
    stamp = datetime(2026, 11, 20, 11, 15).isoformat()
    meta = {"repository_name": "", "branch_name": "", "build_id": "1", "code_path": "",
            "commit_hash": "", "commit_author": ""}  # fmt: skip
    rules: dict[str, int] = {}
    descriptors: list[dict[str, Any]] = []
    results = []
    for i in range(n):
        f = cli_finding(i, meta, stamp)
        cve, severity = f["cve"][0], f["severity"]
        link = f"[{cve}](https://avd.aquasec.com/nvd/{cve.lower()})"
        if cve not in rules:
            rules[cve] = len(descriptors)
            descriptors.append(
                {
                    "id": cve,
                    "name": "LanguageSpecificPackageVulnerability",
                    "shortDescription": {"text": f"{cve}: {f['vuln_details'][0]['summary']}"},
                    "fullDescription": {"text": f["description"]},
                    "defaultConfiguration": {"level": LEVELS[severity]},
                    "helpUri": f"https://avd.aquasec.com/nvd/{cve.lower()}",
                    "help": {
                        "text": f"Vulnerability {cve}\nSeverity: {severity}\nLink: {link}\n"
                        + f["description"],
                        "markdown": f"**Vulnerability {cve}**\n| Severity | Link |\n"
                        f"| --- | --- |\n|{severity}|{link}|\n\n" + f["description"],
                    },
                    "properties": {
                        "precision": "very-high",
                        "security-severity": SCORES[severity],
                        "tags": ["vulnerability", "security", severity, f["cwe"][0]],
                    },
                }
            )
        results.append(
            {
                "ruleId": cve,
                "ruleIndex": rules[cve],
                "level": LEVELS[severity],
                "message": {
                    "text": f"Package: {f['component_name']}\nInstalled Version: "
                    f"{f['component_version']}\nVulnerability {cve}\nSeverity: {severity}\n"
                    f"Fixed Version: {f['component_fix']}\nLink: {link}"
                },
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f["file_path"], "uriBaseId": "ROOTPATH"},
                            "region": {
                                "startLine": 1,
                                "startColumn": 1,
                                "endLine": 1,
                                "endColumn": 1,
                            },
                        },
                        "message": {"text": f["file_path"]},
                    }
                ],
            }
        )
    run = {
        "tool": {
            "driver": {
                "fullName": "Trivy Vulnerability Scanner",
                "informationUri": "https://github.com/aquasecurity/trivy",
                "name": "Trivy",
                "rules": descriptors,
                "version": "0.57.1",
            }
        },
        "results": results,
        "columnKind": "utf16CodeUnits",
        "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///github/workspace/"}},
    }
    body = orjson.dumps(
        {
            "version": "2.1.0",
            "$schema": "https://json.schemastore.org/sarif-2.1.0-rtm.5.json",
            "runs": [run],
        }
    )
    rules_total = len(descriptors)
    del results, descriptors
    gc.collect()
    return body, rules_total


def reference_rows(body: bytes) -> list[tuple[Any, ...]]:
    """The same logical rows the upload stores, built before the clock starts."""
    data = orjson.loads(body)["findings_data"]
    meta = data["scan_metadata"]
    return [
        (
            meta["repository_name"],
            meta["branch_name"],
            "SCA",
            f["finding_id"],
            f["title"],
            f["severity"],
            f["file_path"],
            f["line_number"],
            f["description"],
            orjson.dumps(f).decode(),
        )
        for f in data["findings"]
    ]


def copy_reference(rows: list[tuple[Any, ...]]) -> tuple[float, str]:
    """Seconds to COPY the rows into a plain table with only the identity primary key (the
    faster of text and binary COPY), and which format that was. Its columns have the types
    of the findings table's (the raw JSON too: json or jsonb, whichever the table uses)."""
    import psycopg
    from psycopg.types.json import Json, Jsonb

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    best: tuple[float, str] | None = None
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'findings_finding'::regclass AND attname = 'raw'"
        ).fetchone()
        assert found is not None
        raw_type = str(found[0])
        for fmt in ("text", "binary"):
            conn.execute("DROP TABLE IF EXISTS bench_copy_reference")
            conn.execute(
                "CREATE TABLE bench_copy_reference (repository_name varchar(255), "
                "branch_name varchar(255), scan_type varchar(16), finding_id varchar(255), "
                f"title text, severity varchar(8), file_path text, line_number integer, "
                f"description text, raw {raw_type}, "
                "PRIMARY KEY (repository_name, branch_name, scan_type, finding_id))"
            )
            conn.execute("CHECKPOINT")
            options = " (FORMAT BINARY)" if fmt == "binary" else ""
            started = time.perf_counter()
            statement = f"COPY bench_copy_reference FROM STDIN{options}"
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
                if fmt == "binary":
                    copy.set_types(["text"] * 7 + ["int4", "text", raw_type])
                    wrap = Jsonb if raw_type == "jsonb" else Json
                    for row in rows:
                        copy.write_row((*row[:9], wrap(row[9], dumps=_as_is)))
                else:
                    for row in rows:
                        copy.write_row(row)
            elapsed = time.perf_counter() - started
            if best is None or elapsed < best[0]:
                best = (elapsed, fmt)
        conn.execute("DROP TABLE bench_copy_reference")
    assert best is not None
    return best


def _as_is(value: Any) -> Any:
    return value


def post(
    url: str,
    token: str,
    body: bytes,
    *,
    query: str = "",
    content_type: str = "application/json",
) -> tuple[float, int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    started = time.perf_counter()
    connection.request(
        "POST",
        "/api/v1/findings" + query,
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    response = connection.getresponse()
    content = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 201:
        raise SystemExit(f"upload failed: {response.status} {content[:500]!r}")
    result: dict[str, Any] = orjson.loads(content)
    return elapsed, response.status, result


def authenticate(url: str, key: str, client_id: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(
        "POST",
        "/api/v1/auth/m2m/authenticate",
        body=orjson.dumps({"client_id": client_id}),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    token: str = orjson.loads(response.read())["access_token"]
    connection.close()
    return token


def empty_findings(*, rules: bool = True) -> None:
    """Every round starts on empty findings tables, as the reference does (this benchmark has
    a database of its own), and with no SARIF rules stored (unless `rules` is false), so that
    the round's first SARIF upload stores every rule it describes, as a first upload to a new
    service does: the worst case."""
    import psycopg

    tables = (
        "findings_findingevent, findings_findingcomment, findings_finding, "
        "findings_openfindingcount, findings_findingday, findings_findingwords, "
        "findings_searchqueue, findings_stream, findings_upload"
    )
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        rule_tables = (
            ", findings_scannerrule, findings_scannerrulepack, findings_scannerruleset"
            if rules
            else ""
        )
        conn.execute(f"TRUNCATE {tables}{rule_tables}")
        conn.execute("CHECKPOINT")


def postmaster() -> int:
    """The PID of the PostgreSQL server (the parent of every backend): the database runs on
    this machine. Its CPU, with every backend's, the WAL writer's and that of connections
    opened and closed meanwhile, is read by tree_cpu_seconds."""
    import psycopg

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:  # read while the backend runs
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return parent_pid(int(row[0]))


CASES = [
    ("first", "first upload"),
    ("again", "identical re-upload"),
    ("rescan", "CLI re-scan (new dates, build)"),
    ("next", "next build (10% new/gone/changed)"),
]
SARIF_CASES = [
    ("sarif", "SARIF first upload (same findings)"),
    ("sarif-known", "same, its rules already stored"),
]
ALL_CASES = [*CASES, *SARIF_CASES]
SARIF_TYPE = "application/sarif+json"
# The SARIF cases whose speed is compared with the envelope's first upload.
SARIF_RATIOS = (("sarif", "rules new"), ("sarif-known", "rules stored"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--findings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    n = args.findings

    ensure_database()
    from apikeys.services import api_key_create
    from apikeys.signing_keys import generate_private_key_pem
    from findings.rules import rules_catch_up

    tag = f"{os.getpid()}-{int(time.time())}"
    _, key = api_key_create(
        name="bench",
        client_id=f"bench-{tag}",
        permissions=["write:findings"],
        actor_name="bench/ingest.py",
    )
    work = Path(tempfile.mkdtemp(prefix="gerion-bench-"))
    key_path = work / "signing.pem"
    key_path.write_bytes(generate_private_key_pem(2048))
    key_path.chmod(0o600)
    server = start_gunicorn(
        args.workers,
        key_path,
        work / "gunicorn.log",
    )
    times: dict[str, list[float]] = {case: [] for case, _ in ALL_CASES}
    peaks: dict[str, list[float]] = {case: [] for case, _ in ALL_CASES}
    # CPU seconds of the workers (Python) and of PostgreSQL, per upload.
    python_cpu: dict[str, list[float]] = {case: [] for case, _ in ALL_CASES}
    postgres_cpu: dict[str, list[float]] = {case: [] for case, _ in ALL_CASES}
    postgres = postmaster()

    def upload(case: str, body: bytes, **options: str) -> dict[str, Any]:
        server.reset_peaks()
        workers, database = cpu_seconds(server.workers()), tree_cpu_seconds(postgres)
        elapsed, _, result = post(server.url, token, body, **options)
        python_cpu[case].append(cpu_used(workers, cpu_seconds(server.workers())))
        postgres_cpu[case].append(tree_cpu_seconds(postgres) - database)
        times[case].append(elapsed)
        peaks[case].append(worker_peak_rss(server) / 2**20)
        return result

    sarif, sarif_rules = sarif_body(n)
    sarif_mb = len(sarif) / 1e6
    catch_up: list[tuple[float, float, float]] = []  # seconds, CPU: Python, PostgreSQL
    reference: list[float] = []
    formats: list[str] = []
    # Every body, and the reference's rows, made before the first upload: making them
    # allocates and frees gigabytes in this process, and on a virtual machine that hands freed
    # memory back to its host, whatever runs next pays to fault it in again (measured: a SARIF
    # upload right after that took 0.4 s longer, a JSON one no longer). A CI runner is another
    # machine: no upload is timed just after such a churn (only the catch-up's, before the
    # second SARIF upload).
    rounds = [
        {case: cli_body(n, f"bench/{tag}-{round_}", case) for case in ("first", "rescan", "next")}
        for round_ in range(args.repeat)
    ]
    rows = reference_rows(rounds[0]["first"])
    body_mb = len(rounds[0]["first"]) / 1e6
    gc.collect()
    try:
        token = authenticate(server.url, key, f"bench-{tag}")
        # One upload of each kind first, not measured: the first after the bodies were made
        # paid for that (1.5-1.7 s more in the first round of two runs, always the SARIF
        # log's, which comes first).
        warm_up = {"repository_name": f"bench/{tag}-warm-up", "branch_name": "main"}
        post(server.url, token, sarif, query="?" + urlencode(warm_up), content_type=SARIF_TYPE)
        post(server.url, token, rounds[0]["first"])
        empty_findings()
        for round_, bodies in enumerate(rounds):
            repository = f"bench/{tag}-{round_}"
            bodies["again"] = bodies["first"]
            expected = {
                "first": (n, 0, 0),
                "again": (0, n, 0),
                "rescan": (0, n, 0),
                "next": (n // 10, n - n // 10, n // 10),
            }
            # The SARIF uploads first, on the emptied tables the JSON envelope's first upload
            # then gets too: the same findings, stored from the same state. Then the same log
            # as the first upload of another stream (a new branch, say), whose rules the
            # first one stored: the common case once a scanner's rules have been seen.
            for case, branch in (("sarif", "main"), ("sarif-known", "feature")):
                stream = {"repository_name": f"{repository}-sarif", "branch_name": branch}
                query = "?" + urlencode({**stream, "build_id": "1"})
                result = upload(case, sarif, query=query, content_type=SARIF_TYPE)
                assert (result["created"], result["warnings"]) == (n, []), result
                if case == "sarif":
                    # The rules it packed, stored as rows outside any upload, as `manage.py
                    # expandrules` does every minute (findings.rules, its vacuum included).
                    database = tree_cpu_seconds(postgres)
                    started = time.perf_counter()
                    used = time.process_time()
                    assert rules_catch_up(vacuum=True) == sarif_rules, "rules not stored"
                    catch_up.append(
                        (
                            time.perf_counter() - started,
                            time.process_time() - used,
                            tree_cpu_seconds(postgres) - database,
                        )
                    )
                empty_findings(rules=False)
            empty_findings()
            for case, _ in CASES:
                result = upload(case, bodies[case])
                counts = (result["created"], result["updated"], result["mitigated"])
                assert counts == expected[case], (case, result)
            seconds, fmt = copy_reference(rows)
            reference.append(seconds)
            formats.append(fmt)
            empty_findings()
    finally:
        server.stop()
    del rounds, rows

    ref = statistics.median(reference)
    print(
        f"{n:,} CLI-shaped findings per upload ({body_mb:.0f} MB of JSON), over HTTP to "
        f"gunicorn ({args.workers} workers), medians of {args.repeat} rounds"
    )
    print(
        f"reference: COPY of the same rows into a plain table (identity primary key only), "
        f"{ref:.2f} s, {n / ref:,.0f} rows/s ({max(set(formats), key=formats.count)} format)"
    )
    print(
        f"{'case':36s} {'seconds':>8s} {'findings/s':>11s} {'ratio':>6s} {'worker RSS':>11s} "
        f"{'CPU: Python':>12s} {'PostgreSQL':>10s}"
    )
    for case, label in ALL_CASES:
        seconds = statistics.median(times[case])
        print(
            f"{label:36s} {seconds:8.2f} {n / seconds:11,.0f} {ref / seconds:6.2f} "
            f"{max(peaks[case]):8.0f} MiB {statistics.median(python_cpu[case]):10.2f} s "
            f"{statistics.median(postgres_cpu[case]):8.2f} s"
        )
    cpu = {
        case: statistics.median(python_cpu[case]) + statistics.median(postgres_cpu[case])
        for case in ("first", "sarif", "sarif-known")
    }
    first = statistics.median(times["first"])
    for case, what in SARIF_RATIOS:
        print(
            f"SARIF ({sarif_mb:.0f} MB, {what}) vs JSON envelope, first upload of the same "
            f"findings: speed ratio {first / statistics.median(times[case]):.2f}"
            + (" (bar 0.80)" if case == "sarif" else "")
            + f"; CPU ratio {cpu['first'] / cpu[case]:.2f} (Python and PostgreSQL together)"
        )
    # The same ratio within each round (its uploads minutes apart at most): a machine whose
    # speed drifts from round to round moves both sides of it alike.
    for case, what in SARIF_RATIOS:
        paired = [first / sarif for first, sarif in zip(times["first"], times[case], strict=True)]
        print(
            f"the same speed ratio within each round ({what}): "
            + "/".join(f"{ratio:.2f}" for ratio in paired)
            + f", median {statistics.median(paired):.2f}"
        )
    print(
        f"its {sarif_rules:,} rules stored afterwards, outside the upload "
        f"(manage.py expandrules, its vacuum included): "
        f"{statistics.median(c[0] for c in catch_up):.2f} s, CPU: Python "
        f"{statistics.median(c[1] for c in catch_up):.2f} s, PostgreSQL "
        f"{statistics.median(c[2] for c in catch_up):.2f} s"
    )
    print(
        "rounds (s): "
        + "; ".join(f"{case} " + "/".join(f"{t:.2f}" for t in times[case]) for case, _ in ALL_CASES)
        + "; reference "
        + "/".join(f"{t:.2f}" for t in reference)
    )
    print(f"largest first upload within the CLI's 5 s at this rate: ~{int(5 * n / first):,}")


if __name__ == "__main__":
    main()
