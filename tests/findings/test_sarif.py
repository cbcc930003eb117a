"""SARIF 2.1.0 in and out: real scanners' logs (tests/findings/fixtures/sarif, see SOURCES.md)
uploaded as they are, with the stream in query parameters; and the same findings exported as
one SARIF log that the SARIF 2.1.0 schema accepts and that uploads back as the same findings."""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
from django.test import Client

from findings.models import Finding, ScannerRule
from findings.normalize import RULE_SAMPLE
from findings.readers.sarif import FINGERPRINT_KEY, read_sarif
from findings.rules import rules_probe
from findings.selectors import scanner_data_of
from tests.findings.conftest import URL, trivy_log

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "sarif"
SARIF = "application/sarif+json"
STREAM = {"repository_name": "acme/web-shop", "branch_name": "main"}


def log(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.sarif").read_text())


def upload(client: Client, token: str, body: Any, **params: Any):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    query = urlencode({**STREAM, **params})
    return client.post(
        f"{URL}?{query}", data=data, content_type=SARIF, HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def export(client: Client, token: str, path: str = URL, **params: Any) -> dict[str, Any]:
    response = client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT=SARIF)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == SARIF
    return json.loads(b"".join(response.streaming_content))  # type: ignore[attr-defined]


def stored(branch: str = "main") -> list[Finding]:
    return list(Finding.objects.filter(branch_name=branch).order_by("finding_id"))


SCHEMA = json.loads((FIXTURES / "sarif-schema-2.1.0-rtm.5.json").read_text())


def assert_valid_sarif(document: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)


# (fixture, scan type inferred from its tool, severities, CWEs, vulnerability ids)
SCANNERS: dict[str, tuple[str, dict[str, int], set[str], set[str]]] = {
    "semgrep": ("SAST", {"MEDIUM": 4}, set(), set()),
    "trivy": (
        "SCA",
        {"MEDIUM": 6, "LOW": 2},
        set(),
        {"CVE-2019-1549", "CVE-2019-1551", "CVE-2019-1563", "CVE-2019-1547"},
    ),
    "checkov": ("IAC", {"HIGH": 4}, set(), set()),
    "gitleaks": ("SECRETS", {"MEDIUM": 1}, set(), set()),
    "codeql": ("SAST", {"MEDIUM": 2}, set(), set()),
    # Rule ids "CVE-1999-0001-package-1"; security-severity 4.0 and 1.0 (GitHub's bands).
    "grype": ("SCA", {"MEDIUM": 1, "LOW": 1}, set(), {"CVE-1999-0001", "CVE-1999-0002"}),
}


@pytest.mark.parametrize("name", list(SCANNERS))
def test_each_scanners_log_is_stored_one_finding_per_result(client, writer, name):
    scan_type, severities, cwes, cves = SCANNERS[name]
    results = log(name)["runs"][0]["results"]
    response = upload(client, writer, (FIXTURES / f"{name}.sarif").read_bytes(), build_id="1")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == len(results)
    assert response.json()["warnings"] == []
    findings = stored()
    assert len(findings) == len(results)
    assert {f.scan_type for f in findings} == {scan_type}
    assert Counter(f.severity for f in findings) == severities
    assert {c for f in findings for c in f.cwe} == cwes
    assert {c for f in findings for c in f.cve} == cves
    assert all(f.title and f.file_path and f.line_number for f in findings)


@pytest.mark.parametrize("name", list(SCANNERS))
def test_uploading_a_scanners_log_again_stores_nothing_twice(client, writer, name):
    body = (FIXTURES / f"{name}.sarif").read_bytes()
    first = upload(client, writer, body, build_id="1").json()
    again = upload(client, writer, body, build_id="2")
    assert again.status_code == 201, again.content
    assert (again.json()["created"], again.json()["updated"]) == (0, first["created"])
    assert Finding.objects.count() == first["created"]


@pytest.mark.parametrize("name", list(SCANNERS))
def test_a_result_absent_from_the_next_build_is_mitigated_in_it(client, writer, name):
    body = log(name)
    upload(client, writer, body, build_id="1")
    gone = stored()
    next_build = copy.deepcopy(body)
    del next_build["runs"][0]["results"][0]
    response = upload(client, writer, next_build, build_id="2")
    assert response.status_code == 201, response.content
    assert response.json()["mitigated"] == 1
    now = {f.finding_id: f for f in stored()}
    mitigated = [f for f in now.values() if not f.active]
    assert len(mitigated) == 1
    assert mitigated[0].mitigated_on_build_id == "2"
    assert {f.finding_id for f in gone} == set(now)


@pytest.mark.parametrize("missing", ["repository_name", "branch_name"])
@pytest.mark.parametrize("name", list(SCANNERS))
def test_a_missing_stream_parameter_is_a_400_naming_it(client, writer, name, missing):
    query = urlencode({k: v for k, v in STREAM.items() if k != missing})
    response = client.post(
        f"{URL}?{query}",
        data=(FIXTURES / f"{name}.sarif").read_bytes(),
        content_type=SARIF,
        HTTP_AUTHORIZATION=f"Bearer {writer}",
    )
    assert response.status_code == 400
    assert {"path": missing, "message": "is required (a query parameter)"} in response.json()[
        "errors"
    ]
    assert Finding.objects.count() == 0


def test_one_rule_in_four_files_is_four_findings(client, writer):
    upload(client, writer, log("checkov"))
    files = {f.file_path for f in stored()}
    assert files == {
        "frontend/docker/Dockerfile",
        "backend/docker/cloud/redis/Dockerfile",
        "backend/docker/cloud/django/Dockerfile",
        "backend/docker/local/django/Dockerfile",
    }


@pytest.mark.parametrize(
    ("rule_id", "ids"),
    [
        ("CVE-2021-44228", ["CVE-2021-44228"]),  # a rule per CVE (Trivy, Grype)
        ("CVE-2021-1234567", ["CVE-2021-1234567"]),
        ("cve-2021-44228", ["CVE-2021-44228"]),
        ("CVE-2021-123", []),  # too few digits: no CVE id
        ("CVE-21-44228", []),
        ("CVE-2021-44228x", []),
        ("CVE-2021_44228", []),
        ("CVE-\u0662\u0660\u0662\u0661-44228", ["CVE-\u0662\u0660\u0662\u0661-44228"]),
        ("log4j CVE-2021-44228", ["CVE-2021-44228"]),
        ("GHSA-jfh8-c2jp-5v3q", ["GHSA-jfh8-c2jp-5v3q"]),
        ("CVE-2021-44228/CVE-2021-45046", ["CVE-2021-44228", "CVE-2021-45046"]),
    ],
)
def test_a_rule_id_gives_the_vulnerability_ids_it_names(client, writer, rule_id, ids):
    body = log("trivy")
    body["runs"][0]["tool"]["driver"]["rules"][0]["id"] = rule_id
    body["runs"][0]["results"][0]["ruleId"] = rule_id
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    finding = Finding.objects.get(finding_id__startswith=f"{rule_id}:")
    assert finding.cve == ids


def test_results_of_a_rule_with_cwe_tags_carry_the_cwe(client, writer):
    # The Semgrep log, its results pointed at one of its own security rules (tagged
    # "CWE-79: Improper Neutralization ...").
    body = log("semgrep")
    for result in body["runs"][0]["results"]:
        result["ruleId"] = (
            "typescript.react.security.audit.react-dangerouslysetinnerhtml."
            "react-dangerouslysetinnerhtml"
        )
    upload(client, writer, body)
    assert {tuple(f.cwe) for f in stored()} == {("CWE-79",)}


def test_a_rules_relationships_to_cwe_taxa_give_the_cwe(client, writer):
    """SARIF's own way to relate a rule to a CWE, as Flawfinder ("CWE-327") and gosec ("327")
    write it; a relationship to another taxonomy, or one that says nothing, is passed over."""
    body = log("checkov")
    (rule,) = body["runs"][0]["tool"]["driver"]["rules"]
    cwe = {"name": "CWE", "guid": "FFC64C90-42B6-44CE-8BEB-F6B7DAE649E5"}
    rule["relationships"] = [
        {"target": {"id": "CWE-327", "toolComponent": cwe}, "kinds": ["relevant"]},
        {"target": {"id": "120", "toolComponent": cwe}, "kinds": ["superset"]},
        {"target": {"id": "A03", "toolComponent": {"name": "OWASP"}}},
        "nothing",
    ]
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []
    assert {tuple(f.cwe) for f in stored()} == {("CWE-327", "CWE-120")}


def test_a_rule_with_an_odd_value_keeps_its_tags_relationships_and_score(client, writer):
    """A name that is a number is read leniently (a warning); the rest of the rule still
    gives its findings their CWE ids and severity."""
    body = log("checkov")
    (rule,) = body["runs"][0]["tool"]["driver"]["rules"]
    rule["name"] = 5
    rule["properties"] = {"security-severity": "9.5", "tags": ["CWE-79: XSS"]}
    cwe = {"name": "CWE"}
    rule["relationships"] = [{"target": {"id": "327", "toolComponent": cwe}}]
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert [w["path"] for w in response.json()["warnings"]] == ["runs[0].tool.driver.rules[0].name"]
    assert {(f.severity, tuple(f.cwe)) for f in stored()} == {("CRITICAL", ("CWE-79", "CWE-327"))}


def test_a_start_line_of_zero_is_no_line(client, writer):
    """SARIF counts lines from 1; Semgrep Supply Chain writes 0 for a lockfile's result."""
    body = log("checkov")
    body["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    fast, careful = read_both_ways(json.dumps(body).encode(), scan_type="IAC")
    assert fast == careful
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []
    assert [f.line_number is None for f in stored()].count(True) == 1


def test_njsscan_results_give_the_cwe_in_their_properties(client, writer):
    """njsscan (nodejsscan) says each result's CWE in its properties, as text; its tool is not
    one whose scan type is known, so the pipeline says it."""
    body = (FIXTURES / "njsscan.sarif").read_bytes()
    response = upload(client, writer, body, scan_type="SAST", code_path="/src")
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []
    findings = {f.raw["sarif"]["ruleId"]: f for f in stored()}
    assert {rule: tuple(f.cwe) for rule, f in findings.items()} == {
        "node_insecure_random_generator": ("CWE-327",),
        "node_password": ("CWE-798",),
    }
    assert {(f.file_path, f.severity) for f in findings.values()} == {
        ("index.js", "MEDIUM"),  # no level: SARIF's default, warning
        ("index.js", "HIGH"),  # level error
    }


def test_codeql_rules_in_extensions_give_cwe_and_security_severity(client, writer):
    # CodeQL 2.x lists a query pack's rules under tool.extensions; results name them with
    # rule.toolComponent.index. Tags in CodeQL's form, security-severity as GitHub reads it.
    body = log("codeql")
    run = body["runs"][0]
    run["tool"]["extensions"] = [
        {
            "name": "codeql/javascript-queries",
            "rules": [
                {
                    "id": "js/unused-local-variable",
                    "shortDescription": {"text": "Unused variable, import, function or class"},
                    "defaultConfiguration": {"level": "note"},
                    "properties": {"tags": ["security", "external/cwe/cwe-563"]},
                },
                {
                    "id": "js/xss",
                    "shortDescription": {"text": "Client-side cross-site scripting"},
                    "properties": {
                        "security-severity": "6.1",
                        "tags": ["security", "external/cwe/cwe-079", "external/cwe/cwe-116"],
                    },
                },
            ],
        }
    ]
    first, second = run["results"]
    del first["ruleIndex"], second["ruleIndex"]
    first["rule"] = {"id": "js/unused-local-variable", "index": 0, "toolComponent": {"index": 0}}
    second["ruleId"] = "js/xss"
    second["rule"] = {"id": "js/xss", "index": 1, "toolComponent": {"index": 0}}
    upload(client, writer, body)
    by_rule = {f.finding_id.split(":")[0]: f for f in stored()}
    assert by_rule["js/unused-local-variable"].severity == "LOW"
    assert by_rule["js/unused-local-variable"].title == "Unused variable, import, function or class"
    assert by_rule["js/xss"].severity == "MEDIUM"
    assert by_rule["js/xss"].cwe == ["CWE-79", "CWE-116"]


def test_equal_partial_fingerprints_in_two_files_stay_two_findings(client, writer):
    # CodeQL's primaryLocationLineHash hashes the line's text: the same line in two files
    # (bad/ and good/ copies of a module) has the same hash.
    body = log("codeql")
    for result in body["runs"][0]["results"]:
        result["partialFingerprints"] = {
            "primaryLocationLineHash": "b0c28a6e08dc0c46:1",
            "primaryLocationStartColumnFingerprint": "0",
        }
    response = upload(client, writer, body)
    assert response.json()["created"] == 2
    moved = copy.deepcopy(body)
    for result in moved["runs"][0]["results"]:
        result["locations"][0]["physicalLocation"]["region"]["startLine"] += 10
    again = upload(client, writer, moved, build_id="2").json()
    assert (again["created"], again["mitigated"]) == (0, 0)  # a shifted line is the same finding


def test_gitleaks_without_git_history_keeps_secrets_of_one_rule_apart(client, writer):
    # `gitleaks detect --no-git` leaves the commit fields of its partial fingerprints empty.
    body = log("gitleaks")
    result = body["runs"][0]["results"][0]
    result["partialFingerprints"] = dict.fromkeys(result["partialFingerprints"], "")
    second = copy.deepcopy(result)
    second["locations"][0]["physicalLocation"]["region"]["startLine"] = 7
    second["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] = "another secret"
    body["runs"][0]["results"].append(second)
    assert upload(client, writer, body).json()["created"] == 2
    assert upload(client, writer, body, build_id="2").json()["created"] == 0


def test_semgrep_placeholder_fingerprints_do_not_merge_findings(client, writer):
    # Semgrep without an account writes "requires login" as every result's fingerprint.
    body = log("semgrep")
    for result in body["runs"][0]["results"]:
        result["fingerprints"] = {"matchBasedId/v1": "requires login"}
    assert upload(client, writer, body).json()["created"] == 4


def test_several_runs_of_one_tool_are_one_upload(client, writer):
    body = log("checkov")
    body["runs"].append(copy.deepcopy(body["runs"][0]))
    body["runs"][1]["results"] = body["runs"][1]["results"][:1]
    for result in body["runs"][1]["results"]:
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "ops/Dockerfile"
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 5


def test_runs_of_different_tools_need_a_scan_type(client, writer):
    body = log("semgrep")
    body["runs"] += log("codeql")["runs"]
    refused = upload(client, writer, body)
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["path"] == "scan_type"
    assert "several tools" in error["message"]
    accepted = upload(client, writer, body, scan_type="SAST")
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["created"] == 6


def test_a_tool_whose_scan_type_is_unknown_needs_a_scan_type(client, writer):
    body = log("checkov")
    body["runs"][0]["tool"]["driver"]["name"] = "ShellCheck"
    refused = upload(client, writer, body)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "scan_type"
    assert upload(client, writer, body, scan_type="sast").status_code == 201


@pytest.mark.parametrize("scan_type", [{"scan_type": "IAC"}, {}])
def test_a_trivy_configuration_scan_is_iac_said_or_not(client, writer, scan_type):
    """Its rules are tagged "misconfiguration": without a scan_type it is IaC all the same,
    not the SCA that `trivy image` is (whose findings it would otherwise mitigate)."""
    response = upload(client, writer, log("trivy-config"), **scan_type)
    assert response.status_code == 201, response.content
    (finding,) = stored()
    assert (finding.scan_type, finding.severity) == ("IAC", "MEDIUM")  # security-severity 5.5
    assert finding.file_path == "modules/azure-cosmosdb/main.tf"
    assert finding.line_number == 164


def _empty(tool: str) -> dict[str, Any]:
    return {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": tool}}, "results": []}]}


def test_a_clean_iac_scan_does_not_mitigate_the_dependency_findings_of_its_branch(client, writer):
    """Snyk names each product ("Snyk IaC", "Snyk Open Source"): an IaC scan with nothing to
    report goes to the IaC stream, and the vulnerabilities found before stay active."""
    assert upload(client, writer, log("trivy")).status_code == 201
    clean = upload(client, writer, _empty("Snyk IaC"))
    assert clean.status_code == 201, clean.content
    assert clean.json()["mitigated"] == 0
    assert {(f.scan_type, f.active) for f in stored()} == {("SCA", True)}
    assert upload(client, writer, _empty("Snyk Open Source")).json()["mitigated"] == 8
    assert {(f.scan_type, f.active) for f in stored()} == {("SCA", False)}


@pytest.mark.parametrize("tool", ["Trivy", "Snyk"])
def test_a_log_that_does_not_say_what_it_scanned_needs_a_scan_type(client, writer, tool):
    """An empty Trivy log (Trivy writes the same for every scanner), or a Snyk product not
    named: a 400 asking for the scan type, rather than a guess that could mitigate another
    scan's findings."""
    refused = upload(client, writer, _empty(tool))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "scan_type"
    assert upload(client, writer, _empty(tool), scan_type="SCA").status_code == 201


def _trivy_with(*kinds: str) -> dict[str, Any]:
    """The Trivy fixture's vulnerabilities and a rule (and its result) of each other kind."""
    body = log("trivy")
    run = body["runs"][0]
    config = log("trivy-config")["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for kind in kinds:
        rule = copy.deepcopy(config["tool"]["driver"]["rules"][0])
        rule["id"] = f"{kind}-rule"
        rule["properties"]["tags"][0] = kind
        result = copy.deepcopy(config["results"][0])
        result.update(ruleId=rule["id"], ruleIndex=len(rules))
        rules.append(rule)
        run["results"].append(result)
    return body


def test_a_trivy_log_with_vulnerabilities_is_sca_whatever_else_it_found(client, writer):
    """`trivy image` and `trivy fs` scan for vulnerabilities and secrets by default: their
    log is SCA every time, secrets included."""
    response = upload(client, writer, _trivy_with("secret", "misconfiguration"))
    assert response.status_code == 201, response.content
    assert {f.scan_type for f in stored()} == {"SCA"}


def test_a_trivy_log_of_misconfigurations_and_secrets_needs_a_scan_type(client, writer):
    body = _trivy_with("secret", "misconfiguration")
    run = body["runs"][0]
    run["tool"]["driver"]["rules"] = run["tool"]["driver"]["rules"][-2:]
    run["results"] = run["results"][-2:]
    for index, result in enumerate(run["results"]):
        result["ruleIndex"] = index
    refused = upload(client, writer, body)
    assert refused.status_code == 400
    assert "neither a vulnerability nor one other kind" in refused.json()["errors"][0]["message"]
    assert upload(client, writer, body, scan_type="IAC").status_code == 201


def test_a_trivy_log_whose_one_vulnerability_the_sample_misses_is_sca(client, writer):
    """Misconfigurations, and one vulnerability between them where the first look (a sample
    spread over the rules) does not fall: SCA all the same (a log the sample does not find
    a vulnerability in is read whole)."""
    body = _trivy_with(*["misconfiguration"] * 40)
    run = body["runs"][0]
    rules = run["tool"]["driver"]["rules"]  # the fixture's 4 vulnerabilities, then the 40
    rules[:] = [*rules[4:24], rules[0], *rules[24:]]  # one vulnerability, at 20 of 41
    assert 20 % -(-len(rules) // RULE_SAMPLE)  # not a sampled one
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    run["results"] = [result for result in run["results"] if result["ruleId"] in index]
    for result in run["results"]:
        result["ruleIndex"] = index[result["ruleId"]]
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert {f.scan_type for f in stored()} == {"SCA"}


def test_an_opengrep_log_is_titled_by_its_messages_and_keeps_its_nosemgrep_closed(client, writer):
    """Opengrep's own log: rules described only as "Opengrep Finding: <rule id>", one result
    silenced in the source (`# nosemgrep`, an inSource suppression)."""
    body = (FIXTURES / "opengrep.sarif").read_bytes()
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []
    (finding,) = stored()
    assert finding.title == "useless comparison operation `a + b == a + b` or `a + b != a + b`"
    assert (finding.scan_type, finding.severity) == ("SAST", "HIGH")  # defaultConfiguration
    assert (finding.file_path, finding.line_number) == ("targets/nosemgrep/eqeq-nosemgrep.py", 2)
    assert not finding.active


def test_a_rule_described_only_by_its_id_takes_its_title_from_the_message(client, writer):
    """Semgrep and Opengrep write "Semgrep Finding: <rule id>" for a rule whose author gave
    no short description: each result's message is its title instead."""
    body = log("semgrep")
    run = body["runs"][0]
    result = run["results"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == result["ruleId"])
    rule["shortDescription"]["text"] = f"Semgrep Finding: {rule['id']}"
    assert upload(client, writer, body).status_code == 201
    titles = {f.title for f in stored() if f.raw["sarif"]["ruleId"] == rule["id"]}
    messages = {r["message"]["text"] for r in run["results"] if r["ruleId"] == rule["id"]}
    assert titles == messages


def test_a_result_saying_no_more_than_its_rules_title_is_described_by_the_rule(client, writer):
    """A result whose message is its rule's title, or that has none: the finding is described
    by the rule's full description; a rule without a title is named by the rule's name."""
    body = log("trivy")
    run = body["runs"][0]
    rule = run["tool"]["driver"]["rules"][0]
    run["results"][0]["message"]["text"] = f" {rule['shortDescription']['text']} "
    assert upload(client, writer, body).status_code == 201
    first = Finding.objects.get(raw__sarif__result__message__text__startswith=" CVE-")
    assert (first.title, first.description) == (
        rule["shortDescription"]["text"],
        rule["fullDescription"]["text"],
    )
    del rule["shortDescription"], run["results"][0]["message"]
    assert upload(client, writer, body, branch_name="untitled").status_code == 201
    untitled = stored("untitled")
    named = [f for f in untitled if f.raw["sarif"]["result"].get("message") is None]
    assert [(f.title, f.description) for f in named] == [
        (rule["name"], rule["fullDescription"]["text"])
    ]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: (r.pop("ruleId"), r.pop("ruleIndex")), "runs[0].results[1].ruleId"),
        (lambda r: (r.update(ruleId=""), r.pop("ruleIndex")), "runs[0].results[1].ruleId"),
        (
            lambda r: r.update(partialFingerprints={"gerionFindingId/v1": " "}),
            "runs[0].results[1].partialFingerprints.gerionFindingId/v1",
        ),
    ],
    ids=["no-rule-id", "empty-rule-id", "blank-own-finding-id"],
)
def test_a_result_without_an_identity_refuses_the_upload(client, writer, change, path):
    body = log("checkov")
    change(body["runs"][0]["results"][1])
    response = upload(client, writer, body)
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == [path]
    assert Finding.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"version": "2.1.0", "runs": {}}, "runs"),
        ({"version": "2.1.0"}, "runs"),
        ({"version": "2.0.0", "runs": []}, "version"),
        ([], "$"),
        ({"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": []}]}, None),
    ],
    ids=["runs-not-a-list", "no-runs", "sarif-2.0", "not-an-object", "no-tool-name"],
)
def test_a_body_that_is_not_a_sarif_log_is_a_400(client, writer, body, path):
    response = upload(client, writer, body)
    assert response.status_code == 400
    paths = [e["path"] for e in response.json()["errors"]]
    assert paths == [path] if path else paths == ["runs[0].tool.driver.name"]


