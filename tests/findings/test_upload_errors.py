"""Bad uploads get a clear 400 listing every problem by JSON path, and store nothing."""

import copy
import json

import pytest

from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from findings.models import Finding, FindingEvent, Stream, Upload
from tests.apikeys.conftest import token_for
from tests.factories import make_api_key
from tests.findings.conftest import CLI_SECRET, URL, cli_body, documented_body, post, sast

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def assert_nothing_stored():
    assert Upload.objects.count() == 0
    assert Finding.objects.count() == 0
    assert FindingEvent.objects.count() == 0
    assert Stream.objects.count() == 0


def nested(depth):
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def body_with(finding_changes=None, metadata_changes=None, drop=()):
    body = documented_body(sast(3))
    for key, value in (metadata_changes or {}).items():
        body["metadata"][key] = value
    for key, value in (finding_changes or {}).items():
        body["findings"][1][key] = value
    for key in drop:
        section, _, name = key.partition(".")
        if section == "metadata":
            del body["metadata"][name]
        else:
            del body["findings"][1][name]
    return body


# What identifies a stream or a finding must be valid: each of these refuses the upload.
# (What only describes a finding is tolerated: see test_tolerant.py.)
INVALID = [
    # (id, body, expected paths)
    ("title-missing", body_with(drop=["finding.title"]), ["findings[1].title"]),
    ("title-null", body_with({"title": None}), ["findings[1].title"]),
    ("title-empty", body_with({"title": "   "}), ["findings[1].title"]),
    (
        "title-an-object",
        body_with({"title": {"a": [{"b": [1, {"c": None}]}]}}),
        ["findings[1].title"],
    ),
    ("finding-id-missing", body_with(drop=["finding.finding_id"]), ["findings[1].finding_id"]),
    ("finding-id-blank", body_with({"finding_id": "  "}), ["findings[1].finding_id"]),
    ("finding-id-10k", body_with({"finding_id": "x" * 10_000}), ["findings[1].finding_id"]),
    ("finding-id-a-list", body_with({"finding_id": ["f1"]}), ["findings[1].finding_id"]),
    ("finding-id-nul", body_with({"finding_id": "f\x001"}), ["findings[1].finding_id"]),
    # 255 characters, but four bytes each: too long for one unique-index entry.
    (
        "finding-id-astral",
        body_with({"finding_id": "\U0001f512" * 255}),
        ["findings[1].finding_id"],
    ),
    ("scan-type-unknown", body_with({"scan_type": "DAST"}), ["findings[1].scan_type"]),
    ("scan-type-a-number", body_with({"scan_type": 7}), ["findings[1].scan_type"]),
    ("scan-type-disagrees", body_with({"scan_type": "SCA"}), ["findings[1].scan_type"]),
    (
        "repository-mismatch",
        body_with({"repository_name": "evil/other"}),
        ["findings[1].repository_name"],
    ),
    (
        "repository-astral",
        body_with(metadata_changes={"repository_name": "\U0001f512" * 255}),
        ["metadata.repository_name"],
    ),
    (
        "metadata-repository-missing",
        body_with(drop=["metadata.repository_name"]),
        ["metadata.repository_name"],
    ),
    (
        "metadata-repository-null",
        body_with(metadata_changes={"repository_name": None}),
        ["metadata.repository_name"],
    ),
    (
        "metadata-branch-number",
        body_with(metadata_changes={"branch_name": 5}),
        ["metadata.branch_name"],
    ),
    (
        "metadata-branch-nul",
        body_with(metadata_changes={"branch_name": "ma\x00in"}),
        ["metadata.branch_name"],
    ),
    (
        "metadata-scan-type-bad",
        body_with(metadata_changes={"scan_type": "XSS"}),
        ["metadata.scan_type"],
    ),
    ("nested-100-in-metadata", body_with(metadata_changes={"ci": nested(100)}), ["metadata"]),
    (
        "findings-not-a-list",
        {"metadata": documented_body([])["metadata"], "findings": {}},
        ["findings"],
    ),
    (
        "finding-not-an-object",
        {**documented_body([]), "findings": [sast(1)[0], "junk", 3]},
        ["findings[1]", "findings[2]"],
    ),
    ("metadata-missing", {"findings": sast(1)}, ["metadata"]),
    ("top-level-list", [documented_body(sast(1))], ["$"]),
    ("cli-data-not-object", {"findings_data": []}, ["findings_data"]),
    (
        "cli-metadata-missing",
        {"findings_data": {"findings": [CLI_SECRET]}},
        ["findings_data.metadata"],
    ),
    (
        "cli-path-in-cli-envelope",
        cli_body([copy.deepcopy(CLI_SECRET) | {"finding_id": ""}]),
        ["findings_data.findings[0].finding_id"],
    ),
    ("no-scan-type-anywhere", documented_body(sast(1), scan_type=None), ["metadata.scan_type"]),
    (
        "findings-disagree",
        documented_body(
            [sast(1)[0] | {"scan_type": "SAST"}, sast(2)[1] | {"scan_type": "SCA"}], scan_type=None
        ),
        ["findings[1].scan_type"],
    ),
]


