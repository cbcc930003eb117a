"""Concurrent uploads against PostgreSQL: no duplicates, no 500, the right lifecycle."""

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import zstandard
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from findings import rules as rules_module
from findings.models import Finding, ScannerRule, ScannerRulePack, ScannerRuleSet, Upload
from findings.normalize import RULE_SAMPLE, ParsedUpload
from findings.readers.sarif import read_sarif
from findings.rules import PACK_MIN, rules_catch_up, rules_probe
from findings.selectors import scanner_data_of, scanner_rules
from tests.apikeys.conftest import token_for
from tests.factories import make_api_key
from tests.findings.conftest import URL, documented_body, post, sast, trivy_log
from tests.support.parallel import at_once
from tests.support.servers import live_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def _in_parallel(calls):
    return [response for response, _ in at_once(calls)]


@pytest.fixture
def token():
    _, plaintext = make_api_key(client_id="parallel-ci")
    return token_for(Client(), plaintext, "parallel-ci")


def test_overlapping_uploads_at_once_end_with_exactly_the_right_rows(token):
    # Eight pipelines upload overlapping scans of one stream at the same moment.
    bodies = [documented_body(sast(200 + 25 * i), build_id=str(i)) for i in range(8)]
    results = _in_parallel([lambda b=b: post(Client(), token, b) for b in bodies])
    assert [r.status_code for r in results] == [201] * 8
    assert Upload.objects.count() == 8
    assert Finding.objects.count() == 375  # f0..f374, each once
    # They took turns: every finding was created exactly once across the eight uploads.
    assert sum(r.json()["created"] for r in results) == 375
    # The last upload to commit decides what is open.
    # Replaying the uploads in the order they took the stream's lock (their ids) must give
    # exactly the counts each one reported.
    open_ids: set[int] = set()
    known: set[int] = set()
    for upload in Upload.objects.order_by("id"):
        reported = set(range(upload.received))
        assert upload.created == len(reported - known)
        assert upload.updated == len(reported & known)
        assert upload.reactivated == len((reported & known) - open_ids)
        assert upload.mitigated == len(open_ids - reported)
        known |= reported
        open_ids = reported
    active = {
        int(f[1:]) for f in Finding.objects.filter(active=True).values_list("finding_id", flat=True)
    }
    assert active == open_ids


def test_uploads_of_different_streams_run_side_by_side(token):
    bodies = [documented_body(sast(300), branch=f"branch-{i}") for i in range(6)]
    results = _in_parallel([lambda b=b: post(Client(), token, b) for b in bodies])
    assert [r.status_code for r in results] == [201] * 6
    assert Finding.objects.count() == 1800
    assert all(r.json()["created"] == 300 for r in results)


def test_bulk_triage_and_uploads_of_the_same_streams_at_once_neither_fail_nor_drift(token):
    """Triage takes the streams' upload locks (in one order) before it writes, so it cannot
    deadlock with an upload, and the dashboard's figures stay exact."""
    from django.contrib.auth.models import User

    from findings.models import OpenFindingCount
    from findings.services import TriageAction, findings_recount, findings_triage

    for branch in ("main", "develop"):
        assert post(Client(), token, documented_body(sast(400), branch=branch)).status_code == 201
    actor = User.objects.create_user("triager", is_staff=True)
    ids = list(Finding.objects.values_list("pk", flat=True))

    def triage():
        return findings_triage(
            ids=ids, action=TriageAction.FALSE_POSITIVE, actor=actor, reason="noise"
        )

    calls = [
        triage,
        lambda: post(Client(), token, documented_body(sast(500)[50:], build_id="2")),
        lambda: post(Client(), token, documented_body(sast(300), branch="develop", build_id="2")),
    ]
    changed, *uploads = _in_parallel(calls)
    assert changed == 800
    assert [r.status_code for r in uploads] == [201, 201]
    summary = {
        (r.repository_name, r.severity, r.first_seen_on): r.count
        for r in OpenFindingCount.objects.all()
        if r.count
    }
    findings_recount()
    assert summary == {
        (r.repository_name, r.severity, r.first_seen_on): r.count
        for r in OpenFindingCount.objects.all()
        if r.count
    }


