"""SARIF logs written to break the reader (an outside probe's cases): values no scanner should
send, each a warning or a 400 naming it, never a 500, and nothing stored by a refused upload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from findings.models import Finding, ScannerRule, Upload
from findings.normalize import utf8_repaired
from findings.selectors import scanner_data_of
from findings.services import findings_ingest
from tests.factories import make_api_key
from tests.findings.test_sarif import (
    STREAM,
    assert_valid_sarif,
    export,
    read_both_ways,
    stored,
    upload,
)

pytestmark = pytest.mark.django_db


def _log(**result: Any) -> dict[str, Any]:
    """One Semgrep result of rule R1 (named by id and index) in a.py line 3."""
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "Semgrep", "version": "1.2", "rules": [{"id": "R1"}]}},
                "results": [
                    {
                        "ruleId": "R1",
                        "ruleIndex": 0,
                        "level": "note",
                        "message": {"text": "eval of user input"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "a.py"},
                                    "region": {"startLine": 3},
                                }
                            }
                        ],
                        **result,
                    }
                ],
            }
        ],
    }


def _text(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _warned(response: Any) -> set[str]:
    assert response.status_code == 201, response.content
    return {w["path"] for w in response.json()["warnings"]}


def test_a_file_uri_that_is_not_a_uri_is_kept_as_sent(client, writer):
    # "[" opens an IPv6 host to a URI parser: it used to be a 500.
    body = _log()
    body["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] = {
        "uri": "file://[x/a%20b.py"
    }
    body["runs"][0]["originalUriBaseIds"] = {"SRC": {"uri": "file://[::1/src/"}}
    response = upload(client, writer, body)
    uri = "runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri"
    assert _warned(response) == {uri}
    assert [f.file_path for f in stored()] == ["file://[x/a b.py"]


@pytest.mark.parametrize(
    ("where", "value"),
    [("result", 10**400), ("rule", 10**400), ("result", "1e400"), ("rule", "1e400")],
    ids=["result-huge-integer", "rule-huge-integer", "result-1e400", "rule-1e400"],
)
def test_a_security_severity_out_of_any_range_is_a_warning(client, writer, where, value):
    body = _log()
    run = body["runs"][0]
    target = run["results"][0] if where == "result" else run["tool"]["driver"]["rules"][0]
    target["properties"] = {"security-severity": 0}
    # 1e400 as a JSON number (no float holds it), not as text.
    text = _text(body).replace(b'"security-severity": 0', f'"security-severity": {value}'.encode())
    response = upload(client, writer, text)
    path = "runs[0].results[0]" if where == "result" else "runs[0].tool.driver.rules[0]"
    assert f"{path}.properties.security-severity" in _warned(response)
    (finding,) = stored()
    assert (finding.severity, finding.title) == ("LOW", "eval of user input")  # by its level
    # The rule as stored is exported (a number no float holds, as its text).
    document = export(client, writer)
    assert_valid_sarif(document)
    assert len(document["runs"][0]["results"]) == 1


def test_nul_characters_in_the_tools_name_and_version_are_replaced(client, writer):
    body = _log()
    body["runs"][0]["tool"]["driver"].update(name="Semgrep\x00", version="1\x002")
    response = upload(client, writer, body)
    driver = "runs[0].tool.driver"
    assert _warned(response) == {f"{driver}.name", f"{driver}.version"}
    (finding,) = stored()
    assert finding.raw["sarif"]["tool"] == {"name": "Semgrep\ufffd", "version": "1\ufffd2"}
    assert Upload.objects.get().metadata["tools"] == [
        {"name": "Semgrep\ufffd", "version": "1\ufffd2"}
    ]


def test_a_rules_own_id_with_a_nul_is_stored_replaced(client, writer):
    # The result names the rule by index (and a clean id of its own: its identity).
    body = _log()
    body["runs"][0]["tool"]["driver"]["rules"][0]["id"] = "R1\x00"
    assert upload(client, writer, body).status_code == 201
    assert list(ScannerRule.objects.values_list("rule_id", flat=True)) == ["R1\ufffd"]
    assert [f.finding_id[:3] for f in stored()] == ["R1:"]


@pytest.mark.parametrize(
    "bad",
    [
        b'"message": {"text": "eval of user input \xe9"}',  # a decoded field (Latin-1)
        b'"message": {"text": "eval of user input"}, "odd": "\xff"',  # a field not read
    ],
    ids=["message", "unread-field"],
)
def test_bytes_that_are_not_utf8_are_read_as_their_values_alike_every_time(client, writer, bad):
    text = _text(_log()).replace(b'"message": {"text": "eval of user input"}', bad)
    text = text.replace(
        b'"rules": [{"id": "R1"}]', b'"rules": [{"id": "R1", "help": {"text": "\xfe"}}]'
    )
    response = upload(client, writer, text, build_id="1")
    assert _warned(response) == {"$"}
    (finding,) = stored()
    kept = json.dumps(scanner_data_of(finding), ensure_ascii=False) + finding.description
    assert "\\xfe" in kept  # the rule's help, as the text \xfe
    assert ("\\xe9" if b"\xe9" in bad else "\\xff") in kept
    # The same bytes again: the same finding, nothing new.
    again = upload(client, writer, text, build_id="2")
    assert (again.json()["created"], again.json()["updated"]) == (0, 1)


def test_two_file_names_that_differ_only_in_bytes_not_utf8_stay_two_findings(client, writer):
    body = _log()
    second = json.loads(json.dumps(body["runs"][0]["results"][0]))
    second["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "b.py"
    body["runs"][0]["results"].append(second)
    text = _text(body).replace(b'"a.py"', b'"caf\xe9.py"').replace(b'"b.py"', b'"caf\xe8.py"')
    response = upload(client, writer, text)
    assert _warned(response) == {"$"}
    assert response.json()["created"] == 2  # U+FFFD for both would have made them one
    assert sorted(f.file_path for f in stored()) == ["caf\\xe8.py", "caf\\xe9.py"]


@pytest.mark.parametrize("at", [-1, 0, 1, 2, 3])
def test_a_body_is_checked_for_utf8_across_its_steps(at):
    # A character of three bytes and a byte that is not UTF-8 around the 1 MiB step.
    head = b'{"a": "' + b"x" * ((1 << 20) - 7 + at)
    body = bytearray(head + "\u2019".encode() + b'\xe9"}')
    repaired = utf8_repaired(body)
    assert repaired is not None
    assert json.loads(repaired)["a"].endswith("x\u2019\\xe9")
    assert utf8_repaired(bytearray(head + "\u2019".encode() + b'"}')) is None


def test_an_empty_log_without_a_scan_type_is_a_400_and_with_one_an_empty_scan(client, writer):
    upload(client, writer, _log(), scan_type="SAST", build_id="1")
    empty = {"version": "2.1.0", "runs": []}
    response = upload(client, writer, empty, build_id="2")
    assert response.status_code == 400, response.content
    assert [e["path"] for e in response.json()["errors"]] == ["scan_type"]
    assert [f.active for f in stored()] == [True]  # nothing mitigated by the refused one
    response = upload(client, writer, empty, scan_type="SAST", build_id="3")
    assert (response.status_code, response.json()["mitigated"]) == (201, 1)


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(client, writer):
    # JSON "\\u0000" is a backslash and the text u0000. A NUL in the rule's help (kept as
    # sent, NULs replaced) makes the reader look for NULs in every result.
    body = _log(message={"text": "path C:\\u0000"})
    body["runs"][0]["tool"]["driver"]["rules"][0]["help"] = {"text": "a\x00b"}
    response = upload(client, writer, body)
    assert _warned(response) == set()  # it said NULs were replaced in the raw data
    (finding,) = stored()
    assert finding.raw["sarif"]["result"]["message"]["text"] == "path C:\\u0000"


def test_stream_parameters_with_nul_are_stored_as_their_columns_are():
    # Over HTTP a NUL in the query is refused first; a direct caller gets the same cleaning.
    api_key, _ = make_api_key(client_id="direct")
    result = findings_ingest(
        body=_text(_log()),
        api_key=api_key,
        client_id="direct",
        repository_patterns=["*"],
        media_type="application/sarif+json",
        params={**STREAM, "build_id": "b\x001", "code_path": "src\x00"},
    )
    assert {w["path"] for w in result.warnings} == {"build_id", "code_path"}
    metadata = Upload.objects.get().metadata
    assert (metadata["build_id"], metadata["code_path"]) == ("b\ufffd1", "src\ufffd")
    assert Finding.objects.get().last_seen_build_id == "b\ufffd1"


@pytest.mark.parametrize(
    "body",
    [
        _text(_log(properties={"security-severity": "1e400"})),
        _text(_log(message={"text": "C:\\u0000"})),
        _text(_log()).replace(b"eval of", b"\xe9val of"),
    ],
    ids=["score-text-out-of-range", "escaped-backslash-u0000", "latin-1"],
)
def test_hostile_logs_are_read_alike_on_both_paths(body):
    fast, careful = read_both_ways(body)
    assert fast == careful
    assert fast[0]


@pytest.mark.parametrize(
    "odd",
    [
        {"defaultConfiguration": {"level": "fatal", "rank": 101, "enabled": "yes"}},
        {"shortDescription": None},
        {"shortDescription": {"text": 5}},
        {"fullDescription": {"text": "ok", "html": "<b>x</b>"}},
        {"name": 5},
        {"properties": "x"},
        {"properties": {"tags": "vulnerability"}},
        {"properties": {"tags": ["a", "a", 3]}},
        {"relationships": [{"target": "CWE-79"}, {"target": {"id": 79, "index": -2}}]},
        {"deprecatedIds": [1], "guid": "not-a-guid", "scannerOwnField": True},
    ],
    ids=[
        "level-rank-enabled",
        "short-description-null",
        "short-description-number",
        "description-extra-field",
        "name-number",
        "properties-text",
        "tags-text",
        "tags-repeated",
        "relationships",
        "ids-guid-unknown-field",
    ],
)
def test_a_rule_stored_with_odd_values_is_exported_as_valid_sarif(client, writer, odd):
    body = _log()
    rule = body["runs"][0]["tool"]["driver"]["rules"][0]
    rule.update(help={"text": "Never eval input."}, **odd)
    assert upload(client, writer, body).status_code == 201
    document = export(client, writer)
    assert_valid_sarif(document)
    (exported,) = document["runs"][0]["tool"]["driver"]["rules"]
    assert (exported["id"], exported["help"]) == ("R1", {"text": "Never eval input."})


def _round_trip(client: Any, writer: str) -> dict[str, tuple[str, str]]:
    """Each open finding's (title, description) after its export was uploaded to another
    branch, by finding_id."""
    response = upload(client, writer, export(client, writer), branch_name="copy")
    assert response.status_code == 201, response.content
    return {f.finding_id: (f.title, f.description) for f in stored("copy") if f.active}


def test_a_result_naming_by_index_a_rule_of_another_id_round_trips(client, writer):
    body = _log(ruleId="R2")  # ruleIndex 0 is rule R1, whose description titles the finding
    body["runs"][0]["tool"]["driver"]["rules"][0].update(
        shortDescription={"text": "Eval of input"}, fullDescription={"text": "Never eval."}
    )
    assert upload(client, writer, body).status_code == 201
    original = {f.finding_id: (f.title, f.description) for f in stored()}
    assert list(original.values()) == [("Eval of input", "eval of user input")]
    assert _round_trip(client, writer) == original


def test_an_export_describes_a_rule_as_its_newest_open_finding_does(client, writer):
    # The scanner's text of a rule changes between builds (Trivy's of a CVE does); the
    # finding fixed before the change keeps the old text, the open one has the new.
    body = _log()
    first = body["runs"][0]["results"][0]
    second = json.loads(json.dumps(first))
    second["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "b.py"
    body["runs"][0]["results"].append(second)
    rule = body["runs"][0]["tool"]["driver"]["rules"][0]
    rule["shortDescription"] = {"text": "Old title"}
    assert upload(client, writer, body, build_id="1").status_code == 201
    rule["shortDescription"] = {"text": "New title"}
    del body["runs"][0]["results"][0]  # a.py fixed
    assert upload(client, writer, body, build_id="2").json()["mitigated"] == 1
    assert {f.file_path: f.title for f in stored()} == {"a.py": "Old title", "b.py": "New title"}
    copied = _round_trip(client, writer)
    assert [title for title, _ in copied.values()] == ["New title"]


def test_an_unreadable_start_line_costs_a_result_its_line_not_its_file(client, writer):
    # Two results of one rule and one message in two files: their files keep them apart.
    body = _log()
    first = body["runs"][0]["results"][0]
    first["locations"][0]["physicalLocation"]["region"]["startLine"] = 12.5
    second = json.loads(json.dumps(first))
    second["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "b.py"
    body["runs"][0]["results"].append(second)
    response = upload(client, writer, body)
    region = "locations[0].physicalLocation.region.startLine"
    assert _warned(response) == {f"runs[0].results[{i}].{region}" for i in (0, 1)}
    assert response.json()["created"] == 2
    assert [(f.file_path, f.line_number) for f in stored()] in (
        [("a.py", None), ("b.py", None)],
        [("b.py", None), ("a.py", None)],
    )


def test_an_export_describes_a_rule_as_the_open_finding_seen_last_does(client, writer):
    # main and feature see the old text; main's next scan sees the new one.
    body = _log()
    rule = body["runs"][0]["tool"]["driver"]["rules"][0]
    rule["shortDescription"] = {"text": "Old title"}
    upload(client, writer, body, build_id="1")
    upload(client, writer, body, branch_name="feature", build_id="1")
    rule["shortDescription"] = {"text": "New title"}
    upload(client, writer, body, build_id="2")
    (exported,) = export(client, writer)["runs"][0]["tool"]["driver"]["rules"]
    assert exported["shortDescription"] == {"text": "New title"}


def test_a_valid_rule_is_exported_as_the_scanner_sent_it_and_an_odd_uri_left_out(client, writer):
    body = _log()
    relationship = {
        "target": {"id": "79", "toolComponent": {"name": "CWE"}},
        "kinds": ["superset"],
        "description": {"id": "related", "arguments": ["CWE-79"]},
    }
    rule = body["runs"][0]["tool"]["driver"]["rules"][0]
    rule.update(relationships=[relationship], helpUri="https://example.com/r1")
    second = json.loads(json.dumps(body))
    second["runs"][0]["tool"]["driver"]["rules"][0].update(id="R2", helpUri="see the wiki")
    second["runs"][0]["results"][0]["ruleId"] = "R2"
    upload(client, writer, body)
    upload(client, writer, second)
    document = export(client, writer)
    assert_valid_sarif(document)
    rules = {r["id"]: r for r in document["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["R1"] == rule
    assert "helpUri" not in rules["R2"]
    assert rules["R2"]["relationships"] == [relationship]


def test_a_file_name_escaped_as_lone_surrogates_reads_as_its_bytes_do(client, writer):
    # Python's json writes a byte of a file name that is not UTF-8 as a lone surrogate
    # (\udce9); sent as the byte itself or so escaped, it is the same file, the same finding.
    escaped = _text(_log()).replace(b'"a.py"', b'"caf\\udce9.py"')
    escaped = escaped.replace(b'"eval of user input"', b'"eval \\ud800"')
    response = upload(client, writer, escaped, build_id="1")
    assert _warned(response) == {"$"}
    (finding,) = stored()
    assert (finding.file_path, finding.title) == ("caf\\xe9.py", "eval \\ud800")
    as_bytes = escaped.replace(b"\\udce9", b"\xe9")
    again = upload(client, writer, as_bytes, build_id="2")
    assert (again.json()["created"], again.json()["updated"]) == (0, 1)
