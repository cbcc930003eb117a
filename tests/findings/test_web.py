"""The staff pages, through Django's test client: access, filters, paging, triage."""

import re

import pytest
from django.test import Client

from findings.models import Finding, FindingEvent
from findings.search import search_index_catch_up
from tests.factories import StaffFactory, UserFactory
from tests.findings.conftest import documented_body, post, sast

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/findings/", "/findings/1/"])
def test_anonymous_visitors_are_sent_to_the_login_page(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={url}")


@pytest.mark.parametrize("url", ["/", "/findings/", "/findings/1/"])
def test_signed_in_users_without_staff_rights_get_a_403(url):
    client = Client()
    client.force_login(UserFactory())
    response = client.get(url)
    assert response.status_code == 403
    assert b"Staff rights are required" in response.content


def test_the_login_page_signs_staff_in(staff):
    client = Client()
    page = client.get("/accounts/login/?next=/findings/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content
    response = client.post(
        "/accounts/login/",
        {"username": "analyst", "password": "correct horse battery staple", "next": "/findings/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/findings/"


def test_the_dashboard_counts_open_findings_per_repository(client, writer, staff_client):
    post(client, writer, documented_body(sast(4), repository="acme/api"))
    post(client, writer, documented_body(sast(2, severity="Critical"), repository="acme/web"))
    staff_client.post(
        f"/findings/{Finding.objects.get(repository_name='acme/api', finding_id='f0').pk}/triage/",
        {"action": "false_positive"},
    )
    html = staff_client.get("/").content.decode()
    assert re.search(r'<span class="number">5</span> open findings', html)
    assert 'id="open-findings-chart"' in html
    # One bar per repository, each segment linking to the list pre-filtered.
    assert html.count('<g class="bar">') == 2
    assert "/findings/?repository_name=acme%2Fweb&amp;severity=CRITICAL&amp;status=Active" in html


def _ids(response):
    return re.findall(r'href="/findings/(\d+)/"', response.content.decode())


def test_filters_search_and_sorting(client, writer, staff_client):
    findings = sast(6)
    findings[2] |= {"severity": "Critical", "title": "Hard-coded AWS key", "cve": "CVE-2024-1"}
    findings[4] |= {"component_name": "log4j-core", "severity": "Low"}
    post(client, writer, documented_body(findings))
    post(client, writer, documented_body(sast(2), branch="develop"))

    def titles(**params):
        page = staff_client.get("/findings/", params)
        assert page.status_code == 200
        return re.findall(r'href="/findings/\d+/"[^>]*>([^<]+)</a>', page.content.decode())

    assert titles(severity="CRITICAL") == ["Hard-coded AWS key"]
    assert titles(q="aws") == ["Hard-coded AWS key"]
    assert titles(q="cve-2024") == ["Hard-coded AWS key"]
    assert titles(q="log4j") == ["Issue 4"]
    assert len(titles(branch_name="develop")) == 2
    assert titles(sort="severity")[0] == "Hard-coded AWS key"
    assert titles(sort="severity")[-1] == "Issue 4"
    assert titles(sort="oldest")[:2] == ["Issue 0", "Issue 1"]


def test_keyset_pages_cover_everything_once_forwards_and_backwards(client, writer, staff_client):
    findings = sast(120)
    for index, finding in enumerate(findings):
        finding["severity"] = ["Critical", "High", "Medium", "Low", "Info"][index % 5]
    post(client, writer, documented_body(findings))
    seen, pages, url = [], [], "/findings/?sort=severity"
    while url:
        page = staff_client.get(url)
        pages.append(url)
        seen += _ids(page)
        match = re.search(r'href="(\?[^"]*direction=next[^"]*)" rel="next"', page.content.decode())
        url = "/findings/" + match.group(1).replace("&amp;", "&") if match else None
    assert len(pages) == 3
    assert len(seen) == len(set(seen)) == 120
    # Back from the last page gives the middle page again, in the same order.
    last = staff_client.get(pages[-1]).content.decode()
    back = re.search(r'href="(\?[^"]*direction=previous[^"]*)" rel="prev"', last).group(1)
    assert _ids(staff_client.get("/findings/" + back.replace("&amp;", "&"))) == seen[50:100]


def test_the_list_costs_a_bounded_number_of_queries(
    client, writer, staff_client, django_assert_max_num_queries
):
    post(client, writer, documented_body(sast(120)))
    search_index_catch_up()  # as `manage.py indexsearch` does every minute
    for params in ({}, {"q": "Issue 1"}, {"severity": "HIGH", "sort": "newest"}):
        # session, user, expired risk acceptances (an index probe), streams, page, capped
        # count, the user's permissions (user and group) for the triage form, and for a
        # search a look at the search queue.
        with django_assert_max_num_queries(9):
            assert staff_client.get("/findings/", params).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage!!"},
        {"cursor": "WzVd"},
        {"cursor": "WzEsMl0", "sort": "newest"},
        {"cursor": "WyJhIiwxXQ"},
        {"cursor": "W3RydWUsMV0"},
    ],
    ids=["garbage", "one-value-for-severity", "two-values-for-newest", "text", "booleans"],
)
def test_a_broken_page_link_says_so(staff_client, params):
    response = staff_client.get("/findings/", params)
    assert response.status_code == 200
    assert b"This page link is broken" in response.content


def test_the_detail_page_shows_every_field_the_raw_data_and_the_history(
    client, writer, staff_client
):
    finding = sast(1)[0] | {
        "cve": ["CVE-2021-44228"],
        "component_name": "log4j-core",
        "description": "JNDI lookup",
        "vendor_field": {"x": 1},
    }
    post(client, writer, documented_body([finding], build_id="b1"))
    post(client, writer, documented_body([], build_id="b2"))
    pk = Finding.objects.get().pk
    html = staff_client.get(f"/findings/{pk}/").content.decode()
    for text in (
        "CVE-2021-44228",
        "log4j-core",
        "JNDI lookup",
        "&quot;vendor_field&quot;",
        "Mitigated in build b2",
        "build b1",
    ):
        assert text in html, text


def test_triage_records_who_when_and_why_and_uploads_respect_it(
    client, writer, staff, staff_client
):
    post(client, writer, documented_body(sast(1)))
    pk = Finding.objects.get().pk
    refused = staff_client.post(f"/findings/{pk}/triage/", {"action": "risk_accepted"})
    assert refused.status_code == 302
    assert not Finding.objects.get().risk_accepted  # a reason is required
    staff_client.post(
        f"/findings/{pk}/triage/", {"action": "risk_accepted", "reason": "behind the VPN only"}
    )
    finding = Finding.objects.get()
    assert (finding.risk_accepted, finding.triaged_by, finding.triage_reason) == (
        True,
        staff,
        "behind the VPN only",
    )
    post(client, writer, documented_body(sast(1, title="new title")))
    assert Finding.objects.get().risk_accepted
    staff_client.post(f"/findings/{pk}/triage/", {"action": "reopen"})
    assert not Finding.objects.get().risk_accepted
    kinds = list(FindingEvent.objects.values_list("kind", "actor__username"))
    assert kinds == [("risk_accepted", "analyst"), ("reopened", "analyst")]


def test_staff_without_the_triage_permission_can_look_but_not_triage(client, writer):
    post(client, writer, documented_body(sast(1)))
    pk = Finding.objects.get().pk
    viewer = Client()
    viewer.force_login(StaffFactory())
    page = viewer.get(f"/findings/{pk}/")
    assert page.status_code == 200
    assert b"Mark false positive" not in page.content
    assert viewer.post(f"/findings/{pk}/triage/", {"action": "false_positive"}).status_code == 403
    assert not Finding.objects.get().false_positive


def test_triage_forms_need_a_csrf_token(client, writer, staff):
    post(client, writer, documented_body(sast(1)))
    pk = Finding.objects.get().pk
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(f"/findings/{pk}/triage/", {"action": "false_positive"}).status_code == 403
    assert not Finding.objects.get().false_positive


@pytest.mark.parametrize("title", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'])
def test_html_in_scanner_data_is_escaped_on_every_page(client, writer, staff_client, title):
    finding = sast(1)[0] | {"title": title, "file_path": title, "description": title}
    post(client, writer, documented_body([finding], repository=f"acme/{title}"))
    pk = Finding.objects.get().pk
    for url in ("/", "/findings/", f"/findings/{pk}/"):
        html = staff_client.get(url).content.decode()
        assert title not in html, url
        assert "&lt;" in html
