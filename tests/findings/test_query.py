"""GET /api/v1/findings: a bare array with a status per finding, filters, Link paging."""

import base64
import re
from urllib.parse import parse_qs, urlparse

import pytest

from findings.models import Finding
from tests.findings.conftest import documented_body, get, post, sast

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(client, writer):
    findings = [
        {"finding_id": "crit", "title": "Critical one", "severity": "CRITICAL"},
        {"finding_id": "high", "title": "High one", "severity": "High"},
        {"finding_id": "low", "title": "Low one", "severity": "low"},
        {"finding_id": "gone", "title": "Fixed one", "severity": "HIGH"},
    ]
    assert post(client, writer, documented_body(findings, build_id="1")).status_code == 201
    assert post(client, writer, documented_body(findings[:3], build_id="2")).status_code == 201
    post(client, writer, documented_body(sast(2), branch="develop", scan_type="SCA"))
    Finding.objects.filter(finding_id="low").update(false_positive=True)


def ids(response):
    assert response.status_code == 200, response.content
    return [item["finding_id"] for item in response.json()]


def test_a_bare_json_array_with_a_status_for_each_finding(client, reader, stored):
    response = get(client, reader, repository_name="acme/payments", branch_name="main")
    items = response.json()
    assert isinstance(items, list)
    by_id = {item["finding_id"]: item for item in items}
    assert {k: v["status"] for k, v in by_id.items()} == {
        "crit": "Active",
        "high": "Active",
        "low": "False positive",
        "gone": "Mitigated",
    }
    crit = by_id["crit"]
    for field in (
        "id",
        "title",
        "severity",
        "scan_type",
        "repository_name",
        "branch_name",
        "file_path",
        "line_number",
        "first_seen_at",
        "first_seen_build_id",
        "last_seen_at",
        "last_seen_build_id",
    ):
        assert field in crit
    assert (crit["severity"], crit["scan_type"]) == ("CRITICAL", "SAST")
    assert (crit["first_seen_build_id"], crit["last_seen_build_id"]) == ("1", "2")
    assert by_id["gone"]["last_seen_build_id"] == "1"
    assert by_id["gone"]["mitigated_on_build_id"] == "2"
    assert "raw" not in crit


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"branch_name": "main"}, ["crit", "high", "low", "gone"]),
        ({"branch_name": "develop"}, ["f0", "f1"]),
        ({"scan_type": "sca"}, ["f0", "f1"]),
        ({"severity": "critical"}, ["crit"]),
        ({"severity": "HIGH,Critical"}, ["crit", "high", "gone", "f0", "f1"]),
        # Active as the status says: the false positive ("low") is not.
        ({"active_only": "true", "branch_name": "main"}, ["crit", "high"]),
        ({"repository_name": "nope"}, []),
    ],
    ids=["branch", "other-branch", "scan-type", "severity", "severities", "active-only", "none"],
)
def test_filters(client, reader, stored, params, expected):
    assert ids(get(client, reader, **params)) == expected


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"severity": "URGENT"}, "severity"),
        ({"scan_type": "DAST"}, "scan_type"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"active_only": "maybe"}, "active_only"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()}, "cursor"),
    ],
    ids=[
        "severity",
        "scan-type",
        "limit-zero",
        "limit-huge",
        "limit-text",
        "bool",
        "cursor",
        "cursor-nested-5000-deep",
    ],
)
def test_bad_parameters_are_400_problems_naming_the_parameter(client, reader, stored, params, path):
    response = get(client, reader, **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["path"] for e in response.json()["errors"]] == [path]


def test_pages_follow_the_link_header_in_a_stable_order(client, reader, writer):
    post(client, writer, documented_body(sast(25)))
    seen, url, pages = [], None, 0
    params = {"limit": "10", "severity": "high"}
    while True:
        response = get(client, reader, **params)
        pages += 1
        seen += ids(response)
        link = response.get("Link")
        if not link:
            break
        url = re.match(r'<([^>]+)>; rel="next"', link).group(1)
        query = parse_qs(urlparse(url).query)
        assert query["severity"] == ["high"]  # filters are carried over
        params = {k: v[0] for k, v in query.items()}
    assert pages == 3
    assert seen == [f"f{i}" for i in range(25)]
    assert url.startswith("http://testserver/api/v1/findings?")


def test_reading_needs_read_findings(client, writer, db):
    from tests.apikeys.conftest import token_for
    from tests.factories import make_api_key

    _, plaintext = make_api_key(client_id="write-only", permissions=("write:findings",))
    token = token_for(client, plaintext, "write-only")
    response = get(client, token)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_a_page_costs_a_fixed_number_of_queries(
    client, reader, writer, django_assert_max_num_queries
):
    post(client, writer, documented_body(sast(300)))
    with django_assert_max_num_queries(3):  # the key, the findings, last_used_at at most
        response = get(client, reader, limit="300")
    assert len(response.json()) == 300
