"""Deduplication and lifecycle across uploads (SPEC: what the scanner cannot know)."""

import pytest
from django.utils import timezone

from findings.models import Finding, FindingEvent, Upload
from findings.selectors import with_last_seen
from tests.findings.conftest import documented_body, get, post, sast

pytestmark = pytest.mark.django_db


def upload(client, token, findings, build_id, **kwargs):
    response = post(client, token, documented_body(findings, build_id=build_id, **kwargs))
    assert response.status_code == 201, response.content
    return response.json()


def state(finding_id):
    finding = with_last_seen(Finding.objects.filter(finding_id=finding_id)).get()
    return finding


def test_uploading_the_same_scan_twice_stores_nothing_twice(client, writer):
    first = upload(client, writer, sast(50), "1")
    again = upload(client, writer, sast(50), "2")
    assert (first["created"], first["updated"]) == (50, 0)
    assert (again["created"], again["updated"], again["mitigated"]) == (0, 50, 0)
    assert Finding.objects.count() == 50
    assert Upload.objects.count() == 2
    # Re-seen findings carry the new build as their last sighting, the old one as first.
    finding = state("f7")
    assert (finding.first_seen_build_id, finding.seen_build_id) == ("1", "2")
    assert finding.seen_upload_id == again["upload_id"]
    assert finding.seen_at > finding.first_seen_at


def test_a_lifecycle_across_three_builds(client, writer):
    upload(client, writer, sast(3), "b1")  # f0 f1 f2 open
    second = upload(client, writer, sast(3)[:2], "b2")  # f2 fixed
    assert second["mitigated"] == 1
    gone = state("f2")
    assert (gone.active, gone.mitigated, gone.mitigated_on_build_id) == (False, True, "b2")
    assert gone.mitigated_in_upload_id == second["upload_id"]
    assert gone.seen_build_id == "b1"  # last seen where it last was
    assert gone.status == "Mitigated"

    third = upload(client, writer, sast(3), "b3")  # f2 is back
    assert (third["reactivated"], third["mitigated"], third["updated"]) == (1, 0, 3)
    back = state("f2")
    assert (back.active, back.mitigated, back.mitigated_on_build_id) == (True, False, None)
    assert back.seen_build_id == "b3"
    assert back.first_seen_build_id == "b1"
    history = list(FindingEvent.objects.filter(finding=back).values_list("kind", "build_id"))
    assert history == [("mitigated", "b2"), ("reactivated", "b3")]
    # The others never changed state and have no history.
    assert not FindingEvent.objects.exclude(finding=back).exists()


def test_new_findings_in_a_later_scan_are_open_and_nothing_else_changes(client, writer):
    upload(client, writer, sast(3), "1")
    result = upload(client, writer, sast(5), "2")
    assert (result["created"], result["updated"], result["mitigated"]) == (2, 3, 0)
    assert Finding.objects.filter(active=True).count() == 5
    assert not FindingEvent.objects.exists()


def test_an_upload_that_finds_nothing_mitigates_what_was_open_in_that_stream(client, writer):
    upload(client, writer, sast(4), "1")
    upload(client, writer, sast(2), "1", branch="develop")
    empty = upload(client, writer, [], "2")
    assert empty["mitigated"] == 4
    assert not Finding.objects.filter(branch_name="main", active=True).exists()
    assert Finding.objects.filter(branch_name="develop", active=True).count() == 2


def test_findings_of_other_scan_types_are_not_mitigated(client, writer):
    upload(client, writer, sast(2), "1", scan_type="SAST")
    upload(client, writer, sast(2), "1", scan_type="SCA")
    upload(client, writer, [], "2", scan_type="SCA")
    assert Finding.objects.filter(scan_type="SAST", active=True).count() == 2
    assert Finding.objects.filter(scan_type="SCA", active=True).count() == 0


def test_a_finding_the_scanner_reports_as_fixed_is_mitigated_in_that_build(client, writer):
    upload(client, writer, sast(2), "1")
    fixed = sast(2)
    fixed[0]["mitigated"] = True
    result = upload(client, writer, fixed, "2")
    assert result["mitigated"] == 1
    finding = state("f0")
    assert (finding.active, finding.mitigated_on_build_id) == (False, "2")
    assert finding.seen_build_id == "2"  # it was in this scan, as fixed


def test_staff_triage_survives_every_upload(client, writer, reader):
    upload(client, writer, sast(2), "1")
    Finding.objects.filter(finding_id="f0").update(false_positive=True, triaged_at=timezone.now())
    Finding.objects.filter(finding_id="f1").update(
        risk_accepted=True, triage_reason="compensating WAF rule"
    )
    changed = sast(2, title="Reworded by a new scanner version", severity="Low")
    upload(client, writer, changed, "2")  # re-seen, with new content
    upload(client, writer, [], "3")  # gone
    upload(client, writer, changed, "4")  # back
    f0, f1 = state("f0"), state("f1")
    assert f0.false_positive
    assert f0.triaged_at is not None
    assert f1.risk_accepted
    assert f1.triage_reason == "compensating WAF rule"
    assert f0.title == "Reworded by a new scanner version"  # the scanner's content did update
    statuses = {item["finding_id"]: item["status"] for item in get(client, reader).json()}
    assert statuses == {"f0": "False positive", "f1": "Risk accepted"}


def test_the_clis_per_build_copies_do_not_make_a_finding_look_changed(client, writer):
    """The CLI copies build_id, branch and code path into every finding: a re-upload from the
    next build is still "unchanged" for those findings and writes no row."""

    def cli_findings(build):
        return [
            f
            | {
                "build_id": build,
                "branch_name": "main",
                "code_path": ".",
                "last_update_date": f"2026-11-2{build}T10:00:00",
            }
            for f in sast(3)
        ]

    upload(client, writer, cli_findings("1"), "1")
    upload(client, writer, cli_findings("2"), "2")
    stored = dict(Finding.objects.values_list("finding_id", "last_seen_build_id"))
    assert stored == {"f0": "1", "f1": "1", "f2": "1"}  # untouched rows...
    assert {f.seen_build_id for f in with_last_seen(Finding.objects.all())} == {"2"}  # ...seen in 2


def test_changed_content_is_refreshed_and_unchanged_findings_are_not_rewritten(client, writer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    upload(client, writer, sast(3), "1")
    changed = sast(3)
    changed[1]["severity"] = "Critical"
    with CaptureQueriesContext(connection) as queries:
        upload(client, writer, changed, "2")
    assert state("f1").severity == "CRITICAL"
    assert state("f0").severity == "HIGH"
    update_sql = [
        q["sql"] for q in queries if q["sql"].startswith("UPDATE findings_finding SET title")
    ]
    assert len(update_sql) == 1
    # Only f1's row was written by this upload; f0 and f2 keep their stored sighting.
    stored = dict(Finding.objects.values_list("finding_id", "last_seen_build_id"))
    assert stored == {"f0": "1", "f1": "2", "f2": "1"}
    assert {f.finding_id: f.seen_build_id for f in with_last_seen(Finding.objects.all())} == {
        "f0": "2",
        "f1": "2",
        "f2": "2",
    }