def test_a_sarif_rule_stored_by_another_upload_meanwhile_is_stored_once(token):
    """Two uploads (of other streams) describe the same rule: the one that stores it first
    commits while the other is storing it too; the other is stored whole all the same."""
    body = (Path(__file__).parent / "fixtures" / "sarif" / "trivy.sarif").read_bytes()
    parsed = read_sarif(body, {"repository_name": "acme/web-shop", "branch_name": "main"})
    list(parsed.rows)
    digest, rule_id, data = parsed.rules[max(parsed.rules)]  # the last one the upload stores
    responses: list[Any] = []

    def sarif_upload() -> None:
        try:
            responses.append(
                Client().post(
                    f"{URL}?repository_name=acme/web-shop&branch_name=main",
                    data=body,
                    content_type="application/sarif+json",
                    HTTP_AUTHORIZATION=f"Bearer {token}",
                )
            )
        finally:
            connection.close()

    url = live_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as watch:
        other.execute(  # the other upload's transaction, not committed yet
            "INSERT INTO findings_scannerrule (digest, rule_id, data) VALUES (%s, %s, %s)",
            [digest, rule_id, bytes(data).decode()],
        )
        upload = threading.Thread(target=sarif_upload)
        upload.start()
        waited = _waiting_on_a_lock(watch, "COPY findings_scannerrule %")  # for that one
        other.commit()
    upload.join(60)
    assert waited is not None
    assert [r.status_code for r in responses] == [201], responses[0].content
    assert responses[0].json()["created"] == 8
    assert ScannerRule.objects.count() == 4
    assert Finding.objects.count() == 8


