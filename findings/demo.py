"""A realistic demo for an empty installation (manage.py seeddemo): what a few weeks of CI
scans of a small company look like, written the way production data is written.

Every upload goes through findings.services.findings_ingest and every staff decision through
findings.services.finding_triage, so the demo shows exactly what those produce (lifecycle,
counts, history) and keeps working whatever they do underneath.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from apikeys.models import ApiKey, Permission
from apikeys.services import api_key_create
from findings.models import Finding
from findings.services import TriageAction, finding_triage, findings_ingest

# (rule, title, severity, cwe, file path, line); severities as scanners send them.
SAST = [
    (
        "python.django.security.injection.sql.sql-injection-using-raw",
        "SQL query built from request data",
        "HIGH",
        "CWE-89",
        "views.py",
        88,
    ),
    (
        "python.lang.security.audit.subprocess-shell-true",
        "subprocess called with shell=True on user input",
        "CRITICAL",
        "CWE-78",
        "tasks/convert.py",
        41,
    ),
    (
        "python.lang.security.deserialization.avoid-pickle",
        "Untrusted data passed to pickle.loads",
        "CRITICAL",
        "CWE-502",
        "cache/store.py",
        23,
    ),
    (
        "javascript.browser.security.insecure-innerhtml",
        "innerHTML assigned from the query string (DOM XSS)",
        "High",
        "CWE-79",
        "static/js/search.js",
        17,
    ),
    (
        "python.requests.security.disabled-cert-validation",
        "TLS certificate verification disabled",
        "MEDIUM",
        "CWE-295",
        "clients/partner.py",
        30,
    ),
    (
        "python.flask.security.open-redirect",
        "Open redirect through the next parameter",
        "Medium",
        "CWE-601",
        "auth/views.py",
        112,
    ),
    (
        "python.lang.security.insecure-hash-md5",
        "MD5 used to sign password-reset links",
        "LOW",
        "CWE-327",
        "accounts/tokens.py",
        12,
    ),
    (
        "python.lang.best-practice.logging-request-body",
        "Request bodies written to the debug log",
        "Low",
        "CWE-532",
        "middleware.py",
        57,
    ),
    (
        "python.django.debug-toolbar-installed",
        "django-debug-toolbar listed in INSTALLED_APPS",
        "INFO",
        "",
        "settings.py",
        54,
    ),
    (
        "kotlin.android.plaintext-shared-preferences",
        "Session token stored in plain SharedPreferences",
        "MEDIUM",
        "CWE-312",
        "app/src/main/java/com/acme/SessionStore.kt",
        19,
    ),
    (
        "kotlin.lang.security.weak-rsa-key",
        "RSA key of 1024 bits",
        "MEDIUM",
        "CWE-326",
        "app/src/main/java/com/acme/crypto/Keys.kt",
        8,
    ),
    (
        "kotlin.android.exported-activity",
        "Activity exported without a permission",
        "LOW",
        "CWE-926",
        "app/src/main/AndroidManifest.xml",
        27,
    ),
    (
        "kotlin.android.debuggable",
        "android:debuggable is set in the release manifest",
        "INFO",
        "CWE-489",
        "app/src/release/AndroidManifest.xml",
        5,
    ),
    (
        "kotlin.android.webview-javascript-enabled",
        "WebView runs JavaScript from any origin",
        "HIGH",
        "CWE-749",
        "app/src/main/java/com/acme/WebActivity.kt",
        33,
    ),
]

# (CVE, package, installed, fixed, severity, cwe, manifest, summary)
SCA = [
    (
        "CVE-2021-44228",
        "org.apache.logging.log4j:log4j-core",
        "2.14.1",
        "2.15.0",
        "CRITICAL",
        "CWE-502",
        "pom.xml",
        "Remote code execution through JNDI lookups in logged strings (Log4Shell).",
    ),
    (
        "CVE-2022-22965",
        "org.springframework:spring-beans",
        "5.3.17",
        "5.3.18",
        "CRITICAL",
        "CWE-94",
        "pom.xml",
        "Remote code execution through data binding on JDK 9+ (Spring4Shell).",
    ),
    (
        "CVE-2021-23337",
        "lodash",
        "4.17.20",
        "4.17.21",
        "HIGH",
        "CWE-94",
        "package-lock.json",
        "Command injection through the template function.",
    ),
    (
        "CVE-2022-24999",
        "qs",
        "6.5.2",
        "6.5.3",
        "HIGH",
        "CWE-1321",
        "package-lock.json",
        "Prototype pollution through __proto__ keys hangs the process.",
    ),
    (
        "CVE-2023-45857",
        "axios",
        "1.5.1",
        "1.6.0",
        "MEDIUM",
        "CWE-352",
        "package-lock.json",
        "The XSRF-TOKEN cookie is sent to every host a request goes to.",
    ),
    (
        "CVE-2023-32681",
        "requests",
        "2.28.1",
        "2.31.0",
        "MEDIUM",
        "CWE-200",
        "requirements.txt",
        "Proxy-Authorization headers leak to the destination after a redirect.",
    ),
    (
        "CVE-2024-3651",
        "idna",
        "3.6",
        "3.7",
        "MEDIUM",
        "CWE-400",
        "requirements.txt",
        "Quadratic time on crafted input to idna.encode().",
    ),
    (
        "CVE-2022-40897",
        "setuptools",
        "65.5.0",
        "65.5.1",
        "MEDIUM",
        "CWE-1333",
        "requirements.txt",
        "Regular-expression denial of service in package_index.",
    ),
    (
        "CVE-2023-28155",
        "request",
        "2.88.2",
        "",
        "MEDIUM",
        "CWE-918",
        "package-lock.json",
        "Cross-protocol redirects bypass SSRF protection; no fixed version exists.",
    ),
]

# (rule, title, severity, file path, line)
SECRETS = [
    ("aws-access-token", "Hard coded secret: aws-access-token", "CRITICAL", "deploy/env.sh", 12),
    ("private-key", "Hard coded secret: private-key", "CRITICAL", "certs/staging.key", 1),
    ("slack-webhook-url", "Hard coded secret: slack-webhook-url", "High", "scripts/notify.sh", 4),
    (
        "generic-api-key",
        "Hard coded secret: generic-api-key",
        "High",
        "tests/fixtures/partner.json",
        7,
    ),
    ("github-pat", "Hard coded secret: github-pat", "High", ".github/workflows/release.yml", 22),
]

# (check, title, severity, cwe, file path, line)
IAC = [
    (
        "CKV_AWS_20",
        "S3 bucket allows public READ access",
        "HIGH",
        "CWE-284",
        "terraform/storage.tf",
        14,
    ),
    (
        "CKV_AWS_24",
        "Security group allows SSH from 0.0.0.0/0",
        "HIGH",
        "CWE-284",
        "terraform/network.tf",
        31,
    ),
    (
        "CKV_AWS_19",
        "S3 bucket is not encrypted at rest",
        "MEDIUM",
        "CWE-311",
        "terraform/storage.tf",
        14,
    ),
    (
        "CKV_K8S_20",
        "Container allows privilege escalation",
        "MEDIUM",
        "CWE-250",
        "k8s/api-deployment.yaml",
        40,
    ),
    ("CKV_K8S_43", "Image is not pinned by digest", "LOW", "", "k8s/api-deployment.yaml", 38),
    ("CKV_DOCKER_2", "No HEALTHCHECK in the Dockerfile", "LOW", "", "docker/api.Dockerfile", 1),
    ("CKV_AWS_126", "EC2 detailed monitoring is disabled", "INFO", "", "terraform/compute.tf", 9),
    ("CKV_AWS_18", "S3 access logging is disabled", "INFO", "", "terraform/storage.tf", 14),
]

# Streams: (repository, branch, scan type, envelope). Each gets DEMO_BUILDS successive scans.
STREAMS = [
    ("acme/web-shop", "main", "SAST", "documented"),
    ("acme/web-shop", "main", "SCA", "cli"),
    ("acme/web-shop", "main", "SECRETS", "cli"),
    ("acme/web-shop", "feature/checkout-v2", "SAST", "documented"),
    ("acme/payments-api", "main", "SAST", "cli"),
    ("acme/payments-api", "main", "SCA", "cli"),
    ("acme/payments-api", "release/2.4", "SCA", "documented"),
    ("acme/infra", "main", "IAC", "cli"),
    ("acme/infra", "main", "SECRETS", "documented"),
    ("acme/mobile-app", "main", "SAST", "documented"),
    ("acme/mobile-app", "develop", "SCA", "cli"),
]
DEMO_BUILDS = 3
# Fixed, so that every demo looks the same and a test can rely on its shape.
SEED = 14

CLI_SCAN_TYPE = {"SAST": "SAST", "SCA": "SCA", "SECRETS": "Secrets", "IAC": "IaC"}


def _short_id(*parts: str) -> str:
    """A finding id shaped like the official CLI's: 12 hex digits of a SHA-256."""
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:12]


