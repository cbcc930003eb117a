"""Uploads as CI systems send them: the documented body and the official CLI's envelopes,
with SECRETS, SAST, SCA and IAC findings written from SPEC.md."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from django.test import Client

from tests.apikeys.conftest import token_for
from tests.factories import make_api_key

URL = "/api/v1/findings"

# What the official CLI sends for a gitleaks-style secret: CLI casing, zone-less dates, nulls.
CLI_SECRET = {
    "finding_id": "gitleaks-aws-access-key-3f9a1c",
    "title": "AWS Access Key ID committed",
    "severity": "Critical",
    "scan_type": "Secrets",
    "repository_name": "acme/payments",
    "branch_name": "main",
    "build_id": None,
    "code_path": ".",
    "active": True,
    "mitigated": False,
    "false_positive": False,
    "creation_date": "2026-11-28T09:14:03",
    "last_update_date": "2026-11-28T09:14:03",
    "file_path": "deploy/env.sh",
    "line_number": 12,
    "description": "An AWS access key id (AKIA...) is hard-coded.",
    "mitigation": "Revoke the key in IAM and load it from the CI secret store.",
    "security_scope": "credentials",
    "component_name": None,
    "component_version": None,
    "component_fix": None,
    "cwe": [798],
    "cve": None,
    "vuln_details": [{"rule": "aws-access-token", "entropy": 3.52}],
    "tags": None,
}

CLI_SAST = {
    "finding_id": "semgrep-python.django.sql-injection-7d2e",
    "title": "User input reaches a raw SQL query",
    "severity": "High",
    "scan_type": "SAST",
    "file_path": "payments/views.py",
    "line_number": 88,
    "creation_date": "2026-11-28T09:14:05.123456",
    "description": "request.GET['q'] flows into cursor.execute() without parameters.",
    "mitigation": "Use query parameters.",
    "security_scope": None,
    "component_name": None,
    "component_version": None,
    "component_fix": None,
    "cwe": ["CWE-89"],
    "cve": [],
    "vuln_details": [{"source": "request.GET", "sink": "cursor.execute", "confidence": "HIGH"}],
}

CLI_SCA = {
    "finding_id": "trivy-log4j-core-2.14.1-CVE-2021-44228",
    "title": "log4j-core: remote code execution via JNDI lookup (Log4Shell)",
    "severity": "CRITICAL",
    "scan_type": "SCA",
    "file_path": "services/ledger/pom.xml",
    "line_number": None,
    "creation_date": "2026-11-28",
    "description": "Apache Log4j2 JNDI features do not protect against attacker-controlled LDAP.",
    "mitigation": "Upgrade log4j-core to 2.17.1 or later.",
    "component_name": "org.apache.logging.log4j:log4j-core",
    "component_version": "2.14.1",
    "component_fix": "2.17.1",
    "cwe": [502, 400],
    "cve": "CVE-2021-44228",
    "vuln_details": [{"cvss": 10.0, "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
}

CLI_IAC = {
    "finding_id": "checkov-CKV_AWS_20-s3-public-read",
    "title": "S3 bucket allows public READ access",
    "severity": "medium",
    "scan_type": "IaC",
    "file_path": "infra/terraform/storage.tf",
    "line_number": 14,
    "description": "aws_s3_bucket.reports has acl = public-read.",
    "mitigation": "Set acl to private and use a bucket policy.",
    "security_scope": "cloud",
    "cwe": [],
    "cve": None,
    "resource": "aws_s3_bucket.reports",
}


def documented_body(
    findings: list[dict[str, Any]],
    *,
    repository: str = "acme/payments",
    branch: str = "main",
    build_id: Any = "101",
    scan_type: str | None = "SAST",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "repository_name": repository,
        "branch_name": branch,
        "build_id": build_id,
        "code_path": ".",
        "commit_hash": "3f2c9d1e",
        "commit_author": "dev@acme.test",
    }
    if scan_type is not None:
        metadata["scan_type"] = scan_type
    return {"metadata": metadata, "findings": copy.deepcopy(findings)}


def trivy_log(results: int) -> bytes:
    """A Trivy-like SARIF log: a rule per CVE (with its help text), a result per package."""
    rules = [
        {
            "id": f"CVE-2026-{10000 + i}",
            "shortDescription": {"text": f"CVE-2026-{10000 + i}: pkg-{i} allows a ReDoS"},
            "fullDescription": {"text": f"pkg-{i} before 2.0 allows a ReDoS. " * 5},
            "help": {"text": f"Vulnerability CVE-2026-{10000 + i}\nUpgrade pkg-{i}."},
            "properties": {"security-severity": "7.5", "tags": ["vulnerability", "CWE-400"]},
        }
        for i in range(results)
    ]
    return orjson.dumps(
        {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {"driver": {"name": "Trivy", "rules": rules}},
                    "results": [
                        {
                            "ruleId": rule["id"],
                            "ruleIndex": i,
                            "level": "error",
                            "message": {"text": f"Package: pkg-{i}\nInstalled Version: 1.0"},
                            "locations": [
                                {
                                    "physicalLocation": {
                                        "artifactLocation": {"uri": "package-lock.json"},
                                        "region": {"startLine": 1},
                                    }
                                }
                            ],
                        }
                        for i, rule in enumerate(rules)
                    ],
                }
            ],
        }
    )


def cli_body(findings: list[dict[str, Any]], *, legacy: bool = False, **metadata: Any) -> dict:
    meta = {
        "repository_name": "acme/payments",
        "branch_name": "main",
        "build_id": None,
        "code_path": ".",
        "commit_hash": "3f2c9d1e",
        "commit_author": "dev@acme.test",
        "cicd_platform": "github-actions",
        "scan_duration": 41.7,
        **metadata,
    }
    key = "metadata" if legacy else "scan_metadata"
    return {"findings_data": {key: meta, "findings": copy.deepcopy(findings)}}


def sast(n: int, **overrides: Any) -> list[dict[str, Any]]:
    """n SAST findings with ids f0..f(n-1)."""
    return [
        {
            "finding_id": f"f{i}",
            "title": f"Issue {i}",
            "severity": "High",
            "file_path": f"src/m{i}.py",
            "line_number": i + 1,
            **overrides,
        }
        for i in range(n)
    ]


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def writer(db):
    """A bearer token for a key with write:findings and read:findings."""
    _, plaintext = make_api_key(client_id="ci-writer")
    return token_for(Client(), plaintext, "ci-writer")


@pytest.fixture
def reader(db):
    _, plaintext = make_api_key(client_id="ci-reader", permissions=("read:findings",))
    return token_for(Client(), plaintext, "ci-reader")


def post(client: Client, token: str, body: Any, *, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(
        URL, data=data, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def get(client: Client, token: str, **params: Any):
    return client.get(URL, params, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def staff(db):
    """A staff member who may triage."""
    from django.contrib.auth.models import Permission

    from tests.factories import StaffFactory

    user = StaffFactory(username="analyst")
    user.user_permissions.add(Permission.objects.get(codename="triage_finding"))
    return user


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client
