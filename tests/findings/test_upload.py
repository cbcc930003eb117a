"""POST /api/v1/findings: the three envelopes, normalisation, and what the 201 says."""

from datetime import UTC, datetime

import pytest

from findings.models import Finding, Stream, Upload
from tests.findings.conftest import (
    CLI_IAC,
    CLI_SAST,
    CLI_SCA,
    CLI_SECRET,
    cli_body,
    documented_body,
    post,
    sast,
)

pytestmark = pytest.mark.django_db

SPEC_EXAMPLE = {
    "metadata": {
        "repository_name": "my-org/my-repo",
        "branch_name": "main",
        "build_id": "1234",
        "code_path": "src/",
        "scan_type": "SAST",
        "commit_hash": "a1b2c3d",
        "commit_author": "dev@example.com",
    },
    "findings": [
        {
            "finding_id": "sast-001",
            "title": "SQL injection in login handler",
            "severity": "HIGH",
            "file_path": "src/auth/login.py",
            "line_number": 42,
        }
    ],
}


def test_the_documented_example_is_stored_and_counted(client, writer):
    response = post(client, writer, SPEC_EXAMPLE)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"upload_id", "received", "created", "updated", "reactivated", "mitigated"}
    assert (body["received"], body["created"], body["updated"]) == (1, 1, 0)
    assert (body["reactivated"], body["mitigated"]) == (0, 0)
    finding = Finding.objects.get()
    assert (finding.repository_name, finding.branch_name, finding.scan_type) == (
        "my-org/my-repo",
        "main",
        "SAST",
    )
    assert (finding.finding_id, finding.severity, finding.line_number) == ("sast-001", "HIGH", 42)
    assert finding.active
    assert not finding.mitigated
    upload = Upload.objects.get(pk=body["upload_id"])
    assert (upload.client_id, upload.build_id, upload.commit_hash) == (
        "ci-writer",
        "1234",
        "a1b2c3d",
    )
    assert upload.envelope == "documented"
    assert finding.first_seen_upload_id == upload.pk


@pytest.mark.parametrize("legacy", [False, True], ids=["scan_metadata", "legacy-metadata"])
@pytest.mark.parametrize(
    ("finding", "scan_type"),
    [(CLI_SECRET, "SECRETS"), (CLI_SAST, "SAST"), (CLI_SCA, "SCA"), (CLI_IAC, "IAC")],
    ids=["secrets", "sast", "sca", "iac"],
)
def test_the_official_clis_envelopes_are_accepted(client, writer, legacy, finding, scan_type):
    # The CLI sends no scan_type in its metadata: it is inferred from the findings.
    response = post(client, writer, cli_body([finding], legacy=legacy))
    assert response.status_code == 201, response.content
    stored = Finding.objects.get()
    assert stored.scan_type == scan_type
    assert stored.finding_id == finding["finding_id"]
    upload = Upload.objects.get()
    assert upload.envelope == ("cli-legacy" if legacy else "cli")
    assert upload.build_id is None  # the CLI's unset CI variable did not lose the upload
    assert upload.cicd_platform == "github-actions"
    assert upload.scan_duration == 41.7


def test_cli_values_are_normalised(client, writer):
    response = post(client, writer, cli_body([CLI_SECRET, CLI_SCA | {"scan_type": "Secrets"}]))
    assert response.status_code == 201, response.content
    secret = Finding.objects.get(finding_id=CLI_SECRET["finding_id"])
    assert secret.severity == "CRITICAL"  # "Critical"
    assert secret.scan_type == "SECRETS"  # "Secrets"
    # "2026-11-28T09:14:03" without a zone is UTC.
    assert secret.creation_date == datetime(2026, 11, 28, 9, 14, 3, tzinfo=UTC)
    assert secret.cwe == ["CWE-798"]
    assert secret.cve == []
    sca = Finding.objects.get(finding_id=CLI_SCA["finding_id"])
    assert sca.cve == ["CVE-2021-44228"]  # a string becomes a list
    assert sca.cwe == ["CWE-502", "CWE-400"]
    assert sca.creation_date == datetime(2026, 11, 28, tzinfo=UTC)  # a date alone: midnight UTC
    assert (sca.component_name, sca.component_version, sca.component_fix) == (
        "org.apache.logging.log4j:log4j-core",
        "2.14.1",
        "2.17.1",
    )


def test_what_the_scanner_sent_is_kept_unknown_fields_included(client, writer):
    post(client, writer, cli_body([CLI_IAC]))
    finding = Finding.objects.get()
    # Everything it sent with a value (nulls carry nothing and are not kept).
    assert finding.scanner_data == {k: v for k, v in CLI_IAC.items() if v is not None}
    assert finding.scanner_data["resource"] == "aws_s3_bucket.reports"
    assert finding.severity == "MEDIUM"


