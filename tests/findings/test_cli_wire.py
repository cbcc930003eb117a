"""The official CLI's uploads in their real wire shapes (tests/findings/fixtures/cli, built from
its parsers run on real scanner output): every scan type is stored completely, and a CLI
re-scan (new dates, build and commit on every finding) rewrites nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from findings.models import Finding, Upload
from tests.findings.conftest import post

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "cli"
CLI_FILES = {
    "sast": ("sast.json", "SAST"),
    "sca": ("sca.json", "SCA"),
    "secrets": ("secrets.json", "SECRETS"),
    "iac": ("iac.json", "IAC"),
    "sca-trivy-legacy-envelope": ("sca-trivy-legacy-envelope.json", "SCA"),
    "sca-osv-per-vulnerability": ("sca-osv-per-vulnerability.json", "SCA"),
}


def cli_upload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / CLI_FILES[name][0]).read_text())


def findings_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["findings_data"]["findings"]


def metadata_of(body: dict[str, Any]) -> dict[str, Any]:
    data = body["findings_data"]
    return data.get("scan_metadata") or data["metadata"]


def row_versions() -> dict[str, int]:
    """finding_id -> the row's xmin: it changes whenever PostgreSQL writes the row again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT finding_id, xmin::text::bigint FROM findings_finding")
        return dict(cursor.fetchall())


def rescan(body: dict[str, Any], *, build: str, when: str) -> dict[str, Any]:
    """The same scan run again by the CLI: it stamps every finding with the current time and
    copies the new build and commit into each."""
    again = copy.deepcopy(body)
    meta = metadata_of(again)
    meta.update(build_id=build, commit_hash="f" * 40, scan_duration=meta.get("scan_duration"))
    for finding in findings_of(again):
        finding.update(
            creation_date=when, last_update_date=when, build_id=build, commit_hash="f" * 40
        )
    return again


@pytest.mark.parametrize("name", list(CLI_FILES))
def test_every_scan_type_the_cli_sends_is_stored_completely(client, writer, name):
    body = cli_upload(name)
    expected_ids = {f["finding_id"] for f in findings_of(body)}
    response = post(client, writer, body)
    assert response.status_code == 201, response.content
    result = response.json()
    assert result["created"] == len(expected_ids)
    assert result["warnings"] == []
    meta = metadata_of(body)
    stored = Finding.objects.filter(
        repository_name=meta["repository_name"], branch_name=meta["branch_name"]
    )
    assert set(stored.values_list("finding_id", flat=True)) == expected_ids
    assert set(stored.values_list("scan_type", flat=True)) == {CLI_FILES[name][1]}
    # Severities are ours, whatever casing the CLI used ("High" for secrets).
    assert set(stored.values_list("severity", flat=True)) <= {
        "CRITICAL",
        "HIGH",
        "MEDIUM",
        "LOW",
        "INFO",
    }


def test_scan_all_stores_all_four_scan_types(client, writer):
    for name in ("sast", "sca", "secrets", "iac"):
        body = cli_upload(name)
        meta = metadata_of(body)
        meta.update(repository_name="acme/shop", branch_name="main")
        for finding in findings_of(body):
            finding.update(repository_name="acme/shop", branch_name="main")
        assert post(client, writer, body).status_code == 201
    stored = Finding.objects.filter(repository_name="acme/shop")
    assert sorted(set(stored.values_list("scan_type", flat=True))) == [
        "IAC",
        "SAST",
        "SCA",
        "SECRETS",
    ]


def test_semgrep_cwe_labels_are_stored_as_cwe_ids(client, writer):
    assert post(client, writer, cli_upload("sast")).status_code == 201
    assert Finding.objects.get(finding_id="9597b350b520").cwe == ["CWE-89"]
    assert Finding.objects.get(finding_id="48daca26622a").cwe == ["CWE-327", "CWE-696"]
    label = Finding.objects.get(finding_id="9597b350b520").scanner_data["cwe"][0]
    assert label.startswith("CWE-89: Improper Neutralization")  # the scanner's words, kept