def _catalogue(repository: str, scan_type: str) -> list[dict[str, Any]]:
    """Every finding the stream's scanner could report, as scanner-neutral dicts."""
    prefix = repository.split("/", 1)[1].replace("-", "_")
    if scan_type == "SAST":
        mobile = repository.endswith("mobile-app")
        return [
            {
                "finding_id": _short_id(repository, rule, path),
                "title": title,
                "severity": severity,
                "file_path": path if mobile else f"{prefix}/{path}",
                "line_number": line,
                "cwe": [cwe] if cwe else [],
                "description": f"Semgrep rule {rule} matched.",
                "mitigation": "See the rule's documentation for the safe pattern.",
                "vuln_details": [{"rule_id": rule, "engine": "opengrep"}],
            }
            for rule, title, severity, cwe, path, line in SAST
            # The Android app gets the Kotlin rules, the web services the others.
            if rule.startswith("kotlin.") == mobile
        ]
    if scan_type == "SCA":
        return [
            {
                "finding_id": _short_id(manifest, cve, package),
                "title": f"{cve} - {package}",
                "severity": severity,
                "file_path": manifest,
                "line_number": None,
                "component_name": package,
                "component_version": installed,
                "component_fix": fixed or None,
                "cve": cve,
                "cwe": [cwe],
                "description": summary,
                "mitigation": f"Update the package {package} if it has fix. Fixed in: "
                + (fixed or "No fix"),
            }
            for cve, package, installed, fixed, severity, cwe, manifest, summary in SCA
        ]
    if scan_type == "SECRETS":
        return [
            {
                "finding_id": _short_id(path, rule),
                "title": title,
                "severity": severity,
                "file_path": path,
                "line_number": line,
                "cwe": ["CWE-798"],
                "description": f"gitleaks rule {rule} matched a committed credential.",
                "mitigation": "Remove the secret from the code and rotate it",
                "security_scope": "Code",
            }
            for rule, title, severity, path, line in SECRETS
        ]
    return [
        {
            "finding_id": _short_id(repository, check, path),
            "title": title,
            "severity": severity,
            "file_path": path,
            "line_number": line,
            "cwe": [cwe] if cwe else [],
            "description": f"Checkov check {check} failed.",
            "mitigation": f"See {check} in the Checkov policy index.",
        }
        for check, title, severity, cwe, path, line in IAC
    ]


