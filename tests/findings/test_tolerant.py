"""Strict on identity, tolerant on description: a field that only describes a finding never
costs a pipeline its upload. What real scanners send is normalised (or left out of its column),
the scanner's own value stays in the raw data, and the 201 body says what was done, by path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from findings.models import Finding, Upload
from tests.findings.conftest import documented_body, post, sast

pytestmark = pytest.mark.django_db

# (id, the finding's fields, what is stored, the warnings' paths under the finding: "" is the
# finding itself)
ODDITIES: list[tuple[str, dict[str, Any], dict[str, Any], str | tuple[str, ...] | None]] = [
    # Severities as scanners write them.
    ("severity-cli-casing", {"severity": "High"}, {"severity": "HIGH"}, None),
    ("severity-lower", {"severity": "critical"}, {"severity": "CRITICAL"}, None),
    ("severity-semgrep-error", {"severity": "ERROR"}, {"severity": "HIGH"}, "severity"),
    ("severity-semgrep-warning", {"severity": "WARNING"}, {"severity": "MEDIUM"}, "severity"),
    ("severity-semgrep-info", {"severity": "INFO"}, {"severity": "INFO"}, None),
    ("severity-trivy-unknown", {"severity": "UNKNOWN"}, {"severity": "INFO"}, "severity"),
    ("severity-npm-moderate", {"severity": "moderate"}, {"severity": "MEDIUM"}, "severity"),
    ("severity-grype-negligible", {"severity": "Negligible"}, {"severity": "INFO"}, "severity"),
    ("severity-cvss-number", {"severity": 9.8}, {"severity": "CRITICAL"}, "severity"),
    ("severity-cvss-string", {"severity": "7.5"}, {"severity": "HIGH"}, "severity"),
    ("severity-cvss-medium", {"severity": 4.0}, {"severity": "MEDIUM"}, "severity"),
    ("severity-unknown-word", {"severity": "URGENT"}, {"severity": "INFO"}, "severity"),
    ("severity-a-list", {"severity": ["HIGH"]}, {"severity": "INFO"}, "severity"),
    ("severity-blank", {"severity": ""}, {"severity": "INFO"}, None),
    # CWE ids in every form scanners use.
    (
        "cwe-semgrep-label",
        {"cwe": ["CWE-89: Improper Neutralization of Special Elements used in an SQL Command"]},
        {"cwe": ["CWE-89"]},
        None,
    ),
    ("cwe-one-string", {"cwe": "CWE-79"}, {"cwe": ["CWE-79"]}, None),
    ("cwe-bare-number", {"cwe": 79}, {"cwe": ["CWE-79"]}, None),
    ("cwe-numeric-strings", {"cwe": ["79", "cwe-89"]}, {"cwe": ["CWE-79", "CWE-89"]}, None),
    ("cwe-codeql-tag", {"cwe": ["external/cwe/cwe-079"]}, {"cwe": ["CWE-79"]}, None),
    ("cwe-repeated", {"cwe": ["CWE-79", 79]}, {"cwe": ["CWE-79"]}, None),
    ("cwe-junk", {"cwe": ["not-a-cwe", "CWE-22"]}, {"cwe": ["CWE-22"]}, "cwe"),
    ("cwe-an-object", {"cwe": {"id": 79}}, {"cwe": []}, "cwe"),
    # CVE ids: a list, or one string holding several.
    ("cve-one-string", {"cve": "CVE-2021-44228"}, {"cve": ["CVE-2021-44228"]}, None),
    (
        "cve-comma-separated",
        {"cve": "CVE-2021-44228, CVE-2021-45046"},
        {"cve": ["CVE-2021-44228", "CVE-2021-45046"]},
        None,
    ),
    (
        "cve-space-separated",
        {"cve": "CVE-2021-44228 CVE-2021-45046"},
        {"cve": ["CVE-2021-44228", "CVE-2021-45046"]},
        None,
    ),
    ("cve-osv-ids", {"cve": ["GHSA-43fp-rhv2-5gv8"]}, {"cve": ["GHSA-43fp-rhv2-5gv8"]}, None),
    ("cve-blank", {"cve": " "}, {"cve": []}, None),
    ("cve-an-object", {"cve": {"id": "CVE-1"}}, {"cve": []}, "cve"),
    ("cve-a-number-in-list", {"cve": ["CVE-2020-1", 5]}, {"cve": ["CVE-2020-1"]}, "cve"),
    # Line numbers.
    ("line-numeric-string", {"line_number": "12"}, {"line_number": 12}, "line_number"),
    ("line-whole-float", {"line_number": 12.0}, {"line_number": 12}, "line_number"),
    ("line-fraction", {"line_number": 1.5}, {"line_number": None}, "line_number"),
    ("line-negative", {"line_number": -1}, {"line_number": None}, "line_number"),
    ("line-huge", {"line_number": 2**40}, {"line_number": None}, "line_number"),
    ("line-bool", {"line_number": True}, {"line_number": None}, "line_number"),
    ("line-text", {"line_number": "L12"}, {"line_number": None}, "line_number"),
    ("line-zero-is-unknown-but-kept", {"line_number": 0}, {"line_number": 0}, None),
    # Text: numbers, NUL, over-long values.
    ("title-a-number", {"title": 42}, {"title": "42"}, "title"),
    ("title-10k", {"title": "x" * 10_000}, {"title": "x" * 2000}, "title"),
    ("title-nul", {"title": "bad\x00title"}, {"title": "bad\ufffdtitle"}, ("title", "")),
    (
        "file-path-10k",
        {"file_path": "a/" * 5_000},
        {"file_path": ("a/" * 5_000)[:4096]},
        "file_path",
    ),
    (
        "component-version-number",
        {"component_version": 1.2},
        {"component_version": "1.2"},
        "component_version",
    ),
    ("description-a-list", {"description": ["a", "b"]}, {"description": ""}, "description"),
    # Dates.
    (
        "date-only",
        {"creation_date": "2026-11-28"},
        {"creation_date": "2026-11-28T00:00:00+00:00"},
        None,
    ),
    ("date-garbage", {"creation_date": "yesterday"}, {"creation_date": None}, "creation_date"),
    ("date-epoch", {"creation_date": 1700000000}, {"creation_date": None}, "creation_date"),
    (
        "date-year-1-east",
        {"creation_date": "0001-01-01T00:00:00+14:00"},
        {"creation_date": None},
        "creation_date",
    ),
    (
        "date-year-9999-west",
        {"last_update_date": "9999-12-31T23:59:59-14:00"},
        {"last_update_date": None},
        "last_update_date",
    ),
    ("date-year-1000", {"creation_date": "1000-01-01"}, {"creation_date": None}, "creation_date"),
    # The scanner's own state.
    ("active-string", {"active": "false"}, {"active": False}, "active"),
    ("active-junk", {"active": "yes"}, {"active": True}, "active"),
    ("false-positive-junk", {"false_positive": 3}, {"false_positive": False}, "false_positive"),
    # Unknown fields: stored as sent, whatever they hold.
    ("unknown-nested-300", {"extra": "nested-300"}, {}, None),
    ("unknown-nul", {"extra": {"deep": ["ok", "bad\x00"]}}, {}, ""),
    ("unknown-big-number", {"extra": 10**40}, {}, None),
]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def stored_value(finding: Finding, field: str) -> Any:
    value = getattr(finding, field)
    return value.isoformat() if hasattr(value, "isoformat") else value


@pytest.mark.parametrize(
    ("fields", "expected", "warning"),
    [case[1:] for case in ODDITIES],
    ids=[case[0] for case in ODDITIES],
)
def test_a_descriptive_oddity_is_stored_normalised_with_a_warning(
    client, writer, fields, expected, warning
):
    findings = sast(3)
    oddity = dict(fields)
    if oddity.get("extra") == "nested-300":
        oddity["extra"] = nested(300)
    findings[1].update(oddity)
    response = post(client, writer, documented_body(findings))
    assert response.status_code == 201, response.content
    result = response.json()
    assert result["created"] == 3
    paths = [w["path"] for w in result["warnings"]]
    expected_paths = [warning] if isinstance(warning, str) else list(warning or ())
    assert paths == [f"findings[1].{p}" if p else "findings[1]" for p in expected_paths]
    assert all(w["message"] for w in result["warnings"])
    assert result["warning_total"] == len(paths)
    finding = Finding.objects.get(finding_id="f1")
    for field, value in expected.items():
        assert stored_value(finding, field) == value
    # The scanner's own value is kept as it sent it (NUL aside: PostgreSQL cannot hold it).
    for key, value in oddity.items():
        if "\\u0000" not in json.dumps(value):
            assert finding.scanner_data[key] == value
        else:
            assert "\\u0000" not in json.dumps(finding.scanner_data[key])


def test_the_same_finding_normalised_two_ways_is_not_rewritten(client, writer):
    """A numeric-string line one day and a number the next say the same thing."""
    findings = sast(2)
    findings[1]["line_number"] = "7"
    assert post(client, writer, documented_body(findings, build_id="1")).status_code == 201
    findings[1]["line_number"] = 7
    result = post(client, writer, documented_body(findings, build_id="2")).json()
    assert (result["created"], result["updated"], result["warnings"]) == (0, 2, [])
    assert Finding.objects.get(finding_id="f1").scanner_data["line_number"] == "7"  # not rewritten


def test_warnings_are_capped_but_counted(client, writer):
    findings = sast(300, severity="ERROR")
    result = post(client, writer, documented_body(findings)).json()
    assert result["created"] == 300
    assert len(result["warnings"]) == 100
    assert result["warning_total"] == 300


def test_descriptive_metadata_is_tolerated_too(client, writer):
    body = documented_body(sast(1))
    del body["metadata"]["code_path"]
    body["metadata"].update(
        build_id=12345, commit_hash=["not", "a", "hash"], scan_duration="fast", cicd_platform=7
    )
    response = post(client, writer, body)
    assert response.status_code == 201, response.content
    assert sorted(w["path"] for w in response.json()["warnings"]) == [
        "metadata.cicd_platform",
        "metadata.code_path",
        "metadata.commit_hash",
        "metadata.scan_duration",
    ]
    upload = Upload.objects.get()
    assert (upload.build_id, upload.code_path, upload.commit_hash) == ("12345", "", "")
    assert upload.metadata["commit_hash"] == ["not", "a", "hash"]  # kept as sent


# --- what an outside probe sent: every one of these was a 500 or a lost upload -------------


def raw_body(finding_json: bytes, metadata_extra: bytes = b"") -> bytes:
    """A documented body with one finding given as JSON text (for bytes json.dumps would not
    write: invalid UTF-8, lone surrogates, huge numbers)."""
    return (
        b'{"metadata": {"repository_name": "acme/payments", "branch_name": "main", '
        b'"build_id": "1", "code_path": ".", "scan_type": "SCA"'
        + metadata_extra
        + b'}, "findings": [{"finding_id": "f0", "title": "ok"}, '
        + finding_json
        + b"]}"
    )


@pytest.mark.parametrize(
    ("finding", "stored", "warning_paths"),
    [
        (
            b'{"finding_id": "u1", "title": "t", "description": "caf\xe9"}',
            {"description": "caf\ufffd"},
            ["findings[1]"],
        ),
        (
            b'{"finding_id": "u1", "title": "t", "vuln_details": [{"summary": "caf\xe9"}]}',
            {},
            ["findings[1]"],
        ),
        (
            b'{"finding_id": "u1", "title": "t", "description": "caf\\udce9"}',
            {"description": "caf\ufffd"},
            ["$"],
        ),
        (
            b'{"finding_id": "u1", "title": "t", "creation_date": "0001-01-01T00:00:00"}',
            {"creation_date": None},
            ["findings[1].creation_date"],
        ),
        (
            b'{"finding_id": "u1", "title": "t", "severity": 1' + b"0" * 400 + b"}",
            {"severity": "INFO"},
            ["findings[1].severity"],
        ),
        (b'{"finding_id": "u1", "title": "t", "extra": 1e400}', {}, []),
    ],
    ids=[
        "latin1-in-description",
        "latin1-in-vuln-details",
        "lone-surrogate-escape",
        "year-1-naive-date",
        "severity-400-digits",
        "unknown-field-1e400",
    ],
)
def test_bytes_and_values_no_scanner_should_send_still_store_the_upload(
    client, writer, finding, stored, warning_paths
):
    response = post(client, writer, raw_body(finding))
    assert response.status_code == 201, response.content
    assert [w["path"] for w in response.json()["warnings"]] == warning_paths
    saved = Finding.objects.get(finding_id="u1")
    for field, value in stored.items():
        assert getattr(saved, field) == value
    if b"1e400" in finding:
        assert saved.scanner_data["extra"] == "1e400"  # kept, as its text


def test_an_identity_that_is_not_utf8_is_refused(client, writer):
    response = post(client, writer, raw_body(b'{"finding_id": "caf\xe9", "title": "t"}'))
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["findings[1].finding_id"]
    assert Finding.objects.count() == 0


def test_metadata_with_nul_or_numbers_python_will_not_hold_is_stored(client, writer):
    body = raw_body(
        b'{"finding_id": "u1", "title": "t"}',
        b', "commit_author": "a\\u0000b", "ci": {"run": 1e400}',
    )
    response = post(client, writer, body)
    assert response.status_code == 201, response.content
    assert sorted(w["path"] for w in response.json()["warnings"]) == [
        "metadata",  # 1e400 kept as its text
        "metadata",  # the NUL replaced in what is stored
        "metadata.commit_author",  # ...and in the column
    ]
    upload = Upload.objects.get()
    assert upload.commit_author == "a\ufffdb"
    assert upload.metadata["ci"] == {"run": "1e400"}


def test_a_finding_holding_a_number_of_5000_digits_does_not_break_the_staff_pages(
    client, writer, django_user_model
):
    huge = b"9" * 5000
    body = raw_body(b'{"finding_id": "u1", "title": "t", "vuln_details": [' + huge + b"]}")
    assert post(client, writer, body).status_code == 201
    staff = django_user_model.objects.create_superuser("lead", "lead@example.test", "pw-12345")
    client.force_login(staff)
    finding = Finding.objects.get(finding_id="u1")
    for url in ("/findings/?status=", f"/findings/{finding.pk}/", "/admin/findings/finding/"):
        assert client.get(url).status_code == 200, url
    assert finding.scanner_data["vuln_details"] == [huge.decode()]
