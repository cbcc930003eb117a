"""The read-only admin for findings, uploads and streams."""

import pytest
from django.test import Client

from findings.models import Finding
from tests.factories import SuperuserFactory
from tests.findings.conftest import documented_body, post, sast

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(SuperuserFactory())
    return client


def test_admin_lists_and_filters_findings_and_uploads(client, writer, admin_client):
    post(client, writer, documented_body(sast(3)))
    post(client, writer, documented_body(sast(2), branch="develop", build_id="9"))
    page = admin_client.get("/admin/findings/finding/", {"branch_name": "develop"})
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="field-finding_id"') == 2
    assert admin_client.get("/admin/findings/finding/", {"status": "Active"}).status_code == 200
    assert admin_client.get("/admin/findings/upload/").status_code == 200
    assert admin_client.get("/admin/findings/stream/").status_code == 200
    # By its id, not 1: sequences are not rolled back between tests.
    first = Finding.objects.get(finding_id="f0", branch_name="main").pk
    finding_page = admin_client.get(f"/admin/findings/finding/{first}/change/")
    assert finding_page.status_code == 200
    assert b"Issue 0" in finding_page.content
    assert admin_client.post(f"/admin/findings/finding/{first}/change/", {}).status_code == 403