def test_odd_descriptive_values_are_warnings_not_refusals(client, writer):
    body = log("checkov")
    results = body["runs"][0]["results"]
    results[0]["level"] = "critical"
    results[1]["locations"][0]["physicalLocation"]["region"]["startLine"] = "12"
    results[2]["properties"] = {"security-severity": "high"}
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    paths = {w["path"] for w in response.json()["warnings"]}
    assert paths == {
        "runs[0].results[0].level",
        "runs[0].results[1]",
        "runs[0].results[2].properties.security-severity",
    }
    lines = {f.file_path: f.line_number for f in stored()}
    assert lines["backend/docker/cloud/redis/Dockerfile"] == 12


def test_file_uris_are_made_relative_to_the_runs_base_or_the_code_path(client, writer):
    body = log("trivy-config")
    location = body["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    location["artifactLocation"] = {"uri": "file:///home/example/modules/main%20kv.tf"}
    upload(client, writer, body, scan_type="IAC")
    location["artifactLocation"] = {"uri": "file:///builds/acme/web-shop/infra/kv.tf"}
    upload(client, writer, body, scan_type="IAC", code_path="/builds/acme/web-shop")
    location["artifactLocation"] = {"uri": "%SRCROOT%/./infra/db.tf"}
    upload(client, writer, body, scan_type="IAC")
    paths = Finding.objects.order_by("id").values_list("file_path", flat=True)
    assert list(paths) == ["modules/main kv.tf", "infra/kv.tf", "infra/db.tf"]


def test_a_rule_is_stored_once_however_many_findings_it_describes(client, writer):
    body = log("trivy")
    upload(client, writer, body)
    upload(client, writer, body, branch_name="release")
    assert Finding.objects.count() == 16
    assert ScannerRule.objects.count() == 4  # the four CVEs, not one per finding
    finding = Finding.objects.filter(finding_id__startswith="CVE-2019-1547").first()
    assert "Fixed in OpenSSL" not in json.dumps(finding.raw)  # the help text is not repeated
    data = scanner_data_of(finding)["sarif"]
    assert data["tool"] == {"name": "Trivy", "version": "dev"}
    assert data["rule"]["help"]["text"].startswith("Vulnerability CVE-2019-1547")
    assert data["result"]["message"]["text"].startswith("Package: lib")


def test_a_log_of_new_rules_and_one_stored_already_is_stored_whole(client, writer):
    """A log's rules are taken to be new when a few of them, spread over it, are not stored
    (findings.rules.rules_probe); one stored all the same is stored once, and the upload
    whole."""
    body = trivy_log(40)
    parsed = read_sarif(body, STREAM)
    list(parsed.rows)
    probed = set(rules_probe(parsed.rules))
    digest, rule_id, data = next(row for d, row in parsed.rules.items() if d not in probed)
    ScannerRule.objects.create(digest=digest, rule_id=rule_id, data=bytes(data).decode())
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 40
    assert set(ScannerRule.objects.values_list("digest", flat=True)) == set(parsed.rules)
    assert {f.raw["sarif"]["rule"] for f in Finding.objects.all()} == set(parsed.rules)


def test_rules_stored_under_the_earlier_digest_stay_shown_and_a_reupload_moves_to_the_new(
    client, writer
):
    """Rules were keyed by BLAKE2b-128 before SHA-256-128 (findings.readers.sarif.rule_digest):
    a finding stored then still shows its rule in full, and the next upload of its stream
    only points it at the rule's current digest (no finding is new, none mitigated)."""
    body = log("trivy")
    assert upload(client, writer, body, build_id="1").json()["created"] == 8
    for finding in Finding.objects.all():  # as the earlier scheme stored them
        rule = ScannerRule.objects.get(digest=finding.raw["sarif"]["rule"])
        earlier = hashlib.blake2b(rule.data.encode(), digest_size=16).hexdigest()
        ScannerRule.objects.get_or_create(
            digest=earlier, defaults={"rule_id": rule.rule_id, "data": rule.data}
        )
        finding.raw["sarif"]["rule"] = earlier
        finding.content_hash ^= 1  # what it said was digested with the earlier key
        finding.save(update_fields=["raw", "content_hash"])
    finding = stored()[0]
    assert scanner_data_of(finding)["sarif"]["rule"]["help"]["text"].startswith("Vulnerability")

    response = upload(client, writer, body, build_id="2").json()
    assert (response["created"], response["updated"], response["mitigated"]) == (0, 8, 0)
    finding.refresh_from_db()
    rule = ScannerRule.objects.get(digest=finding.raw["sarif"]["rule"])
    assert finding.raw["sarif"]["rule"] == hashlib.sha256(rule.data.encode()).hexdigest()[:32]
    assert scanner_data_of(finding)["sarif"]["rule"]["help"]["text"].startswith("Vulnerability")
    assert ScannerRule.objects.count() == 8  # each of the four CVEs under both keys


def test_results_that_report_no_problem_are_not_findings(client, writer):
    body = log("checkov")
    body["runs"][0]["results"][0]["kind"] = "pass"
    response = upload(client, writer, body)
    assert (response.json()["received"], response.json()["created"]) == (3, 3)


def test_a_suppressed_result_is_stored_mitigated(client, writer):
    body = log("checkov")
    body["runs"][0]["results"][0]["suppressions"] = [{"kind": "inSource"}]
    upload(client, writer, body)
    assert Counter(f.active for f in stored()) == {True: 3, False: 1}


def test_rule_tags_that_are_not_text_are_ignored(client, writer):
    body = log("trivy")
    body["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["tags"].append({"kind": "os"})
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 8


def test_rule_tags_that_are_not_a_list_are_left_out_and_nothing_else(client, writer):
    """Odd tags cost the rule its tags (a warning), not its severity: the rest of its
    properties is read."""
    body = log("trivy")
    rule = body["runs"][0]["tool"]["driver"]["rules"][0]
    rule["properties"].update({"tags": "CWE-79", "security-severity": "9.8"})
    response = upload(client, writer, body)
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == [
        {
            "path": "runs[0].tool.driver.rules[0].properties.tags",
            "message": "must be a list of strings: left out",
        }
    ]
    of_rule = Finding.objects.filter(finding_id__startswith=f"{rule['id']}:")
    assert {(f.severity, tuple(f.cwe)) for f in of_rule} == {("CRITICAL", ())}


# --- the common path and the careful one -----------------------------------------------------
# Most results are read by a path built for volume (findings.readers.sarif._fast_row), any
# other by the careful one. A finding must not depend on which path read it: its id, columns,
# content digest (a re-upload rewrites what changed) and warnings are the same either way.


def _parent(body: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container of the value at a dotted path (list indexes as numbers), and its key."""
    keys: list[Any] = [int(key) if key.isdigit() else key for key in path.split(".")]
    target: Any = body
    for key in keys[:-1]:
        target = target[key]
    return target, keys[-1]


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        target, key = _parent(body, path)
        target[key] = value

    return change


def _drop(path: str) -> Any:
    def change(body: dict[str, Any]) -> None:
        target, key = _parent(body, path)
        del target[key]

    return change


RESULT = "runs.0.results.0"
RULE = "runs.0.tool.driver.rules.0"


def _rule_in_an_extension(body: dict[str, Any]) -> None:
    run = body["runs"][0]
    rule = copy.deepcopy(run["tool"]["driver"]["rules"][0])
    run["tool"]["extensions"] = [{"name": "trivy-db", "rules": [rule]}]
    run["results"][0]["rule"] = {"id": rule["id"], "index": 0, "toolComponent": {"index": 0}}


TRIVY_VARIANTS = {
    "as-written": lambda body: None,
    "result-security-severity": _set(f"{RESULT}.properties", {"security-severity": "9.1"}),
    "result-cwe-and-cve-tags": _set(f"{RESULT}.properties", {"tags": ["CWE-79", "CVE-2020-1"]}),
    "result-other-properties": _set(f"{RESULT}.properties", {"purl": "pkg:apk/alpine/x"}),
    "unknown-level": _set(f"{RESULT}.level", "critical"),
    "no-level": _drop(f"{RESULT}.level"),
    "line-as-text": _set(f"{RESULT}.locations.0.physicalLocation.region.startLine", "12"),
    "line-out-of-range": _set(f"{RESULT}.locations.0.physicalLocation.region.startLine", -3),
    "snippet": _set(f"{RESULT}.locations.0.physicalLocation.region.snippet", {"text": "x"}),
    "no-locations": _drop(f"{RESULT}.locations"),
    "location-without-physical": _set(f"{RESULT}.locations", [{"message": {"text": "?"}}]),
    "message-is-the-title": _set(f"{RESULT}.message.text", " CVE-2019-1549 "),
    "no-message": _drop(f"{RESULT}.message"),
    "long-message": _set(f"{RESULT}.message.text", "m" * 65537),
    "rule-without-title": _drop(f"{RULE}.shortDescription"),
    "rule-with-a-long-title": _set(f"{RULE}.shortDescription.text", "t" * 2001),
    "rule-security-severity": _set(f"{RULE}.properties.security-severity", "7.5"),
    "rule-odd-security-severity": _set(f"{RULE}.properties.security-severity", "high"),
    "rule-cwe-tag": _set(f"{RULE}.properties.tags", ["vulnerability", "CWE-190: Overflow"]),
    "rule-object-tag": _set(f"{RULE}.properties.tags", ["security", {"kind": "os"}]),
    "rule-unknown-level": _set(f"{RULE}.defaultConfiguration.level", "fatal"),
    "rule-id-is-not-the-results": _set(f"{RESULT}.ruleId", "CVE-2019-1551"),
    "rule-by-id-only": _drop(f"{RESULT}.ruleIndex"),
    "rule-index-out-of-range": _set(f"{RESULT}.ruleIndex", 99),
    "rule-reference": _set(f"{RESULT}.rule", {"id": "CVE-2019-1549", "index": 0}),
    "rule-in-an-extension": _rule_in_an_extension,
    "unknown-rule": _set(f"{RESULT}.ruleId", "CVE-2024-0001"),
    "fingerprints": _set(f"{RESULT}.fingerprints", {"matchBasedId/v1": "abc"}),
    "partial-fingerprints": _set(f"{RESULT}.partialFingerprints", {"primaryLocationLineHash": "1"}),
    "own-fingerprint": _set(f"{RESULT}.partialFingerprints", {"gerionFindingId/v1": "f-1"}),
    "blank-own-fingerprint": _set(f"{RESULT}.partialFingerprints", {"gerionFindingId/v1": " "}),
    "suppressed": _set(f"{RESULT}.suppressions", [{"kind": "external", "status": "accepted"}]),
    "suppression-without-status": _set(f"{RESULT}.suppressions", [{"kind": "inSource"}]),
    "suppression-rejected": _set(f"{RESULT}.suppressions", [{"status": "rejected"}]),
    "baseline-absent": _set(f"{RESULT}.baselineState", "absent"),
    "kind-pass": _set(f"{RESULT}.kind", "pass"),
    "kind-informational": _set(f"{RESULT}.kind", "informational"),
    "nul-in-a-message": _set(f"{RESULT}.message.text", "a\u0000b"),
    "result-not-an-object": _set(RESULT, "?"),
}


def read_both_ways(body: bytes, **params: str) -> tuple[Any, Any]:
    ways = []
    for careful in (False, True):
        parsed = read_sarif(body, {**STREAM, **params}, careful=careful)
        rows = [(*row[:16], bytes(row[16]), *row[17:]) for row in parsed.rows]
        rules = {digest: (*row[:2], bytes(row[2])) for digest, row in parsed.rules.items()}
        ways.append((rows, rules, parsed.problems.warnings, parsed.problems.errors))
    return ways[0], ways[1]


@pytest.mark.parametrize("name", [*SCANNERS, "trivy-config", "opengrep", "njsscan"])
def test_each_scanners_log_is_read_alike_by_both_paths(name):
    fast, careful = read_both_ways((FIXTURES / f"{name}.sarif").read_bytes(), scan_type="SAST")
    assert fast == careful
    assert fast[0]


@pytest.mark.parametrize("change", list(TRIVY_VARIANTS.values()), ids=list(TRIVY_VARIANTS))
def test_an_odd_result_or_rule_is_read_alike_by_both_paths(change):
    body = log("trivy")
    change(body)
    fast, careful = read_both_ways(json.dumps(body).encode())
    assert fast == careful


# --- export ------------------------------------------------------------------------------------


def upload_all(client: Client, token: str, branch: str = "main") -> None:
    for name in ("semgrep", "trivy", "checkov", "gitleaks"):
        response = upload(client, token, log(name), branch_name=branch, build_id="7")
        assert response.status_code == 201, response.content


def test_the_export_is_one_sarif_log_with_one_run_per_scan_type(client, writer):
    upload_all(client, writer)
    document = export(client, writer)
    assert_valid_sarif(document)
    runs = {run["automationDetails"]["id"]: run for run in document["runs"]}
    assert set(runs) == {"gerion/IAC/", "gerion/SAST/", "gerion/SCA/", "gerion/SECRETS/"}
    assert sum(len(run["results"]) for run in runs.values()) == Finding.objects.count()
    checkov = runs["gerion/IAC/"]
    assert [rule["id"] for rule in checkov["tool"]["driver"]["rules"]] == ["CKV_DOCKER_2"]
    assert {r["ruleIndex"] for r in checkov["results"]} == {0}
    # The scanner's own rule, as it sent it (help text, link).
    assert checkov["tool"]["driver"]["rules"][0]["helpUri"].startswith("https://docs.bridgecrew")
    results = [result for run in runs.values() for result in run["results"]]
    ids = {result["partialFingerprints"]["gerionFindingId/v1"] for result in results}
    assert ids == set(Finding.objects.values_list("finding_id", flat=True))


def test_the_export_uses_the_same_filters_as_the_list(client, writer):
    upload_all(client, writer)
    document = export(client, writer, scan_type="sca", severity="LOW")
    assert_valid_sarif(document)
    (run,) = document["runs"]
    assert [r["level"] for r in run["results"]] == ["note", "note"]
    reporting = export(client, writer, "/api/v1/reporting/findings", severity="HIGH")
    assert_valid_sarif(reporting)
    assert {run["automationDetails"]["id"] for run in reporting["runs"]} == {"gerion/IAC/"}


def test_an_empty_selection_is_a_valid_log_without_runs(client, writer):
    document = export(client, writer)
    assert document["runs"] == []
    assert_valid_sarif(document)


def test_findings_uploaded_as_json_export_with_a_rule_per_title(client, writer):
    from tests.findings.conftest import documented_body, post, sast

    findings = sast(3)
    findings[0]["cwe"] = ["CWE-89"]
    findings[1]["title"] = findings[0]["title"]
    findings[2].update(severity="INFO", line_number=0)
    post(client, writer, documented_body(findings, repository="acme/web-shop"))
    document = export(client, writer)
    assert_valid_sarif(document)
    (run,) = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == 3  # the same title with other CWEs is another rule
    assert [r["level"] for r in run["results"]] == ["error", "error", "none"]
    assert "region" not in run["results"][2]["locations"][0]["physicalLocation"]


def export_upload_round_trip(client: Client, writer: str, scan_type: str) -> None:
    document = export(client, writer, scan_type=scan_type)
    response = upload(client, writer, document, branch_name="copy", build_id="8")
    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == []


FIELDS = ("finding_id", "title", "severity", "scan_type", "file_path", "line_number", "cwe", "cve")


@pytest.mark.parametrize("scan_type", ["SAST", "SCA", "IAC", "SECRETS"])
def test_an_export_uploaded_to_another_branch_gives_the_same_findings(client, writer, scan_type):
    upload_all(client, writer)
    from tests.findings.conftest import documented_body, post, sast

    post(client, writer, documented_body(sast(2, cwe=["CWE-79"]), repository="acme/web-shop"))
    export_upload_round_trip(client, writer, scan_type)

    def fields(branch: str) -> list[tuple[Any, ...]]:
        rows = Finding.objects.filter(branch_name=branch, scan_type=scan_type)
        return sorted(rows.values_list(*FIELDS))

    assert fields("copy") == fields("main")
    assert fields("copy")


def test_an_export_keeps_which_findings_are_closed_and_why(client, writer, staff):
    """A mitigated finding is exported as absent from the scan, a false positive as an
    accepted suppression saying so: the log stays valid, and uploaded to another branch it
    opens only what was open."""
    from findings.services import TriageAction, finding_triage

    body = log("trivy")
    upload(client, writer, body, build_id="1")
    fixed = copy.deepcopy(body)
    del fixed["runs"][0]["results"][0]
    assert upload(client, writer, fixed, build_id="2").json()["mitigated"] == 1
    dismissed, accepted = [f for f in stored() if f.active][:2]
    finding_triage(
        finding_id=dismissed.pk,
        action=TriageAction.FALSE_POSITIVE,
        actor=staff,
        reason="test fixture",
    )
    until = date.today() + timedelta(days=30)
    finding_triage(
        finding_id=accepted.pk,
        action=TriageAction.RISK_ACCEPTED,
        actor=staff,
        reason="no fix yet",
        until=until,
    )
    document = export(client, writer)
    assert_valid_sarif(document)
    (run,) = document["runs"]
    by_id = {r["partialFingerprints"][FINGERPRINT_KEY]: r for r in run["results"]}
    assert by_id[dismissed.finding_id]["suppressions"] == [
        {"kind": "external", "status": "accepted", "justification": "False positive: test fixture"}
    ]
    (suppression,) = by_id[accepted.finding_id]["suppressions"]
    assert suppression["justification"] == f"Risk accepted until {until.isoformat()}: no fix yet"
    absent = {i for i, r in by_id.items() if r.get("baselineState") == "absent"}
    assert absent == {f.finding_id for f in stored() if not f.active}
    export_upload_round_trip(client, writer, "SCA")
    open_ids = {f.finding_id for f in stored() if f.is_open}
    assert len(open_ids) == 5
    assert {f.finding_id for f in stored("copy") if f.is_open} == open_ids
    assert {f.finding_id for f in stored("copy")} == {f.finding_id for f in stored()}


def test_a_finding_titled_by_its_message_is_exported_so_and_reads_back_the_same(client, writer):
    """Opengrep's rules describe themselves by their ids alone: its findings' titles are
    their messages, and an export uploaded to another branch gives the same titles and
    descriptions."""
    assert upload(client, writer, (FIXTURES / "opengrep.sarif").read_bytes()).status_code == 201
    export_upload_round_trip(client, writer, "SAST")
    fields = ("finding_id", "title", "description", "severity", "file_path", "line_number")
    (main,) = Finding.objects.filter(branch_name="main").values_list(*fields)
    (copied,) = Finding.objects.filter(branch_name="copy").values_list(*fields)
    assert copied == main
    assert main[1].startswith("useless comparison operation `a + b")


def test_an_export_of_several_scan_types_uploads_only_with_a_scan_type(client, writer):
    upload_all(client, writer)
    document = export(client, writer)
    refused = upload(client, writer, document, branch_name="copy")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "scan_type"