def _builds(rng: random.Random, pool: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Successive scans of one stream: most findings stay, a few are fixed, a few appear."""
    rng.shuffle(pool)
    present = pool[: max(3, len(pool) - 3)]
    waiting = pool[len(present) :]
    for build in range(DEMO_BUILDS):
        yield list(present)
        if build < DEMO_BUILDS - 1:
            fixed = rng.sample(present, k=rng.choice((0, 1, 1, 2)))
            present = [f for f in present if f not in fixed]
            if waiting:
                present.append(waiting.pop())


def _body(
    stream: tuple[str, str, str, str],
    findings: list[dict[str, Any]],
    build_id: str,
    first_seen: dict[str, datetime],
) -> bytes:
    repository, branch, scan_type, envelope = stream
    metadata: dict[str, Any] = {
        "repository_name": repository,
        "branch_name": branch,
        "build_id": build_id,
        "code_path": ".",
        "scan_type": scan_type,
        "commit_hash": hashlib.sha1(f"{repository}{branch}{build_id}".encode()).hexdigest(),  # noqa: S324
        "commit_author": "ci-bot",
    }
    if envelope == "documented":
        items = [{**f, "creation_date": first_seen[f["finding_id"]].isoformat()} for f in findings]
        return json.dumps({"metadata": metadata, "findings": items}).encode()
    # The official CLI: its envelope, its casing, zone-less dates, the metadata copied into
    # every finding.
    items = [
        {
            **f,
            "scan_type": CLI_SCAN_TYPE[scan_type],
            "repository_name": repository,
            "branch_name": branch,
            "build_id": build_id,
            "active": True,
            "mitigated": False,
            "false_positive": False,
            "creation_date": first_seen[f["finding_id"]].replace(tzinfo=None).isoformat(),
        }
        for f in findings
    ]
    metadata |= {"cicd_platform": "github-actions", "scan_duration": 41.7}
    return json.dumps({"findings_data": {"scan_metadata": metadata, "findings": items}}).encode()


@dataclass
class DemoResult:
    uploads: int = 0
    created: int = 0
    mitigated: int = 0
    triaged: int = 0
    repositories: set[str] = field(default_factory=set)
    streams: int = 0
    user_created: bool = False
    api_key: ApiKey | None = None
    plaintext_key: str = ""


# Staff decisions the demo records: (title, action, reason).
TRIAGE = [
    (
        "Hard coded secret: generic-api-key",
        TriageAction.FALSE_POSITIVE,
        "A dummy key in a test fixture; it never worked against the partner's API.",
    ),
    (
        "CVE-2023-28155 - request",
        TriageAction.RISK_ACCEPTED,
        "No fixed version exists; we never follow redirects with it. Replace by Q3.",
    ),
    (
        "S3 bucket allows public READ access",
        TriageAction.RISK_ACCEPTED,
        "The bucket serves the public marketing site; public read is intended.",
    ),
    (
        "django-debug-toolbar listed in INSTALLED_APPS",
        TriageAction.FALSE_POSITIVE,
        "Only added when DEBUG is on; production settings never install it.",
    ),
]


def demo_seed(*, username: str, password: str) -> DemoResult:
    """Fill the database with the demo: a staff user (unless `username` exists), a CI key,
    DEMO_BUILDS scans of every stream in STREAMS, and a few triage decisions. Each upload is
    atomic, as in production; the demo as a whole is not."""
    result = DemoResult()
    rng = random.Random(SEED)  # noqa: S311 (demo data: reproducible on purpose, not secret)
    now = timezone.now()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_superuser(username, f"{username}@example.com", password)
        result.user_created = True
    client_id = "demo-ci"
    if ApiKey.objects.filter(client_id=client_id).exists():
        client_id = f"demo-ci-{secrets.token_hex(3)}"
    result.api_key, result.plaintext_key = api_key_create(
        name="Demo CI",
        client_id=client_id,
        permissions=[Permission.WRITE_FINDINGS, Permission.READ_FINDINGS],
        expires_at=None,
        actor_name="manage.py seeddemo",
    )
    for stream in STREAMS:
        repository, _branch, scan_type, _envelope = stream
        pool = _catalogue(repository, scan_type)
        first_seen = {
            f["finding_id"]: now - timedelta(days=rng.randint(2, 60), minutes=rng.randint(0, 1439))
            for f in pool
        }
        build_number = rng.randint(100, 900)
        for offset, findings in enumerate(_builds(rng, pool)):
            ingested = findings_ingest(
                body=_body(stream, findings, str(build_number + offset), first_seen),
                api_key=result.api_key,
                client_id=client_id,
                repository_patterns=result.api_key.repository_patterns,
            ).as_response()
            result.uploads += 1
            result.created += ingested["created"]
            result.mitigated += ingested["mitigated"]
        result.repositories.add(repository)
        result.streams += 1
    for title, action, reason in TRIAGE:
        for finding in Finding.objects.filter(title=title, active=True).order_by("pk"):
            finding_triage(finding_id=finding.pk, action=action, actor=user, reason=reason)
            result.triaged += 1
    return result