def _sarif_post(token: str, body: bytes, branch: str = "main") -> Any:
    return Client().post(
        f"{URL}?repository_name=acme/big-image&branch_name={branch}",
        data=body,
        content_type="application/sarif+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def _waiting_on_a_lock(watch: psycopg.Connection, query_like: str) -> int | None:
    """The backend whose statement (LIKE `query_like`) waits for another transaction's lock,
    within 30 s; None if none does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = watch.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.01)
    return None


def _with_result(body: bytes, edit: Any) -> bytes:
    log = orjson.loads(body)
    edit(log["runs"][0]["results"])
    return orjson.dumps(log)


def _read_rules(body: bytes) -> ParsedUpload:
    """A log read as an upload reads it: its `rules` complete."""
    parsed = read_sarif(body, {"repository_name": "acme/big-image", "branch_name": "x"})
    list(parsed.rows)
    return parsed


def _packed() -> int:
    return sum(ScannerRulePack.objects.values_list("rules", flat=True))


def test_a_large_logs_rules_wait_in_a_pack_until_read_and_are_stored_once(token):
    """A log of at least PACK_MIN new rules keeps them as a pack in its upload's transaction;
    the first read of a rule stores them all as rules (each finding names one), and the same
    log to another branch stores nothing again."""
    total = PACK_MIN + 700
    response = _sarif_post(token, trivy_log(total))
    assert response.status_code == 201, response.content
    assert response.json()["created"] == total
    assert (ScannerRule.objects.count(), _packed()) == (0, total)
    finding = Finding.objects.order_by("id").last()
    assert finding is not None
    rule = scanner_data_of(finding)["sarif"]["rule"]  # what the finding's page shows
    assert rule["id"] == finding.raw["sarif"]["ruleId"]
    assert (ScannerRule.objects.count(), ScannerRulePack.objects.count()) == (total, 0)
    stored = set(ScannerRule.objects.values_list("digest", flat=True))
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == stored
    again = _sarif_post(token, trivy_log(total), branch="release")
    assert again.json()["created"] == total
    assert (ScannerRule.objects.count(), ScannerRulePack.objects.count()) == (total, 0)


def test_a_rule_id_with_a_nul_neither_refuses_a_large_log_nor_stops_the_catch_up(token):
    """A rule whose own id holds a NUL, named by its index (so the result's identity is
    clean): the upload is stored, its pack expands with the NUL replaced, and a pack of
    another upload after it still expands (one bad pack used to stop every catch-up)."""
    total = PACK_MIN + 10
    log = orjson.loads(trivy_log(total))
    log["runs"][0]["tool"]["driver"]["rules"][0]["id"] = "CVE-2026-10000\x00x"
    response = _sarif_post(token, orjson.dumps(log))
    assert response.status_code == 201, response.content
    other = _sarif_post(token, trivy_log(total + 1).replace(b"pkg-", b"lib-"), branch="dev")
    assert other.status_code == 201, other.content
    assert ScannerRulePack.objects.count() == 2
    assert rules_catch_up() == 2 * total + 1
    assert ScannerRulePack.objects.count() == 0
    assert ScannerRule.objects.filter(rule_id="CVE-2026-10000\ufffdx").count() == 1
    first = Finding.objects.filter(branch_name="main").order_by("id").first()
    assert first is not None
    # (The rule's text as stored: NULs replaced there too.)
    assert scanner_data_of(first)["sarif"]["rule"]["id"] == "CVE-2026-10000\ufffdx"


def test_a_pack_written_with_a_nul_in_a_rule_id_still_expands(token):
    """Packs kept before the reader replaced such NULs: the catch-up replaces them."""
    packer = rules_module.RulePacker()
    packer.add(("ab" * 16, "R\x00", b'{"id":"R\\u0000"}'))
    ((count, data),) = packer.packs()
    ScannerRulePack.objects.create(rules=count, data=data)
    assert rules_catch_up() == 1
    assert list(ScannerRule.objects.values_list("rule_id", flat=True)) == ["R\ufffd"]


def test_the_export_right_after_a_large_upload_holds_its_rules(token):
    total = PACK_MIN + 10
    assert _sarif_post(token, trivy_log(total)).status_code == 201
    response = Client().get(
        URL, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/sarif+json"
    )
    assert response.status_code == 200
    (run,) = orjson.loads(b"".join(response.streaming_content))["runs"]
    assert len(run["tool"]["driver"]["rules"]) == total
    assert run["tool"]["driver"]["rules"][0]["help"]["text"].startswith("Vulnerability CVE-")
    assert ScannerRulePack.objects.count() == 0


def test_a_large_log_refused_halfway_stores_nothing_at_all(token):
    """A log refused at its last result: a 400 problem naming it, and no finding, upload,
    rule or pack stored."""
    total = PACK_MIN * 2

    def without_rule(results: list[dict[str, Any]]) -> None:
        del results[-1]["ruleId"], results[-1]["ruleIndex"]

    response = _sarif_post(token, _with_result(trivy_log(total), without_rule))
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["path"] == f"runs[0].results[{total - 1}].ruleId"
    assert Finding.objects.count() == Upload.objects.count() == 0
    assert ScannerRule.objects.count() == ScannerRulePack.objects.count() == 0


def test_a_large_log_that_repeats_a_result_is_stored_once_with_all_its_rules(token):
    """A result sent twice (the last one wins) makes the upload read the log again: each
    finding and each rule is stored once all the same."""
    total = PACK_MIN + 300
    body = _with_result(trivy_log(total), lambda results: results.append(results[0]))
    response = _sarif_post(token, body)
    assert response.status_code == 201, response.content
    assert (response.json()["created"], response.json()["duplicates"]) == (total, 1)
    assert Finding.objects.count() == _packed() == total
    call_command("expandrules", stdout=io.StringIO())
    assert ScannerRule.objects.count() == total
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == set(
        ScannerRule.objects.values_list("digest", flat=True)
    )


def test_catch_ups_at_once_store_overlapping_packs_each_rule_once(token):
    """Two uploads pack overlapping rules before any catch-up; three catch-ups at once (two
    crons, a reader) store each rule once and leave no pack, and `expandrules` says how many
    it stored."""
    assert _sarif_post(token, trivy_log(PACK_MIN + 100)).status_code == 201
    assert _sarif_post(token, trivy_log(PACK_MIN + 600), branch="release").status_code == 201
    assert ScannerRulePack.objects.count() == 2

    def catch_up() -> int:
        try:
            return rules_catch_up()
        finally:
            connection.close()

    added = [result for result, _ in at_once([catch_up] * 3)]
    assert sum(added) == PACK_MIN + 600
    assert ScannerRule.objects.count() == PACK_MIN + 600
    assert ScannerRulePack.objects.count() == 0
    output = io.StringIO()
    call_command("expandrules", stdout=output)
    assert output.getvalue().strip() == "0 SARIF rules stored"


def test_rules_just_stored_are_looked_up_from_the_index_alone(token):
    """The next upload of stored rules in a set not seen before looks up each one
    (findings.rules._new_rules): right after `expandrules` stored them, that look-up reads no
    table row (it vacuumed what it added), rather than visiting 100,000 fresh rows during
    the upload."""
    assert _sarif_post(token, trivy_log(PACK_MIN)).status_code == 201
    output = io.StringIO()
    call_command("expandrules", stdout=output)
    assert output.getvalue().strip() == f"{PACK_MIN} SARIF rules stored"
    digests = list(ScannerRule.objects.values_list("digest", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        # As with 100,000 rules; 4,096 of a table of 4,096 the planner would read whole.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + rules_module._STORED_COUNT, [",".join(digests)]
        )
        (plan,) = cursor.fetchone()
    scan = orjson.loads(plan)[0]["Plan"]["Plans"][0]
    assert (scan["Node Type"], scan["Actual Rows"], scan["Heap Fetches"]) == (
        "Index Only Scan",
        PACK_MIN,
        0,
    )


@pytest.mark.parametrize("other_ends", ["rolls back", "stores them"])
def test_a_reader_waits_for_a_catch_up_in_progress_and_gets_its_rule(token, other_ends):
    """A rule whose pack another process is storing: the reader waits for that process and
    then finds the rule, whether the other one gave up (the reader stores the pack itself) or
    stored the rules (the reader finds them stored), rather than showing the finding without
    its rule."""
    body = trivy_log(PACK_MIN)
    assert _sarif_post(token, body).status_code == 201
    finding = Finding.objects.order_by("id").first()
    assert finding is not None
    digest = finding.raw["sarif"]["rule"]
    found: list[dict[str, Any]] = []

    def read() -> None:
        try:
            found.append(scanner_rules([digest]))
        finally:
            connection.close()

    url = live_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as watch:
        other.execute("SELECT id FROM findings_scannerrulepack FOR UPDATE")  # "storing" it
        reader = threading.Thread(target=read)
        reader.start()
        waiting = _waiting_on_a_lock(watch, "%findings_scannerrulepack%")
        assert found == []  # still waiting
        if other_ends == "rolls back":
            other.rollback()
        else:
            parsed = _read_rules(body)
            with other.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO findings_scannerrule (digest, rule_id, data) VALUES (%s, %s, %s)",
                    [(d, rule, bytes(text).decode()) for d, rule, text in parsed.rules.values()],
                )
            other.execute("DELETE FROM findings_scannerrulepack")
            other.commit()
        reader.join(60)
    assert waiting is not None
    assert list(found[0]) == [digest]
    assert found[0][digest]["id"] == finding.raw["sarif"]["ruleId"]
    assert ScannerRulePack.objects.count() == 0
    assert ScannerRule.objects.count() == PACK_MIN


def test_a_pack_with_a_rule_stored_meanwhile_stores_the_others_once(token):
    """A rule of a pack stored by something else before the catch-up (one its probe does not
    ask for): the catch-up stores the others, and says so."""
    body = trivy_log(PACK_MIN + 50)
    assert _sarif_post(token, body).status_code == 201
    parsed = _read_rules(body)
    probed = set(rules_probe(parsed.rules))
    digest, rule_id, data = next(row for d, row in parsed.rules.items() if d not in probed)
    ScannerRule.objects.create(digest=digest, rule_id=rule_id, data=bytes(data).decode())
    assert rules_catch_up() == PACK_MIN + 49
    assert ScannerRule.objects.count() == PACK_MIN + 50
    assert set(ScannerRule.objects.values_list("digest", flat=True)) == set(parsed.rules)


def test_a_log_larger_than_a_pack_is_packed_in_several(token, monkeypatch):
    monkeypatch.setattr(rules_module, "PACK_MAX_BYTES", 256 * 1024)
    total = PACK_MIN + 10
    assert _sarif_post(token, trivy_log(total)).status_code == 201
    assert ScannerRulePack.objects.count() > 1
    assert _packed() == total
    assert rules_catch_up() == total
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == set(
        ScannerRule.objects.values_list("digest", flat=True)
    )


def test_a_log_describing_many_new_rules_but_naming_few_stores_those_few_at_once(token):
    """Its sample says the rules are new, so they are packed as they are read; but its
    results name fewer than PACK_MIN of them: those are stored as rules in the upload
    itself, readable at once, and the others not at all."""
    log = orjson.loads(trivy_log(PACK_MIN + 10))
    log["runs"][0]["results"] = log["runs"][0]["results"][-5:]
    response = _sarif_post(token, orjson.dumps(log))
    assert response.json()["created"] == 5
    assert (ScannerRule.objects.count(), ScannerRulePack.objects.count()) == (5, 0)
    stored = set(ScannerRule.objects.values_list("digest", flat=True))
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == stored


def test_a_large_log_with_a_rule_stored_already_that_its_sample_misses_stores_it_once(token):
    """The sample, read before the findings, finds none of the log's rules stored: all of
    them are packed as read, the one stored already too; the catch-up stores the others."""
    body = trivy_log(PACK_MIN + 50)
    parsed = _read_rules(body)
    sampled = set(parsed.rules.sample)
    assert len(sampled) == RULE_SAMPLE
    digest, rule_id, data = next(row for d, row in parsed.rules.items() if d not in sampled)
    ScannerRule.objects.create(digest=digest, rule_id=rule_id, data=bytes(data).decode())
    assert _sarif_post(token, body).json()["created"] == PACK_MIN + 50
    assert (ScannerRule.objects.count(), _packed()) == (1, PACK_MIN + 50)
    assert rules_catch_up() == PACK_MIN + 49
    assert set(ScannerRule.objects.values_list("digest", flat=True)) == set(parsed.rules)


def test_a_large_log_of_rules_mostly_stored_stores_only_its_new_ones_as_rules(token):
    """The sample finds rules stored: each rule is looked up after the merge, and the few
    new ones are stored as rules in the upload (no pack)."""
    assert _sarif_post(token, trivy_log(PACK_MIN + 100)).status_code == 201
    assert rules_catch_up() == PACK_MIN + 100
    response = _sarif_post(token, trivy_log(PACK_MIN + 120), branch="release")
    assert response.json()["created"] == PACK_MIN + 120
    assert (ScannerRule.objects.count(), ScannerRulePack.objects.count()) == (PACK_MIN + 120, 0)


def test_a_pack_of_the_first_format_waiting_at_a_deploy_is_still_stored(token):
    """Packs written before the rules came first in them (the index line first) may wait
    in the table when this version starts: the catch-up reads them too."""
    parsed = _read_rules(trivy_log(30))
    rows = list(parsed.rules.values())
    index = orjson.dumps([[digest, rule_id, len(data)] for digest, rule_id, data in rows])
    text = index + b"\n" + b"".join(bytes(data) for _, _, data in rows)
    ScannerRulePack.objects.create(rules=len(rows), data=zstandard.compress(text))
    assert rules_catch_up() == 30
    stored = dict(ScannerRule.objects.values_list("digest", "data"))
    assert stored == {digest: bytes(data).decode() for digest, _, data in rows}


def test_a_log_naming_stored_rules_among_more_it_describes_packs_nothing_again(token):
    """The sample falls on rules the log describes but no finding names (never stored):
    the rules its findings name are probed as well, and found stored, nothing is packed
    again (a Semgrep log describes a registry's rules and names a few)."""
    total = PACK_MIN + 32
    log = orjson.loads(trivy_log(total))
    sampled = set(range(0, total, -(-total // RULE_SAMPLE)))  # where the sample falls
    run = log["runs"][0]
    run["results"] = [result for i, result in enumerate(run["results"]) if i not in sampled]
    body = orjson.dumps(log)
    named = total - len(sampled)
    assert _sarif_post(token, body).json()["created"] == named
    assert (_packed(), rules_catch_up()) == (named, named)
    # Its rule set forgotten (as rules stored before sets were kept): each rule is probed.
    ScannerRuleSet.objects.all().delete()
    assert _sarif_post(token, body, branch="release").json()["created"] == named
    assert (ScannerRule.objects.count(), ScannerRulePack.objects.count()) == (named, 0)


@pytest.mark.parametrize("caught_up", [True, False], ids=["stored", "still-packed"])
def test_a_large_logs_rules_seen_before_are_not_looked_up_one_by_one(token, caught_up):
    """The same scanner's log of the same rules again (another branch, the next build): the
    upload recognises the set of rules an upload before stored, and looks none of them up
    (a look-up of 100,000 was the last 0.1 s of such an upload); each finding's rule is
    shown all the same, stored already or still in the first upload's pack."""
    body = trivy_log(PACK_MIN + 5)
    assert _sarif_post(token, body).status_code == 201
    if caught_up:
        assert rules_catch_up() == PACK_MIN + 5
    with CaptureQueriesContext(connection) as queries:
        assert _sarif_post(token, body, branch="release").json()["created"] == PACK_MIN + 5
    listed = [q["sql"] for q in queries if "string_to_array" in q["sql"]]
    assert max(len(re.findall(r"[0-9a-f]{32}", sql)) for sql in listed) == RULE_SAMPLE
    assert ScannerRuleSet.objects.count() == 1
    assert _packed() == (0 if caught_up else PACK_MIN + 5)  # none packed a second time
    finding = Finding.objects.filter(branch_name="release").order_by("id").last()
    assert finding is not None
    assert scanner_data_of(finding)["sarif"]["rule"]["id"] == finding.raw["sarif"]["ruleId"]
    assert ScannerRule.objects.count() == PACK_MIN + 5


def test_a_large_log_with_a_nul_in_a_rule_packs_it_replaced(token):
    """A NUL escape in a rule's help text (PostgreSQL's text cannot hold one): the rule is
    digested and packed with it replaced by U+FFFD, as a rule stored as a row would be, and
    the finding names the rule the catch-up stores."""
    log = orjson.loads(trivy_log(PACK_MIN + 10))
    log["runs"][0]["tool"]["driver"]["rules"][7]["help"]["text"] = "before\u0000after"
    response = _sarif_post(token, orjson.dumps(log))
    assert response.status_code == 201, response.content
    assert _packed() == PACK_MIN + 10
    assert rules_catch_up() == PACK_MIN + 10
    finding = Finding.objects.get(finding_id__startswith="CVE-2026-10007:")
    rule = scanner_data_of(finding)["sarif"]["rule"]
    assert rule["help"]["text"] == "before\ufffdafter"
