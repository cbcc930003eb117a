"""The staff triage workflow through Django's test client: the list's default, bulk triage,
expiring risk acceptances, assignee and comments, exports, SLA and trends, and the dashboard
figures kept in step with every write."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from findings import selectors
from findings.models import Finding, FindingDay, FindingEvent, FindingWords, OpenFindingCount
from findings.search import search_index_catch_up, search_q
from findings.services import TriageAction, findings_recount, findings_reopen_expired
from tests.factories import StaffFactory
from tests.findings.conftest import documented_body, post, sast

pytestmark = pytest.mark.django_db


def _titles(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'href="/findings/\d+/"[^>]*>([^<]+)</a>', response.content.decode())


def _dashboard_open(staff_client) -> int:
    html = staff_client.get("/").content.decode()
    found = re.search(r'<span class="number">(\d+)</span> open findings', html)
    assert found is not None
    return int(found.group(1))


def _summary() -> dict[tuple[str, str, str], int]:
    return {
        (row.repository_name, row.severity, str(row.first_seen_on)): row.count
        for row in OpenFindingCount.objects.all()
        if row.count
    }


def _days() -> dict[tuple[str, str], tuple[int, int, int]]:
    return {
        (str(row.day), row.severity): (row.opened, row.fixed, row.fix_seconds // 60)
        for row in FindingDay.objects.all()
        if row.opened or row.fixed
    }


def _bulk(staff_client, **data):
    return staff_client.post("/findings/triage/", data)


# --- the list's default ------------------------------------------------------------------------


def test_the_list_opens_on_the_open_findings_the_dashboard_counts(client, writer, staff_client):
    post(client, writer, documented_body(sast(5), build_id="1"))
    post(client, writer, documented_body(sast(4), build_id="2"))  # f4 mitigated
    staff_client.post(
        f"/findings/{Finding.objects.get(finding_id='f0').pk}/triage/",
        {"action": "false_positive"},
    )
    listed = _titles(staff_client.get("/findings/"))
    assert sorted(listed) == ["Issue 1", "Issue 2", "Issue 3"]
    assert _dashboard_open(staff_client) == len(listed)
    # Every status is still one choice away.
    assert len(_titles(staff_client.get("/findings/", {"status": "all"}))) == 5
    assert _titles(staff_client.get("/findings/", {"status": "Mitigated"})) == ["Issue 4"]


# --- bulk triage ------------------------------------------------------------------------------


def test_bulk_triage_of_everything_a_filter_selects_asks_with_the_count_then_records_each(
    client, writer, staff, staff_client
):
    post(client, writer, documented_body(sast(6, title="SQL injection in report")))
    post(client, writer, documented_body(sast(3), repository="acme/web"))
    query = "repository_name=acme%2Fpayments&q=injection"
    form = {
        "action": "risk_accepted",
        "reason": "internal tool, no user input",
        "until": (timezone.now().date() + timedelta(days=30)).isoformat(),
        "scope": "all",
        "filter": query,
    }
    confirmation = _bulk(staff_client, **form)
    assert confirmation.status_code == 200
    assert 'id="confirm-count">6<' in confirmation.content.decode()
    assert not Finding.objects.filter(risk_accepted=True).exists()  # nothing yet

    done = _bulk(staff_client, **form, expected="6", confirm="on")
    assert done.status_code == 302
    assert done["Location"] == f"/findings/?{query}"
    accepted = Finding.objects.filter(risk_accepted=True)
    assert set(accepted.values_list("repository_name", flat=True)) == {"acme/payments"}
    assert accepted.count() == 6
    events = FindingEvent.objects.filter(kind="risk_accepted")
    assert events.count() == 6
    assert {(e.actor, e.reason, e.until.isoformat()) for e in events} == {
        (staff, "internal tool, no user input", form["until"])
    }
    assert _dashboard_open(staff_client) == 3


def test_bulk_triage_refuses_when_the_selection_changed_since_the_confirmation(
    client, writer, staff_client
):
    post(client, writer, documented_body(sast(3)))
    form = {"action": "false_positive", "scope": "all", "filter": "", "confirm": "on"}
    post(client, writer, documented_body(sast(4), build_id="102"))  # one more since "3"
    again = _bulk(staff_client, **form, expected="3")
    assert again.status_code == 200
    html = again.content.decode()
    assert "The selection changed" in html
    assert 'id="confirm-count">4<' in html
    assert not Finding.objects.filter(false_positive=True).exists()


def test_bulk_triage_of_ticked_rows_changes_only_those(client, writer, staff_client):
    post(client, writer, documented_body(sast(5)))
    chosen = list(Finding.objects.filter(finding_id__in=["f1", "f3"]).values_list("pk", flat=True))
    form = {"action": "false_positive", "scope": "selected", "ids": chosen, "filter": ""}
    assert 'id="confirm-count">2<' in _bulk(staff_client, **form).content.decode()
    _bulk(staff_client, **form, expected="2", confirm="on")
    assert sorted(
        Finding.objects.filter(false_positive=True).values_list("finding_id", flat=True)
    ) == ["f1", "f3"]
    # Reopen the same rows: both come back, with the reopen in their history.
    _bulk(staff_client, **(form | {"action": "reopen"}), expected="2", confirm="on")
    assert not Finding.objects.filter(false_positive=True).exists()
    assert FindingEvent.objects.filter(kind="reopened").count() == 2
    assert _dashboard_open(staff_client) == 5


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "risk_accepted", "scope": "all"}, "Say why the risk is accepted"),
        (
            {"action": "false_positive", "scope": "all", "until": "2031-01-01", "reason": "x"},
            "Only an accepted risk has an expiry date",
        ),
        (
            {"action": "risk_accepted", "scope": "all", "reason": "x", "until": "2001-01-01"},
            "The expiry date is in the past",
        ),
        ({"action": "false_positive", "scope": "selected"}, "Tick the findings to triage"),
    ],
    ids=["no-reason", "expiry-on-false-positive", "expiry-in-the-past", "nothing-ticked"],
)
def test_bulk_triage_refuses_a_decision_it_cannot_record(
    client, writer, staff_client, form, message
):
    post(client, writer, documented_body(sast(2)))
    response = _bulk(staff_client, **form, filter="", expected="2", confirm="on")
    assert response.status_code == 302
    follow = staff_client.get(response["Location"])
    assert message in follow.content.decode()
    assert not Finding.objects.exclude(false_positive=False, risk_accepted=False).exists()


def test_bulk_triage_needs_the_triage_permission(client, writer):
    post(client, writer, documented_body(sast(2)))
    viewer = Client()
    viewer.force_login(StaffFactory())
    response = viewer.post(
        "/findings/triage/",
        {"action": "false_positive", "scope": "all", "filter": "", "expected": 2, "confirm": "on"},
    )
    assert response.status_code == 403
    assert not Finding.objects.filter(false_positive=True).exists()


def test_a_bulk_triage_over_the_limit_is_refused_whole(client, writer, staff_client, settings):
    settings.GERION_BULK_TRIAGE_MAX = 3
    post(client, writer, documented_body(sast(4)))
    page = _bulk(staff_client, action="false_positive", scope="all", filter="")
    assert "the most one triage may change" in page.content.decode()
    _bulk(staff_client, action="false_positive", scope="all", filter="", expected=4, confirm="on")
    assert not Finding.objects.filter(false_positive=True).exists()


# --- expiring risk acceptances ------------------------------------------------------------------


def test_an_expired_risk_acceptance_reopens_when_the_pages_are_read(client, writer, staff_client):
    post(client, writer, documented_body(sast(2)))
    pk = Finding.objects.get(finding_id="f0").pk
    today = timezone.now().date()
    staff_client.post(
        f"/findings/{pk}/triage/",
        {"action": "risk_accepted", "reason": "fix planned", "until": today.isoformat()},
    )
    assert Finding.objects.get(pk=pk).risk_accepted
    assert _dashboard_open(staff_client) == 1  # accepted through today (inclusive)
    # A day later (the clock moved on; the stored date stands for that).
    Finding.objects.filter(pk=pk).update(risk_accepted_until=today - timedelta(days=1))
    assert "Issue 0" in _titles(staff_client.get("/findings/"))
    finding = Finding.objects.get(pk=pk)
    assert (finding.risk_accepted, finding.risk_accepted_until) == (False, None)
    assert finding.events.last().kind == "risk_expired"
    assert _dashboard_open(staff_client) == 2


def test_the_periodic_command_reopens_expired_risk_acceptances(client, writer, staff, capsys):
    from findings.services import findings_triage

    post(client, writer, documented_body(sast(3)))
    today = timezone.now().date()
    findings_triage(
        ids=list(Finding.objects.values_list("pk", flat=True)),
        action=TriageAction.RISK_ACCEPTED,
        actor=staff,
        reason="quarter freeze",
        until=today,
    )
    assert findings_reopen_expired(today=today) == 0
    assert findings_reopen_expired(today=today + timedelta(days=1)) == 3
    assert not Finding.objects.filter(risk_accepted=True).exists()
    call_command("reopenexpiredrisks")
    assert "0 findings reopened" in capsys.readouterr().out


# --- the dashboard's figures ----------------------------------------------------------------------


def test_the_dashboard_figures_equal_a_recount_after_uploads_and_triage(
    client, writer, staff_client
):
    """Every write keeps the summary exact: it matches what a full recount finds."""
    post(client, writer, documented_body(sast(8), build_id="1"))
    post(client, writer, documented_body(sast(4), repository="acme/web", build_id="1"))
    # Next build: f0-f1 gone, f8-f9 new, f2 now critical (moves severity).
    changed = sast(10)[2:]
    changed[0]["severity"] = "Critical"
    post(client, writer, documented_body(changed, build_id="2"))
    ids = list(
        Finding.objects.filter(repository_name="acme/payments", finding_id__in=["f3", "f4"])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _bulk(staff_client, action="false_positive", scope="selected", ids=ids, filter="",
          expected=2, confirm="on")  # fmt: skip
    post(client, writer, documented_body(sast(10), build_id="3"))  # f0, f1 reactivated
    post(client, writer, documented_body([], repository="acme/web", build_id="2"))  # all fixed
    _bulk(staff_client, action="reopen", scope="selected", ids=ids[:1], filter="",
          expected=1, confirm="on")  # fmt: skip
    kept, kept_days = _summary(), _days()
    findings_recount()
    assert _summary() == kept
    assert _days() == kept_days
    assert sum(kept.values()) == 9  # 10 in payments, one still a false positive; web: none
    assert _dashboard_open(staff_client) == 9


def test_the_recount_command_rebuilds_the_figures(client, writer, staff_client, capsys):
    post(client, writer, documented_body(sast(3)))
    OpenFindingCount.objects.all().delete()
    assert _dashboard_open(staff_client) == 0
    call_command("recountfindings")
    assert "recounted" in capsys.readouterr().out
    assert _dashboard_open(staff_client) == 3


def test_overdue_findings_are_marked_counted_and_filtered(client, writer, staff_client):
    post(client, writer, documented_body(sast(3, severity="Critical")))
    # f0 first seen 10 days ago: past the 7-day SLA of a critical finding.
    Finding.objects.filter(finding_id="f0").update(
        first_seen_at=timezone.now() - timedelta(days=10)
    )
    findings_recount()
    html = staff_client.get("/").content.decode()
    assert re.search(r'<span class="number">1</span> overdue', html)
    listed = staff_client.get("/findings/", {"overdue": "on"})
    assert _titles(listed) == ["Issue 0"]
    assert 'class="badge-overdue"' in listed.content.decode()
    oldest_first = _titles(staff_client.get("/findings/", {"sort": "oldest"}))
    assert oldest_first[0] == "Issue 0"
    assert "10 d" in staff_client.get("/findings/").content.decode()


def test_trends_show_what_each_day_opened_and_fixed_and_the_mean_time_to_fix(
    client, writer, staff_client
):
    post(client, writer, documented_body(sast(5, severity="Critical"), build_id="1"))
    # f0 was first seen two days ago; it is fixed now.
    Finding.objects.filter(finding_id="f0").update(first_seen_at=timezone.now() - timedelta(days=2))
    post(client, writer, documented_body(sast(5, severity="Critical")[1:], build_id="2"))
    html = staff_client.get("/").content.decode()
    assert 'id="trend-chart"' in html
    today = timezone.now().date().isoformat()
    assert re.search(rf"<td>{today}</td><td class=\"num\">5</td><td class=\"num\">1</td>", html)
    assert "2.0 days" in html  # mean time to fix of a critical finding
    assert 'class="opened"' in html
    assert 'class="fixed"' in html
    html90 = staff_client.get("/", {"days": "90"}).content.decode()
    assert "Opened and fixed, last 90 days" in html90


# --- assignee and comments ---------------------------------------------------------------------


def test_a_finding_is_assigned_and_filtered_as_assigned_to_me(client, writer, staff, staff_client):
    post(client, writer, documented_body(sast(3)))
    pk = Finding.objects.get(finding_id="f1").pk
    assert staff_client.post(f"/findings/{pk}/assign/", {"assignee": staff.pk}).status_code == 302
    assert _titles(staff_client.get("/findings/", {"assigned": "me"})) == ["Issue 1"]
    page = staff_client.get(f"/findings/{pk}/").content.decode()
    assert 'id="assignee">analyst<' in page
    assert "Assigned to analyst by analyst" in page
    # Someone who is not staff cannot be assigned.
    outsider = StaffFactory(is_staff=False)
    staff_client.post(f"/findings/{pk}/assign/", {"assignee": outsider.pk})
    assert Finding.objects.get(pk=pk).assignee == staff
    staff_client.post(f"/findings/{pk}/assign/", {"assignee": ""})
    assert Finding.objects.get(pk=pk).assignee is None


def test_comments_show_author_and_time_and_are_escaped(client, writer, staff_client):
    post(client, writer, documented_body(sast(1)))
    pk = Finding.objects.get().pk
    staff_client.post(f"/findings/{pk}/comments/", {"body": "<b>Owner</b> is the payments team"})
    html = staff_client.get(f"/findings/{pk}/").content.decode()
    assert "&lt;b&gt;Owner&lt;/b&gt; is the payments team" in html
    assert "<strong>analyst</strong>" in html
    refused = staff_client.post(f"/findings/{pk}/comments/", {"body": "   "})
    assert refused.status_code == 302
    assert Finding.objects.get().comments.count() == 1


# --- exports --------------------------------------------------------------------------------------


def test_exports_stream_exactly_the_lists_selection_in_batches(
    client, writer, staff_client, monkeypatch
):
    monkeypatch.setattr(selectors, "EXPORT_BATCH", 7)  # several keyset batches
    findings = sast(30)
    findings[3]["title"] = '=HYPERLINK("http://evil")'
    post(client, writer, documented_body(findings))
    post(client, writer, documented_body(sast(5), repository="acme/web"))
    params = {"repository_name": "acme/payments", "sort": "oldest"}
    response = staff_client.get("/findings/export.csv", params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="findings-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["finding_id"] for row in rows] == [f"f{i}" for i in range(30)]
    assert rows[3]["title"] == '\'=HYPERLINK("http://evil")'  # no formula in a spreadsheet
    assert rows[0]["status"] == "Active"
    assert rows[0]["repository_name"] == "acme/payments"

    as_json = staff_client.get(
        "/findings/export.json", {"repository_name": "acme/payments", "severity": "HIGH"}
    )
    items = json.loads(b"".join(as_json.streaming_content))
    # The list's default order (most severe first, newest first within a severity).
    assert [item["finding_id"] for item in items] == [f"f{i}" for i in reversed(range(30))]
    empty = staff_client.get("/findings/export.json", {"q": "nothing-like-this"})
    assert json.loads(b"".join(empty.streaming_content)) == []


def test_the_list_links_to_exports_of_its_own_filters(client, writer, staff_client):
    post(client, writer, documented_body(sast(1)))
    html = staff_client.get("/findings/", {"severity": "HIGH"}).content.decode()
    assert 'href="/findings/export.csv?severity=HIGH"' in html
    assert 'href="/findings/export.json?severity=HIGH"' in html


# --- detail: links, packages, sightings, the same CVE elsewhere ----------------------------------


def test_the_detail_page_links_cve_and_cwe_and_shows_the_package_and_its_fix(
    client, writer, staff_client
):
    finding = {
        "finding_id": "log4shell",
        "title": "log4j-core: remote code execution",
        "severity": "Critical",
        "file_path": "pom.xml",
        "component_name": "log4j-core",
        "component_version": "2.14.1",
        "component_fix": "2.17.1",
        "cve": ["CVE-2021-44228"],
        "cwe": ["CWE-502"],
    }
    post(client, writer, documented_body([finding], scan_type="SCA", build_id="b7"))
    post(client, writer, documented_body([finding], repository="acme/web", scan_type="SCA"))
    pk = Finding.objects.get(repository_name="acme/payments").pk
    html = staff_client.get(f"/findings/{pk}/").content.decode()
    assert (
        '<a href="https://nvd.nist.gov/vuln/detail/CVE-2021-44228" rel="noopener noreferrer"'
        in html
    )
    assert (
        '<a href="https://cwe.mitre.org/data/definitions/502.html" rel="noopener noreferrer"'
        in html
    )
    assert 'log4j-core@2.14.1</span> <span class="fix">→ 2.17.1' in html
    assert re.search(r'id="first-seen">.*build b7, commit <code>3f2c9d1e</code>', html)
    assert "The same CVE in other repositories" in html
    assert ">acme/web</a>: 1 finding with CVE-2021-44228" in html
    listed = staff_client.get("/findings/", {"scan_type": "SCA"}).content.decode()
    assert 'log4j-core@2.14.1</span> <span class="fix">→ 2.17.1' in listed


# --- search ------------------------------------------------------------------------------------


def test_search_finds_whole_words_of_title_path_component_cve_and_id(client, writer, staff_client):
    findings = sast(4)
    findings[0] |= {"title": "Hard-coded AWS key", "file_path": "deploy/env.sh"}
    findings[1] |= {"component_name": "log4j-core", "cve": ["CVE-2021-44228"]}
    findings[2] |= {"finding_id": "semgrep-python.sqli-7d2e"}
    post(client, writer, documented_body(findings))

    def search(text):
        return _titles(staff_client.get("/findings/", {"q": text}))

    assert search("AWS") == ["Hard-coded AWS key"]
    assert search("env.sh") == ["Hard-coded AWS key"]
    assert search("log4j") == ["Issue 1"]
    assert search("cve-2021-44228") == ["Issue 1"]
    assert search("semgrep-python.sqli-7d2e") == ["Issue 2"]
    assert search("aws log4j") == []  # every word must match
    assert search("log4") == []  # words are found whole


def test_a_search_is_answered_by_the_search_index(client, writer):
    """The query's expression is the index's (findings.search.WORDS_ARRAY_SQL, migration
    0007)."""
    post(client, writer, documented_body(sast(3)))
    search_index_catch_up()
    words = FindingWords.objects.filter(finding__in=Finding.objects.filter(search_q("issue 1")))
    assert words.count() == 1
    queryset = Finding.objects.filter(search_q("issue 1"))
    sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        # A handful of rows: left alone, the planner would just read them all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "finding_words_idx" in plan


def test_search_finds_what_an_upload_just_stored_or_reworded(client, writer, staff_client):
    """Uploads only queue their findings for the search index; a search indexes the queue
    first, so it never misses a stored finding."""
    post(client, writer, documented_body(sast(2), build_id="1"))
    assert _titles(staff_client.get("/findings/", {"q": "issue 1"})) == ["Issue 1"]
    reworded = sast(2)
    reworded[1]["title"] = "Open redirect in login"
    post(client, writer, documented_body(reworded, build_id="2"))
    assert _titles(staff_client.get("/findings/", {"q": "redirect"})) == ["Open redirect in login"]
    assert _titles(staff_client.get("/findings/", {"q": "issue 1"})) == []


def test_the_periodic_command_indexes_what_uploads_queued(client, writer, capsys):
    post(client, writer, documented_body(sast(3)))
    call_command("indexsearch")
    assert "3 findings indexed for search" in capsys.readouterr().out
    call_command("indexsearch")
    assert "0 findings indexed for search" in capsys.readouterr().out
