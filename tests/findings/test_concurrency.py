"""Concurrent uploads against PostgreSQL: no duplicates, no 500, the right lifecycle."""

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from django.db import connection
from django.test import Client

from findings.merge import RulesAlongside
from findings.models import Finding, ScannerRule, Upload
from findings.readers.sarif import read_sarif
from findings.services import _stream_lock_id
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
        waited = _waiting_for_a_rule(watch)  # for that transaction
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


def _backends(watch: psycopg.Connection) -> int:
    row = watch.execute(  # connections, not autovacuum's workers
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _backends_settled(watch: psycopg.Connection, before: int) -> int:
    """The connections once back to `before` (a closed one's backend ends just after), or as
    they are after 10 s."""
    after = _backends(watch)
    deadline = time.monotonic() + 10
    while after != before and time.monotonic() < deadline:
        time.sleep(0.05)
        after = _backends(watch)
    return after


def _waiting_for_a_rule(watch: psycopg.Connection, other_than: int | None = None) -> int | None:
    """The backend whose COPY of rules waits for another transaction's row (other than
    `other_than`), within 30 s; None if none does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = watch.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'COPY findings_scannerrule %%' "
            "AND pid IS DISTINCT FROM %s",
            [other_than],
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.01)
    return None


def _first_rule_row(body: bytes) -> list[str]:
    """The first rule an upload of `body` hands over, as an INSERT's parameters."""
    parsed = read_sarif(body, {"repository_name": "acme/big-image", "branch_name": "main"})
    list(parsed.rows)
    digest, rule_id, data = next(iter(parsed.rules.values()))
    return [digest, rule_id, bytes(data).decode()]


def _uploading(token: str, body: bytes, responses: list[Any]) -> threading.Thread:
    """The upload of `body`, started on a thread of its own; its response goes to `responses`."""

    def upload() -> None:
        try:
            responses.append(_sarif_post(token, body))
        finally:
            connection.close()

    thread = threading.Thread(target=upload)
    thread.start()
    return thread


def test_a_large_logs_rules_are_all_stored_and_every_finding_names_one(token):
    """A log with more rules than one hand-over (findings.merge.RulesAlongside.BATCH), whose
    rules are stored on a connection of their own while the findings are merged: each is
    stored once, each finding names a stored rule, and no connection is left open."""
    total = RulesAlongside.BATCH + 700
    url = live_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as watch:
        before = _backends(watch)
        response = _sarif_post(token, trivy_log(total))
        after = _backends_settled(watch, before)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == total
    stored = set(ScannerRule.objects.values_list("digest", flat=True))
    assert len(stored) == total
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == stored
    assert after == before  # the rules' connection is closed again
    # The same log again, to another branch: nothing is stored twice.
    again = _sarif_post(token, trivy_log(total), branch="release")
    assert again.status_code == 201, again.content
    assert again.json()["created"] == total
    assert ScannerRule.objects.count() == total


def test_a_lost_rules_connection_does_not_lose_the_upload(token, caplog):
    """The rules' own connection is lost while it waits for another transaction holding one
    of its rules: the upload stores its rules on its own connection instead (waiting for that
    transaction in turn), and the whole upload is stored."""
    total = RulesAlongside.BATCH + 10
    body = trivy_log(total)
    rule = _first_rule_row(body)
    responses: list[Any] = []
    url = live_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as watch:
        other.execute(
            "INSERT INTO findings_scannerrule (digest, rule_id, data) VALUES (%s, %s, %s)", rule
        )
        thread = _uploading(token, body, responses)
        alongside = _waiting_for_a_rule(watch)
        assert alongside is not None
        watch.execute("SELECT pg_terminate_backend(%s)", [alongside])
        # Now the request's own connection stores the rules, and waits for that row too.
        assert _waiting_for_a_rule(watch, other_than=alongside) is not None
        other.rollback()
        thread.join(60)
    assert len(responses) == 1
    assert responses[0].status_code == 201, responses[0].content
    assert responses[0].json()["created"] == total
    assert Finding.objects.count() == total
    assert set(ScannerRule.objects.values_list("digest", flat=True)) == {
        f.raw["sarif"]["rule"] for f in Finding.objects.all()
    }
    assert ScannerRule.objects.count() == total
    assert "their own one failed" in caplog.text


def _with_result(body: bytes, edit: Any) -> bytes:
    log = orjson.loads(body)
    edit(log["runs"][0]["results"])
    return orjson.dumps(log)


def test_a_large_log_that_repeats_a_result_is_stored_once_with_all_its_rules(token):
    """A result sent twice (the last one wins) makes the upload read the log again, after
    rules were handed over already: each finding and each rule is stored once all the same."""
    total = RulesAlongside.BATCH + 300
    body = _with_result(trivy_log(total), lambda results: results.append(results[0]))
    response = _sarif_post(token, body)
    assert response.status_code == 201, response.content
    assert (response.json()["created"], response.json()["duplicates"]) == (total, 1)
    assert Finding.objects.count() == total
    assert ScannerRule.objects.count() == total
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == set(
        ScannerRule.objects.values_list("digest", flat=True)
    )


def test_a_large_log_refused_halfway_stores_no_finding_and_leaves_no_connection(token):
    """A log refused after its first rules were handed over: a 400 problem naming the result,
    no finding and no upload stored, and the rules' connection closed again."""
    total = RulesAlongside.BATCH * 2

    def without_rule(results: list[dict[str, Any]]) -> None:
        del results[-1]["ruleId"], results[-1]["ruleIndex"]

    body = _with_result(trivy_log(total), without_rule)
    url = live_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as watch:
        before = _backends(watch)
        response = _sarif_post(token, body)
        after = _backends_settled(watch, before)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["path"] == f"runs[0].results[{total - 1}].ruleId"
    assert Finding.objects.count() == 0
    assert Upload.objects.count() == 0
    assert ScannerRule.objects.count() == RulesAlongside.BATCH  # one batch was handed over
    assert after == before


def test_an_upload_waiting_on_its_own_rule_behind_another_transaction_does_not_hang(
    token, monkeypatch
):
    """Another transaction (a script's upload, inside its own transaction) has written one of
    this log's rules and now waits for this upload's stream. This upload's rules wait for that
    transaction: a cycle PostgreSQL cannot see while the rules wait on a connection of their
    own. The rules give up after RulesAlongside.LOCK_TIMEOUT and go on the request's
    connection, where PostgreSQL sees the deadlock and ends one side: the upload answers."""
    monkeypatch.setattr(RulesAlongside, "LOCK_TIMEOUT", "1s")
    body = trivy_log(RulesAlongside.BATCH + 10)
    rule = _first_rule_row(body)
    responses: list[Any] = []
    url = live_database_url().replace("postgres://", "postgresql://", 1)
    script_outcome: list[str] = []
    with psycopg.connect(url) as script, psycopg.connect(url, autocommit=True) as watch:
        script.execute(
            "INSERT INTO findings_scannerrule (digest, rule_id, data) VALUES (%s, %s, %s)", rule
        )
        script.execute("SET statement_timeout = '30s'")  # a regression fails, not hangs
        started = time.monotonic()
        thread = _uploading(token, body, responses)
        assert _waiting_for_a_rule(watch) is not None  # the rules wait for the script's row
        # The script now waits for the upload's stream, which the upload holds.
        try:
            script.execute(
                "SELECT pg_advisory_xact_lock(%s)",
                [_stream_lock_id("acme/big-image", "main", "SCA")],
            )
            script.rollback()
            script_outcome.append("went on")
        except psycopg.errors.DeadlockDetected:
            script.rollback()
            script_outcome.append("deadlock")
        thread.join(60)
        elapsed = time.monotonic() - started
    assert len(responses) == 1
    assert elapsed < 30
    if script_outcome == ["deadlock"]:  # PostgreSQL ended the script: the upload went on
        assert responses[0].status_code == 201, responses[0].content
        assert Finding.objects.count() == RulesAlongside.BATCH + 10
    else:  # it ended the upload's transaction: a 503 problem, nothing of it stored
        assert responses[0].status_code == 503, responses[0].content
        assert responses[0]["Content-Type"] == "application/problem+json"
        assert Finding.objects.count() == 0