def test_the_scanners_object_comes_back_whole_though_its_texts_are_stored_once(client, writer):
    body = cli_upload("sca")
    assert post(client, writer, body).status_code == 201
    for sent in findings_of(body):
        finding = Finding.objects.get(finding_id=sent["finding_id"])
        with_values = {k: v for k, v in sent.items() if v is not None}
        data = finding.scanner_data
        # The CLI's dates come back as the same instants (a naive time is UTC).
        for key in ("creation_date", "last_update_date"):
            assert data.pop(key).rstrip("0") == with_values.pop(key).rstrip("0")
        assert data == with_values
        # ...while the long texts are in their columns only, not twice.
        assert "description" not in finding.raw
        assert "title" not in finding.raw


def test_sca_packages_keep_their_ids_versions_fixes_and_details(client, writer):
    assert post(client, writer, cli_upload("sca")).status_code == 201
    guzzle = Finding.objects.get(finding_id="925447f1949c")
    assert guzzle.cve == ["CVE-2022-31090", "CVE-2022-29248", "CVE-2022-31042"]
    assert (guzzle.component_name, guzzle.component_version) == ("guzzlehttp/guzzle", "6.3.3")
    assert guzzle.component_fix == "6.5.8"
    assert [d["id"] for d in guzzle.scanner_data["vuln_details"]] == guzzle.cve
    assert Finding.objects.get(finding_id="9faa0c0b7c6f").cve == ["MAL-2023-1035"]


def test_a_72000_character_advisory_is_stored_truncated_with_a_warning_not_refused(client, writer):
    body = cli_upload("sca")
    advisory = "### Impact\n" + "A very long OSV advisory. " * 2770
    assert len(advisory) > 72_000
    findings_of(body)[2]["description"] = advisory
    response = post(client, writer, body)
    assert response.status_code == 201, response.content
    result = response.json()
    assert result["created"] == 5
    assert [w["path"] for w in result["warnings"]] == ["findings_data.findings[2].description"]
    stored = Finding.objects.get(finding_id=findings_of(body)[2]["finding_id"])
    assert stored.description == advisory[:65536]
    assert stored.scanner_data["description"] == advisory


def test_a_cli_rescan_rewrites_no_row_and_keeps_the_first_creation_date(client, writer):
    first = cli_upload("sca")
    assert post(client, writer, first).status_code == 201
    versions = row_versions()
    created = dict(Finding.objects.values_list("finding_id", "creation_date"))

    response = post(client, writer, rescan(first, build="2", when="2027-01-05T08:00:00"))
    assert response.status_code == 201
    counts = response.json()
    assert (counts["created"], counts["updated"], counts["mitigated"]) == (0, 5, 0)
    assert row_versions() == versions  # not one row written again
    assert dict(Finding.objects.values_list("finding_id", "creation_date")) == created
    # ...and each finding is last seen in the new build.
    api = client.get(
        "/api/v1/findings", {"limit": 10}, HTTP_AUTHORIZATION=f"Bearer {writer}"
    ).json()
    assert {item["last_seen_build_id"] for item in api} == {"2"}


def test_a_changed_finding_is_rewritten_but_keeps_when_it_was_first_reported(client, writer):
    first = cli_upload("sast")
    assert post(client, writer, first).status_code == 201
    target = findings_of(first)[6]["finding_id"]
    created = Finding.objects.get(finding_id=target).creation_date
    versions = row_versions()

    again = rescan(first, build="1", when="2027-01-05T08:00:00")
    findings_of(again)[6]["description"] = "Reworded by a newer rule version."
    counts = post(client, writer, again).json()
    assert counts["updated"] == len(findings_of(first))
    after = row_versions()
    assert [fid for fid in after if after[fid] != versions[fid]] == [target]
    finding = Finding.objects.get(finding_id=target)
    assert finding.description == "Reworded by a newer rule version."
    assert finding.creation_date == created


def test_uploads_record_the_clis_metadata(client, writer):
    body = cli_upload("secrets")
    assert post(client, writer, body).status_code == 201
    upload = Upload.objects.get()
    assert (upload.envelope, upload.build_id, upload.cicd_platform) == ("cli", "57", "jenkins")
    assert upload.commit_author == ""  # null in the CLI's metadata
    legacy = cli_upload("sca-trivy-legacy-envelope")
    assert post(client, writer, legacy).status_code == 201
    assert Upload.objects.order_by("-id").first().envelope == "cli-legacy"