@pytest.mark.parametrize(("body", "paths"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_an_invalid_body_is_a_400_listing_each_problem_and_stores_nothing(
    client, writer, body, paths
):
    response = post(client, writer, body)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["path"] for e in problem["errors"]] == paths
    assert all(e["message"] for e in problem["errors"])
    assert_nothing_stored()


def test_every_problem_is_listed_not_only_the_first(client, writer):
    findings = sast(5)
    findings[0]["title"] = None
    findings[2]["scan_type"] = "DAST"
    findings[3]["severity"] = "SEVERE"  # only describes: a warning, not a problem
    findings[4]["finding_id"] = ""
    body = documented_body(findings)
    body["metadata"]["branch_name"] = ""
    problem = post(client, writer, body).json()
    assert [e["path"] for e in problem["errors"]] == [
        "metadata.branch_name",
        "findings[0].title",
        "findings[2].scan_type",
        "findings[4].finding_id",
    ]
    assert_nothing_stored()


def test_a_bad_finding_at_the_end_of_a_large_upload_stores_nothing(client, writer):
    """Findings are written while the rest are read: the one at the end that is refused
    takes back everything before it, in a new stream and in one that has findings."""
    findings = sast(5000)
    findings[-1]["finding_id"] = ""
    response = post(client, writer, documented_body(findings))
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["findings[4999].finding_id"]
    assert_nothing_stored()
    assert post(client, writer, documented_body(sast(10), build_id="1")).status_code == 201
    findings[-1]["finding_id"] = "f4999"
    findings[-1]["scan_type"] = "SCA"
    response = post(client, writer, documented_body(findings, build_id="2"))
    assert response.status_code == 400
    assert sorted(Finding.objects.values_list("finding_id", flat=True)) == sorted(
        f"f{i}" for i in range(10)
    )
    assert Upload.objects.count() == 1


def test_an_identity_holding_a_lone_surrogate_is_refused(client, writer):
    """Escaped lone surrogates are replaced with U+FFFD where they only describe (a warning),
    but an identity cannot be repaired: its path is an error."""
    body = (
        b'{"metadata": {"repository_name": "acme/\\ud800", "branch_name": "main", '
        b'"code_path": ".", "scan_type": "SAST"}, "findings": ['
        b'{"finding_id": "f\\udce9", "title": "t"}]}'
    )
    response = post(client, writer, body)
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == [
        "metadata.repository_name",
        "findings[0].finding_id",
    ]
    assert_nothing_stored()


def test_a_flood_of_errors_is_capped_and_counted(client, writer):
    body = documented_body([{"finding_id": f"x{i}"} for i in range(3000)])
    problem = post(client, writer, body).json()
    assert len(problem["errors"]) == 1000
    assert "3000 problem" in problem["detail"]
    assert_nothing_stored()


@pytest.mark.parametrize(
    "raw",
    [
        b" ",
        b"{",
        b"not json",
        b'{"metadata": }',
        b"\xff\xfe",
        b"[" * 5000,
        b"[" * 5000 + b"]" * 5000,
        b'{"metadata": {}, "findings": [{"title": "a\tb"}]}',
    ],
    ids=[
        "blank",
        "truncated",
        "text",
        "syntax",
        "not-utf8",
        "too-deep",
        "deeper-than-we-read",
        "raw-control-character",
    ],
)
def test_a_body_that_is_not_json_is_a_400(client, writer, raw):
    response = post(client, writer, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert_nothing_stored()


def test_an_empty_json_body_is_a_400(client, writer):
    response = client.post(
        URL,
        data=b"",
        content_type="application/json",
        CONTENT_TYPE="application/json",
        HTTP_AUTHORIZATION=f"Bearer {writer}",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert_nothing_stored()


def test_a_body_over_the_limit_is_a_413_problem(client, writer, settings):
    settings.GERION_MAX_BODY_BYTES = 10_000
    response = post(client, writer, documented_body(sast(200)))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert_nothing_stored()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""],
    ids=["text", "form", "xml", "none"],
)
def test_a_non_json_content_type_is_a_415_problem(client, writer, content_type):
    response = client.post(
        URL,
        data=json.dumps(documented_body(sast(1))),
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {writer}",
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert_nothing_stored()


def test_a_token_without_write_findings_gets_a_403(client, reader):
    response = post(client, reader, documented_body(sast(1)))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert_nothing_stored()


def test_a_revoked_keys_token_gets_a_401(client):
    _, plaintext = make_api_key(client_id="leaky")
    token = token_for(client, plaintext, "leaky")
    api_key_revoke(api_key=ApiKey.objects.get(client_id="leaky"), actor_name="tests")
    response = post(client, token, documented_body(sast(1)))
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    assert_nothing_stored()


def test_no_token_gets_a_401_with_a_challenge(client, db):
    response = client.post(
        URL, data=json.dumps(documented_body(sast(1))), content_type="application/json"
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored()


def test_a_failure_in_the_middle_of_a_merge_leaves_the_stream_as_it_was(client, writer):
    """The second scan of a stream (the merge path: mitigate, update, insert): the database
    refuses one of its new rows after the others were written; all of it is taken back."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE findings_finding ADD CONSTRAINT test_reject_f7 CHECK (finding_id <> 'f7')"
        )
    assert post(client, writer, documented_body(sast(5), build_id="1")).status_code == 201
    before = sorted(Finding.objects.values_list("finding_id", "active", "title"))
    second = sast(9, title="changed")[2:]  # f0, f1 gone; f2-f4 changed; f5-f8 new (f7 refused)
    response = post(client, writer, documented_body(second, build_id="2"))
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert sorted(Finding.objects.values_list("finding_id", "active", "title")) == before
    assert Upload.objects.count() == 1
    assert FindingEvent.objects.count() == 0


def test_a_failure_in_the_middle_of_the_write_leaves_nothing_half_written(client, writer):
    """The database refuses a row after the upload and some findings were written: the
    transaction takes all of it back."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE findings_finding ADD CONSTRAINT test_reject_f2 CHECK (finding_id <> 'f2')"
        )
    response = post(client, writer, documented_body(sast(5)))
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert_nothing_stored()
