"""manage.py seeddemo: a realistic demo on an empty database, made of real uploads and real
triage decisions, and a staff user and key that work."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from findings.demo import DEMO_BUILDS, STREAMS
from findings.models import Finding, FindingEvent, Severity, Upload
from tests.apikeys.conftest import token_for
from tests.factories import make_api_key
from tests.findings.conftest import documented_body, get, post, sast

pytestmark = pytest.mark.django_db


def seeddemo(*args: str) -> str:
    out = io.StringIO()
    call_command("seeddemo", *args, stdout=out)
    return out.getvalue()


def test_seeddemo_fills_an_empty_database_with_repositories_branches_scan_types_and_severities():
    seeddemo()
    findings = Finding.objects.all()
    repositories = set(findings.values_list("repository_name", flat=True))
    assert len(repositories) >= 4
    branches = {(f.repository_name, f.branch_name) for f in findings}
    assert any(len({b for r, b in branches if r == repo}) >= 2 for repo in repositories)
    assert set(findings.values_list("scan_type", flat=True)) == {"SAST", "SCA", "SECRETS", "IAC"}
    open_severities = set(findings.filter(active=True).values_list("severity", flat=True))
    assert open_severities == set(Severity.values)


def test_seeddemo_stores_real_uploads_so_later_builds_mitigate_findings():
    seeddemo()
    # One Upload per scan, each written by the ingest service with its counts.
    assert Upload.objects.count() == len(STREAMS) * DEMO_BUILDS
    assert Upload.objects.filter(envelope="documented").exists()
    assert Upload.objects.exclude(envelope="documented").exists()
    mitigated = Finding.objects.filter(mitigated=True, active=False)
    assert mitigated.count() >= 5
    assert all(f.mitigated_on_build_id for f in mitigated)
    assert sum(Upload.objects.values_list("mitigated", flat=True)) >= mitigated.count()


def test_seeddemo_records_triage_decisions_with_reasons_by_its_staff_user():
    seeddemo()
    triaged = Finding.objects.filter(triaged_by__username="demo")
    assert triaged.filter(false_positive=True).exists()
    assert triaged.filter(risk_accepted=True).exists()
    assert all(f.triage_reason for f in triaged)
    assert FindingEvent.objects.filter(actor__username="demo", reason__gt="").count() == (
        triaged.count()
    )


def test_the_printed_password_signs_in_and_the_dashboard_shows_the_demo():
    out = seeddemo()
    password = re.search(r"as demo with password (\S+)", out).group(1)
    browser = Client()
    assert browser.login(username="demo", password=password)
    page = browser.get("/")
    assert page.status_code == 200
    for repository in ("acme/web-shop", "acme/payments-api", "acme/infra", "acme/mobile-app"):
        assert repository in page.content.decode()


def test_the_printed_key_is_the_last_line_and_reads_the_demo_over_the_api():
    out = seeddemo()
    plaintext = out.strip().splitlines()[-1]
    client_id = re.search(r"for client_id (\S+)", out).group(1)
    token = token_for(Client(), plaintext, client_id)
    listed = get(Client(), token, repository_name="acme/infra", limit=1000)
    assert listed.status_code == 200
    assert {f["scan_type"] for f in listed.json()} == {"IAC", "SECRETS"}


def test_seeddemo_refuses_a_database_that_holds_findings_and_stores_nothing():
    _, plaintext = make_api_key(client_id="real-ci")
    assert (
        post(
            Client(), token_for(Client(), plaintext, "real-ci"), documented_body(sast(2))
        ).status_code
        == 201
    )
    with pytest.raises(CommandError, match=r"already holds 2 findings.*--force"):
        seeddemo()
    assert Finding.objects.count() == 2
    assert Upload.objects.count() == 1


def test_force_adds_the_demo_beside_existing_findings_and_leaves_an_existing_user_alone():
    _, plaintext = make_api_key(client_id="real-ci")
    post(Client(), token_for(Client(), plaintext, "real-ci"), documented_body(sast(2)))
    seeddemo("--force", "--password", "first-password-1")
    out = seeddemo("--force")
    assert "an existing user: its password is unchanged" in out
    assert Client().login(username="demo", password="first-password-1")
    # A second key (the first one's client_id is taken), and the demo streams rescanned.
    assert re.search(r"for client_id demo-ci-[0-9a-f]{6} ", out)
    assert Upload.objects.count() == 1 + 2 * len(STREAMS) * DEMO_BUILDS
    assert Finding.objects.filter(repository_name="acme/payments").count() == 2
