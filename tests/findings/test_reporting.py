"""GET /api/v1/reporting/findings, the path the newest official CLI's `report` command calls:
the same findings as GET /api/v1/findings, with `severity` as a minimum (the CLI documents
`--severity HIGH` as HIGH and above), and the same minimum as `min_severity` on the main
endpoint."""

from __future__ import annotations

import pytest

from tests.apikeys.conftest import token_for
from tests.factories import make_api_key
from tests.findings.conftest import documented_body, post

pytestmark = pytest.mark.django_db

REPORT = "/api/v1/reporting/findings"
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]


@pytest.fixture
def stored(client, writer):
    findings = [{"finding_id": s.lower(), "title": f"{s} one", "severity": s} for s in SEVERITIES]
    body = documented_body(findings, repository="acme/cardmarket-api", branch="feature/x")
    assert post(client, writer, body).status_code == 201
    iac = [{"finding_id": "tf-1", "title": "Open ingress", "severity": "High", "scan_type": "IaC"}]
    body = documented_body(
        iac, repository="acme/cardmarket-api", branch="feature/x", scan_type=None
    )
    assert post(client, writer, body).status_code == 201


def report(client, token, path=REPORT, **params):
    response = client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_clis_report_request_gets_critical_and_high_for_severity_high(client, reader, stored):
    # Exactly what `gerion report --severity HIGH` sends (see the CLI's commands/report.py).
    items = report(
        client,
        reader,
        repository_name="acme/cardmarket-api",
        branch_name="feature/x",
        severity="HIGH",
        active_only="true",
        limit=1000,
    )
    assert isinstance(items, list)
    assert sorted((i["finding_id"], i["severity"]) for i in items) == [
        ("critical", "CRITICAL"),
        ("high", "HIGH"),
        ("tf-1", "HIGH"),
    ]
    for item in items:  # the CLI calls .lower()/.upper() on these: never null
        for field in ("repository_name", "branch_name", "scan_type", "severity", "title"):
            assert isinstance(item[field], str)
        assert item["status"] == "Active"


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("CRITICAL", 1), ("high", 3), ("Medium", 4), ("LOW", 5), ("INFO", 6)],
    ids=["critical", "high-lower-case", "medium", "low", "info"],
)
def test_severity_is_a_minimum_in_any_case(client, reader, stored, severity, expected):
    assert len(report(client, reader, severity=severity)) == expected


def test_the_scan_type_filter_takes_the_clis_spelling(client, reader, stored):
    assert [i["finding_id"] for i in report(client, reader, scan_type="IAC")] == ["tf-1"]
    assert [i["finding_id"] for i in report(client, reader, scan_type="iac")] == ["tf-1"]


def test_limit_1000_is_honoured_and_the_rest_is_behind_a_link(client, writer, reader):
    findings = [{"finding_id": f"f{i}", "title": "x", "severity": "LOW"} for i in range(1200)]
    assert post(client, writer, documented_body(findings)).status_code == 201
    response = client.get(REPORT, {"limit": 1000}, HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert len(response.json()) == 1000
    assert 'rel="next"' in response["Link"]
    assert "/api/v1/reporting/findings?" in response["Link"]


def test_the_main_endpoint_takes_min_severity(client, reader, stored):
    items = report(client, reader, path="/api/v1/findings", min_severity="MEDIUM")
    assert sorted(i["severity"] for i in items) == ["CRITICAL", "HIGH", "HIGH", "MEDIUM"]
    # ...while `severity` there still means exactly these.
    items = report(client, reader, path="/api/v1/findings", severity="HIGH")
    assert sorted(i["finding_id"] for i in items) == ["high", "tf-1"]


@pytest.mark.parametrize(
    ("path", "params", "error_path"),
    [
        (REPORT, {"severity": "SEVERE"}, "severity"),
        (REPORT, {"severity": "HIGH,LOW"}, "severity"),
        (REPORT, {"limit": 1001}, "limit"),
        ("/api/v1/findings", {"min_severity": "URGENT"}, "min_severity"),
    ],
    ids=["unknown-severity", "a-list-is-not-a-minimum", "limit-over-1000", "min-severity-unknown"],
)
def test_bad_report_parameters_are_400_problems(client, reader, stored, path, params, error_path):
    response = client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["path"] for e in response.json()["errors"]] == [error_path]


def test_reporting_needs_read_findings(client, db):
    _, plaintext = make_api_key(client_id="ci-write-only", permissions=("write:findings",))
    write_only = token_for(client, plaintext, "ci-write-only")
    response = client.get(REPORT, HTTP_AUTHORIZATION=f"Bearer {write_only}")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert client.get(REPORT).status_code == 401