def test_missing_severity_defaults_to_info(client, writer):
    post(client, writer, documented_body([{"finding_id": "x", "title": "No severity given"}]))
    assert Finding.objects.get().severity == "INFO"


def test_the_metadata_defines_the_upload_a_findings_own_copies_stay_raw(client, writer):
    finding = sast(1)[0] | {"branch_name": "feature/x", "build_id": "999", "code_path": "other"}
    post(client, writer, documented_body([finding], branch="main", build_id="7"))
    stored = Finding.objects.get()
    assert stored.branch_name == "main"
    assert stored.first_seen_build_id == "7"
    assert stored.scanner_data["branch_name"] == "feature/x"


def test_a_finding_id_twice_in_one_upload_counts_once_and_the_last_wins(client, writer):
    findings = [
        {"finding_id": "dup", "title": "first", "severity": "LOW"},
        {"finding_id": "other", "title": "other"},
        {"finding_id": "dup", "title": "second", "severity": "HIGH"},
    ]
    body = post(client, writer, documented_body(findings)).json()
    assert (body["received"], body["duplicates"], body["created"]) == (3, 1, 2)
    dup = Finding.objects.get(finding_id="dup")
    assert (dup.title, dup.severity) == ("second", "HIGH")


def test_a_finding_id_twice_in_a_later_scan_also_counts_once_and_the_last_wins(client, writer):
    first = [{"finding_id": "dup", "title": "first"}, {"finding_id": "gone", "title": "gone"}]
    assert post(client, writer, documented_body(first, build_id="1")).status_code == 201
    again = [
        {"finding_id": "dup", "title": "first"},
        {"finding_id": "new", "title": "new"},
        {"finding_id": "dup", "title": "changed", "severity": "CRITICAL"},
        {"finding_id": "new", "title": "new, last"},
    ]
    body = post(client, writer, documented_body(again, build_id="2")).json()
    assert (body["received"], body["duplicates"]) == (4, 2)
    assert (body["created"], body["updated"], body["mitigated"]) == (1, 1, 1)
    stored = dict(Finding.objects.values_list("finding_id", "title"))
    assert stored == {"dup": "changed", "new": "new, last", "gone": "gone"}
    assert Finding.objects.get(finding_id="dup").severity == "CRITICAL"
    assert not Finding.objects.get(finding_id="gone").active


@pytest.mark.parametrize(
    "build_id",
    [None, 1234, "", "b-77", "missing"],
    ids=["null", "number", "empty", "text", "missing"],
)
def test_build_ids_as_ci_systems_send_them(client, writer, build_id):
    body = documented_body(sast(1), build_id=build_id)
    if build_id == "missing":
        del body["metadata"]["build_id"]  # an unset CI variable must not lose the upload
    response = post(client, writer, body)
    assert response.status_code == 201, response.content
    expected = {None: None, 1234: "1234", "": None, "b-77": "b-77", "missing": None}[build_id]
    assert Upload.objects.get().build_id == expected


def test_an_odd_scan_duration_is_kept_as_sent_not_refused(client, writer):
    body = documented_body(sast(1))
    body["metadata"]["scan_duration"] = "41.7s"
    assert post(client, writer, body).status_code == 201
    upload = Upload.objects.get()
    assert upload.scan_duration is None
    assert upload.metadata["scan_duration"] == "41.7s"


def test_repository_and_branch_names_are_trimmed(client, writer):
    post(client, writer, documented_body(sast(1), repository=" acme/x ", branch="main "))
    post(client, writer, documented_body(sast(1), repository="acme/x", branch="main"))
    assert Finding.objects.count() == 1
    assert Finding.objects.get().repository_name == "acme/x"


def test_same_finding_id_in_another_branch_or_scan_type_is_another_finding(client, writer):
    post(client, writer, documented_body(sast(2), branch="main"))
    post(client, writer, documented_body(sast(2), branch="release/1.0"))
    post(client, writer, documented_body(sast(2), branch="main", scan_type="SCA"))
    assert Finding.objects.count() == 6
    assert Stream.objects.count() == 3


def test_the_request_can_say_its_content_type_with_a_charset(client, writer):
    response = post(
        client, writer, documented_body(sast(1)), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201


def test_the_readers_rows_and_the_write_paths_columns_agree():
    """Readers build rows by position (findings.normalize.Row), the write path names the
    columns (findings.merge.ROW_COLUMNS): a row value read under the wrong name would store
    a finding's digest as its state, or its severity as its title."""
    from findings import normalize
    from findings.merge import ROW_COLUMNS

    names = [name for name, _ in ROW_COLUMNS]
    assert names.index("finding_id") == normalize.ROW_FINDING_ID
    assert names.index("severity") == normalize.ROW_SEVERITY
    assert names.index("content_hash") == normalize.ROW_CONTENT_HASH
    assert names.index("seen_active") == normalize.ROW_SEEN_ACTIVE == len(names) - 1
