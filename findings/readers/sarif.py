"""SARIF 2.1.0 logs (SPEC "POST /api/v1/findings", SARIF): what most scanners write natively,
uploaded as it is with `Content-Type: application/sarif+json`, the stream in query parameters.

Each result of each run is a finding (results of kind `pass` or `notApplicable` are not
problems and are left out). Field by field:
- finding_id: our own `gerionFindingId/v1` partial fingerprint when present (a log we
  exported, findings.sarif); else a digest of the rule id, the file and the result's
  `fingerprints` (they identify a result) or its location-aware `partialFingerprints`
  (GitHub's `primaryLocationLineHash`, unique only within a rule and file); else of the rule
  id, file, start line and snippet (or message), plus any other non-empty partial
  fingerprints (Gitleaks' commit fields, empty when it scans without git history). Prefixed
  with the rule id, so that staff can search by rule.
- title: the rule's `shortDescription` (unless it only names the rule: Semgrep's "Semgrep
  Finding: <rule id>"), else the message, the rule's `name`, its id.
- severity: `properties.security-severity` of the result, else of its rule (GitHub's bands),
  else the result's `level`, else the rule's `defaultConfiguration.level` (error HIGH,
  warning MEDIUM, note LOW, none INFO), else SARIF's default (`warning`: MEDIUM).
- file_path, line_number: the first location's artifact URI (percent-decoded, `%SRCROOT%/`
  style prefixes and `./` dropped, `file://` URIs made relative to the run's
  `originalUriBaseIds` or to `code_path` where they lie below one) and `region.startLine`.
- description: the message when it says more than the title, else the rule's
  `fullDescription` when that does.
- cwe: rule and result tags naming a CWE (`CWE-79: ...`, `external/cwe/cwe-079`), the
  rule's relationships to a taxonomy named CWE, and a result's `properties.cwe` (njsscan);
  cve: CVE and GHSA ids in the rule id and in tags.
- active: false for a result suppressed (`suppressions`, status accepted) or whose
  `baselineState` is `absent`, which mitigates it in this build.
- raw: `{"sarif": {"tool", "ruleId", "rule": <digest>, "result": <the result as sent>}}`.
  The rule itself (its help text can be kilobytes, shared by thousands of results) is stored
  once, by digest, in findings.models.ScannerRule (ParsedUpload.rules).

Identity is strict (400 with JSON paths such as `runs[0].results[12].ruleId`): the stream's
query parameters, the log's shape, a result's rule id, and the tool (its scan type, inferred
only where the tool, or its log's rules' tags, say it: TOOL_SCAN_TYPES).
Description is tolerant: odd values are read leniently or left out, with a warning.

Built for 100,000 results a request, of as many rules (Trivy writes a rule per CVE). The log
is decoded once by msgspec, each result and each rule into its exact bytes, then into a
typed Struct. A rule is read once (its title, severity, CWE and CVE ids, digest and the start
of its results' raw data made then); a result in the common shape (its rule named by its own
id, nothing about it to warn of) takes _fast_row, a few lookups into that; any other takes
_row, field by field. Both give a result the same Row (tests/findings/test_sarif.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b, sha256
from itertools import chain
from typing import Any, TypeVar, get_args, get_origin
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Raw, Struct

from findings import normalize as n
from findings.models import SEVERITY_RANK, decode_lenient

MEDIA_TYPE = "application/sarif+json"
# Our identity in the logs we export (findings.sarif): read back as the finding_id itself.
FINGERPRINT_KEY = "gerionFindingId/v1"
EXPORT_TOOL_NAME = "Gerion"
EXPORT_CATEGORY_PREFIX = "gerion/"
STREAM_PARAMETERS = ("repository_name", "branch_name", "build_id", "commit_hash", "code_path")

# A tool whose name does not say what it scanned, but the first tags of its log's rules do
# (RULE_TAG_SCAN_TYPES).
FROM_RULE_TAGS = "from its rules' tags"
# A tool's driver name (lower case, letters and digits only) -> its scan type, first match
# by prefix ("CodeQL command-line toolchain", "Semgrep OSS", "Snyk Open Source").
TOOL_SCAN_TYPES = (
    ("semgrep", "SAST"),
    ("opengrep", "SAST"),
    ("codeql", "SAST"),
    ("bandit", "SAST"),
    # Snyk names each product in its driver ("SnykCode", "Snyk IaC", ...): a product not
    # listed here is not guessed.
    ("snykcode", "SAST"),
    ("snykiac", "IAC"),
    ("snykopensource", "SCA"),
    ("snykcontainer", "SCA"),
    ("trivy", FROM_RULE_TAGS),  # one kind of log for every scanner it runs
    ("grype", "SCA"),
    ("osvscanner", "SCA"),
    ("checkov", "IAC"),
    ("kics", "IAC"),
    ("tfsec", "IAC"),
    ("terrascan", "IAC"),
    ("gitleaks", "SECRETS"),
    ("trufflehog", "SECRETS"),
)
# The first tag of a rule of a FROM_RULE_TAGS tool -> what it found (Trivy's "vulnerability",
# "misconfiguration", "secret" and "license" scanners).
RULE_TAG_SCAN_TYPES = {
    "vulnerability": "SCA",
    "license": "SCA",
    "misconfiguration": "IAC",
    "secret": "SECRETS",
}
LEVEL_SEVERITY = {"error": "HIGH", "warning": "MEDIUM", "note": "LOW", "none": "INFO"}
# Results that report no problem (SARIF 3.27.9).
NOT_PROBLEMS = frozenset({"pass", "notApplicable"})
# Partial fingerprints that hash the result's own location (GitHub's), so that with the rule
# and the file they identify it; others (Gitleaks' commit, author, date) do not.
LOCATION_FINGERPRINTS = frozenset({"primaryLocationLineHash"})
RULE_ID_IN_FINDING_ID = 100


# --- the parts of a log that are read (everything else stays in the raw data) -----------------
# Decoded values only, never part of a cycle: not tracked by the cyclic collector (gc=False),
# which a log's hundreds of thousands of them would otherwise cost.


class _Text(Struct, gc=False):
    text: str | None = None


class _ArtifactLocation(Struct, rename="camel", gc=False):
    uri: str | None = None
    uri_base_id: str | None = None
    index: int | None = None


class _Region(Struct, rename="camel", gc=False):
    start_line: int | None = None
    snippet: _Text | None = None


class _PhysicalLocation(Struct, rename="camel", gc=False):
    artifact_location: _ArtifactLocation | None = None
    region: _Region | None = None


class _Location(Struct, rename="camel", gc=False):
    physical_location: _PhysicalLocation | None = None


class _ComponentRef(Struct, gc=False):
    index: int | None = None


class _RuleRef(Struct, rename="camel", gc=False):
    id: str | None = None
    index: int | None = None
    tool_component: _ComponentRef | None = None


class _Properties(Struct, gc=False):
    security_severity: Any = msgspec.field(default=None, name="security-severity")
    tags: tuple[Any, ...] | None = None
    # Where njsscan, mobsfscan and libsast say a result's CWE ("CWE-327: Use of a Broken or
    # Risky Cryptographic Algorithm"): text or a list of them.
    cwe: Any = None


class _Suppression(Struct, gc=False):
    status: str | None = None


class _Result(Struct, rename="camel", gc=False):
    rule_id: str | None = None
    rule_index: int | None = None
    rule: _RuleRef | None = None
    kind: str | None = None
    level: str | None = None
    message: _Text | None = None
    locations: list[_Location] | None = None
    fingerprints: dict[str, str] | None = None
    partial_fingerprints: dict[str, str] | None = None
    properties: _Properties | None = None
    suppressions: list[_Suppression] | None = None
    baseline_state: str | None = None


class _Configuration(Struct, gc=False):
    level: str | None = None


class _RuleProperties(Struct, gc=False):
    security_severity: Any = msgspec.field(default=None, name="security-severity")
    # The tags as sent (empty when absent): a handful of distinct lists among 100,000 rules
    # (Trivy), each decoded once (_RunContext.tags), where decoding every rule's into a tuple
    # cost a fifth of reading the rules.
    tags: Raw = Raw()


class _Rule(Struct, rename="camel", gc=False):
    id: str | None = None
    name: str | None = None
    short_description: _Text | None = None
    full_description: _Text | None = None
    default_configuration: _Configuration | None = None
    properties: _RuleProperties | None = None
    # As sent (empty when absent, as most scanners leave it): read only when there (its CWE
    # taxa, _related_cwe).
    relationships: Raw = Raw()


class _TagsOnly(Struct, gc=False):
    tags: Any = None


class _TaggedRule(Struct, gc=False):
    """A rule as _rule_tag_kinds reads it: its tags, nothing else decoded."""

    properties: _TagsOnly | None = None


class _Component(Struct, rename="camel"):
    name: Any = None
    version: Any = None
    semantic_version: Any = None
    rules: list[Raw] | None = None


class _Tool(Struct):
    driver: _Component | None = None
    extensions: list[_Component] | None = None


class _Run(Struct, rename="camel"):
    tool: _Tool | None = None
    results: list[Raw] | None = None
    artifacts: list[Raw] | None = None
    original_uri_base_ids: dict[str, Any] | None = None
    automation_details: Any = None


class _Log(Struct):
    version: Any = None
    runs: list[_Run] | None = None


class _Artifact(Struct):
    location: _ArtifactLocation | None = None


S = TypeVar("S", bound=Struct)

_log_decoder = msgspec.json.Decoder(_Log)
_result_decoder = msgspec.json.Decoder(_Result)
_rule_decoder = msgspec.json.Decoder(_Rule)
_tagged_rule_decoder = msgspec.json.Decoder(_TaggedRule)
_artifact_decoder = msgspec.json.Decoder(_Artifact)
_encode = msgspec.json.encode
_AT_PATH = re.compile(r" - at `\$(.*)`$")
_CWE_TAG = re.compile(r"(?i)cwe[-_ ]?\d")
_VULN_ID = re.compile(
    r"(?i)\b(CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b",
)
# A text that is one CVE id, as _VULN_ID finds it and as it is kept (most rule ids of Trivy
# and Grype logs): read without the search.
_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}").fullmatch
_URI_BASE_PREFIX = re.compile(r"^%[A-Za-z0-9_]+%[/\\]?")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class _RuleInfo(Struct, gc=False):
    """A rule as its results read it; the fields after `digest` serve the common path
    (findings.readers.sarif._fast_row) and hold only for results that name the rule by its
    own id. (A Struct: made in C, once per rule, which a Trivy log has about one per result.)"""

    rule_id: str | None
    title: str | None
    # The rule as sent, which its name and full description are read from when a result
    # first needs them (_rule_texts: a rule without a title, a result whose message says no
    # more than the title), rare in a large log: kept for each of 100,000 rules, they were a
    # third of the memory an upload touched. None once they are `name` and `description`
    # (read then, or at once for a rule read leniently).
    texts_from: Raw | None
    name: str | None
    description: str | None
    level: str | None
    score: float | None
    cwe: list[str]
    cve: list[str]
    digest: str | None
    # The title of each of its results when it is the rule's own (non-blank, within the
    # column); None sends its results to the careful path.
    fast_title: str | None
    title_key: str  # fast_title stripped, which a message must differ from to be said
    severity: str | None  # from its security-severity
    cwe_json: bytes
    cve_json: bytes
    raw_prefix: bytes  # a result's raw data up to the result itself
    id_prefix: str  # a result's finding_id up to its digest


@dataclass
class _RunContext:
    index: int
    path: str
    tool: bytes
    raw_head: bytes  # a result's raw data up to its rule id
    components: list[list[Raw]]  # the driver's rules, then each extension's
    by_id: dict[str, tuple[int, int]]
    artifacts: list[Raw]
    roots: list[str]
    # ParsedUpload.rules: the rules results refer to (as sent: a Raw, or bytes with NULs
    # replaced when the body may hold one).
    stored: n.Rules
    may_hold_nul: bool
    rules: dict[tuple[int, int], _RuleInfo | None] = field(default_factory=dict)
    # The rule of a result that names it by ruleId alone.
    named: dict[str, _RuleInfo | None] = field(default_factory=dict)
    paths: dict[tuple[str | None, int | None], str] = field(default_factory=dict)
    # Tag lists repeat across rules (Trivy: a rule per CVE, a handful of tag sets): each
    # distinct one (by its JSON text) is read once (unless it needed a warning, which each
    # rule must get).
    tags: dict[bytes, tuple[list[str], list[str], bytes]] = field(default_factory=dict)
    # So do security-severity strings ("9.8"): each read once (a valid one warns nothing),
    # with its severity.
    scores: dict[str, tuple[float, str]] = field(default_factory=dict)


def read_sarif(
    body: bytes | bytearray, params: Mapping[str, str], *, careful: bool = False
) -> n.ParsedUpload:
    """The upload: the stream (query parameters) and the log's runs checked now, its results
    as `rows` is consumed. Raises UploadInvalid for a body that is not JSON. `careful` reads
    every result field by field, the path the common one must agree with (tests compare
    them)."""
    problems = n.Problems()
    stream = _stream(params, problems)
    repaired = n.utf8_repaired(body)
    if repaired is not None:
        # Latin-1 in a file name, say: each such byte is read as the text \xe9, the same way
        # every time, and two names that differ only there stay two (n.utf8_repaired).
        body = repaired
        problems.warn("$", "bytes that are not UTF-8 read as the text \\xNN (their values)")
    try:
        log = _decoded(body, problems)
    except msgspec.ValidationError as exc:
        n.raise_if_not_json(body)
        problems.error(*_shape_error(exc))
        log = _Log()
    except (msgspec.DecodeError, RecursionError) as exc:
        raise n.UploadInvalid([], 0, f"The body is not valid JSON: {exc}") from None

    if log.version is None:
        problems.warn("version", 'is missing: read as "2.1.0"')
    elif log.version != "2.1.0":
        problems.error("version", 'must be "2.1.0": only SARIF 2.1.0 logs are read')
    runs = log.runs
    if runs is None:
        if problems.error_total == 0:
            problems.error("runs", "is required and must be a list (it may be empty)")
        runs = []
    tools = _tools(runs, stream["scan_type"], problems)
    scan_type = stream["scan_type"] or _inferred_scan_type(runs, tools, problems)
    received = sum(len(run.results or ()) for run in runs)
    parsed = n.ParsedUpload(
        envelope="sarif",
        metadata={
            # As sent, but for NULs (which jsonb cannot hold: the columns warn of them).
            **{
                k: v.replace("\x00", "\ufffd")
                for k, v in params.items()
                if k in (*STREAM_PARAMETERS, "scan_type")
            },
            "tools": [{"name": name, "version": version} for name, version in tools],
        },
        repository_name=stream["repository_name"],
        branch_name=stream["branch_name"],
        scan_type=scan_type,
        build_id=stream["build_id"],
        code_path=stream["code_path"],
        commit_hash=stream["commit_hash"],
        commit_author="",
        cicd_platform="",
        scan_duration=None,
        received=received,
        rows=iter(()),
        problems=problems,
    )
    # JSON holds a NUL only as this escape: without one, no value needs its NULs replaced.
    may_hold_nul = n.may_hold_nul(body)
    contexts = [
        _run_context(i, run, tools, stream["code_path"], parsed.rules, may_hold_nul)
        for i, run in enumerate(runs)
    ]
    _sample_rules(contexts, parsed.rules, may_hold_nul)
    parsed.rows = _rows(parsed, runs, contexts, fast=not (careful or may_hold_nul))
    return parsed


def _decoded(body: bytes | bytearray, problems: n.Problems) -> _Log:
    """The log; one that escapes lone surrogates (Python's json writes them for a file name
    that is not UTF-8) is read with each as text (n.lone_surrogates_as_text), with a
    warning. Its results are slices of the body read."""
    try:
        return _log_decoder.decode(body)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError:
        as_text = n.lone_surrogates_as_text(body)
        if as_text is None:
            raise
    log = _log_decoder.decode(as_text)
    problems.warn("$", "escaped lone surrogates (not UTF-8 text) read as the text \\xNN or \\uXXXX")
    return log


def _stream(params: Mapping[str, str], problems: n.Problems) -> dict[str, Any]:
    """The stream and build from the query parameters: repository and branch strictly."""
    stream: dict[str, Any] = {"repository_name": "", "branch_name": "", "scan_type": None}
    for key in ("repository_name", "branch_name"):
        value = params.get(key)
        try:
            stream[key] = n.stream_name(value)
        except ValueError as exc:
            problems.error(key, "is required (a query parameter)" if value is None else str(exc))
    if params.get("scan_type") is not None:
        try:
            stream["scan_type"] = n.normalize_scan_type(params["scan_type"])
        except ValueError as exc:
            problems.error("scan_type", str(exc))
    stream["build_id"] = n.text(params.get("build_id"), 255, "build_id", problems) or None
    stream["commit_hash"] = n.text(params.get("commit_hash"), 128, "commit_hash", problems)
    stream["code_path"] = n.text(params.get("code_path"), n.PATH_MAX, "code_path", problems)
    return stream


def _shape_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    message = str(exc)
    match = _AT_PATH.search(message)
    path = match.group(1).lstrip(".") if match else ""
    if not path:
        return "$", 'must be a SARIF log: {"version": "2.1.0", "runs": [...]}'
    return path, _AT_PATH.sub("", message).lower().replace("`", "")


def _tools(runs: list[_Run], scan_type: str | None, problems: n.Problems) -> list[tuple[str, str]]:
    """Each run's tool (name, version); a run without a tool or name is an error when the
    scan type is to be inferred from it."""
    tools = []
    for index, run in enumerate(runs):
        driver = run.tool.driver if run.tool is not None else None
        name = driver.name if driver is not None else None
        if not isinstance(name, str) or not name.strip():
            if scan_type is None:
                problems.error(
                    f"runs[{index}].tool.driver.name",
                    "is required (or give the scan_type query parameter)",
                )
            name = ""
        name = _without_nul(name, f"runs[{index}].tool.driver.name", problems)
        version = driver.semantic_version or driver.version if driver is not None else None
        version = version if isinstance(version, str) else ""
        version = _without_nul(version, f"runs[{index}].tool.driver.version", problems)
        tools.append((name.strip(), version))
    return tools


def _without_nul(value: str, path: str, problems: n.Problems) -> str:
    """`value` with its NUL characters (which no text, json or jsonb value holds) replaced,
    with a warning; nothing else changed (a tool's name and version, kept whole)."""
    if "\x00" not in value:
        return value
    problems.warn(path, "NUL characters replaced with U+FFFD")
    return value.replace("\x00", "\ufffd")


def tool_scan_type(name: str) -> str | None:
    """The scan type of a tool, by its driver name, when it is unambiguous."""
    key = _NOT_ALNUM.sub("", name.lower())
    for prefix, scan_type in TOOL_SCAN_TYPES:
        if key.startswith(prefix):
            return scan_type
    return None


def _inferred_scan_type(
    runs: list[_Run], tools: list[tuple[str, str]], problems: n.Problems
) -> str | None:
    """The scan type of a log whose runs are all of one tool (our own exports say theirs in
    automationDetails); else an error asking for the scan_type query parameter."""
    names = {_NOT_ALNUM.sub("", name.lower()): name for name, _ in tools if name}
    if problems.error_total:
        return None
    if not names:  # no runs (a run without a tool's name is an error already)
        problems.error("scan_type", "is required: the log has no run to infer it from")
        return None
    if len(names) > 1:
        problems.error(
            "scan_type",
            "is required: the log holds runs of several tools "
            f"({', '.join(sorted(names.values()))})",
        )
        return None
    (name,) = names.values()
    if name == EXPORT_TOOL_NAME:
        categories = {_export_scan_type(run.automation_details) for run in runs}
        if len(categories) == 1 and None not in categories:
            return categories.pop()
        problems.error("scan_type", "is required: the runs of this log are of several scan types")
        return None
    scan_type = tool_scan_type(name)
    if scan_type == FROM_RULE_TAGS:
        # Guessed wrong, a scan would mitigate another scan's findings: `trivy config` with
        # nothing to report would close every vulnerability `trivy image` found.
        scan_type = _rule_tags_scan_type(runs)
        if scan_type is None:
            problems.error(
                "scan_type",
                f"is required: a {name} log says what it scanned only by its rules' tags "
                "(vulnerability, misconfiguration, secret), and this one's say neither a "
                "vulnerability nor one other kind: give SCA, IAC or SECRETS",
            )
    elif scan_type is None:
        problems.error(
            "scan_type",
            f"is required: the scan type of {name!r} is not known (SAST, SCA, SECRETS or IAC)",
        )
    return scan_type


def _rule_tags_scan_type(runs: list[_Run]) -> str | None:
    """What a FROM_RULE_TAGS log (Trivy's) scanned, by its rules' first tags
    (RULE_TAG_SCAN_TYPES): SCA when any rule is a vulnerability or a licence (what `trivy
    image` and `trivy fs` write by default, the secrets they find with them included: the
    same command gives the same stream every time); IAC when every rule is a misconfiguration
    (`trivy config`), SECRETS when every rule is a secret; else None (no rule, or
    misconfigurations and secrets). RULE_SAMPLE rules spread over the log settle a log of
    vulnerabilities at once; any other is read whole."""
    components = [
        run.tool.driver.rules or [] for run in runs if run.tool and run.tool.driver is not None
    ]
    total = sum(len(rules) for rules in components)
    kinds = _rule_tag_kinds(n.spread(chain.from_iterable(components), total))
    if "SCA" not in kinds:
        kinds = _rule_tag_kinds(chain.from_iterable(components))
    if "SCA" in kinds:
        return "SCA"
    return kinds.pop() if len(kinds) == 1 else None


def _rule_tag_kinds(rules: Iterable[Raw]) -> set[str]:
    """The scan types the first tags of `rules` name (tags that name none: not counted)."""
    kinds = set()
    for raw in rules:
        try:
            properties = _tagged_rule_decoder.decode(raw).properties
        except (msgspec.ValidationError, RecursionError):
            continue  # not an object, or its properties are not
        tags = properties.tags if properties is not None else None
        if isinstance(tags, list) and tags and isinstance(tags[0], str):
            kind = RULE_TAG_SCAN_TYPES.get(tags[0])
            if kind is not None:
                kinds.add(kind)
    return kinds


def _export_scan_type(details: Any) -> str | None:
    ident = details.get("id") if isinstance(details, dict) else None
    if isinstance(ident, str) and ident.startswith(EXPORT_CATEGORY_PREFIX):
        try:
            return n.normalize_scan_type(ident[len(EXPORT_CATEGORY_PREFIX) :].strip("/"))
        except ValueError:
            return None
    return None


def _run_context(
    index: int,
    run: _Run,
    tools: list[tuple[str, str]],
    code_path: str,
    stored: n.Rules,
    may_hold_nul: bool,
) -> _RunContext:
    tool = run.tool or _Tool()
    components = [
        (component.rules or []) if component is not None else []
        for component in (tool.driver, *(tool.extensions or ()))
    ]
    tool_json = _encode({"name": tools[index][0], "version": tools[index][1]})
    context = _RunContext(
        index=index,
        path=f"runs[{index}]",
        tool=tool_json,
        raw_head=b'{"sarif":{"tool":' + tool_json + b',"ruleId":',
        components=components,
        by_id={},
        artifacts=run.artifacts or [],
        roots=_roots(run.original_uri_base_ids, code_path),
        stored=stored,
        may_hold_nul=may_hold_nul,
    )
    return context


def _roots(base_ids: dict[str, Any] | None, code_path: str) -> list[str]:
    """Absolute directories that file:// URIs are made relative to: the run's own base ids,
    then the scan's code path."""
    roots = []
    for value in (base_ids or {}).values():
        uri = value.get("uri") if isinstance(value, dict) else None
        if isinstance(uri, str) and uri.startswith("file:"):
            root = _file_uri_path(uri)
            if root is not None:
                roots.append(root)
    if code_path.startswith("/"):
        roots.append(code_path)
    return [root if root.endswith("/") else root + "/" for root in roots if root.strip("/")]


def _rows(
    parsed: n.ParsedUpload, runs: list[_Run], contexts: list[_RunContext], *, fast: bool
) -> Iterator[n.Row]:
    """The Row of each result, in order (see ParsedUpload for repeated finding_ids). With
    `fast`, a result in the common shape (its rule named by its own id, no per-result
    severity or tags, nothing to warn about) is read by _fast_row; any other by _row."""
    problems = parsed.problems
    decode = _result_decoder.decode
    not_problems = NOT_PROBLEMS
    for run, context in zip(runs, contexts, strict=True):
        rules = context.rules
        named = context.named
        n_rules = len(context.components[0])  # the driver's
        for index, raw in enumerate(run.results or ()):
            strict = True
            try:
                result = decode(raw)
            except (msgspec.ValidationError, RecursionError):
                strict = False
                lenient = _lenient_result(raw, f"{context.path}.results[{index}]", problems)
                if lenient is None:
                    continue
                result = lenient
            if result.kind in not_problems:
                parsed.received -= 1
                continue
            row = None
            rule_id = result.rule_id
            if fast and strict and rule_id:
                rule_index = result.rule_index
                if rule_index is None and result.rule is None:  # by id alone (Semgrep)
                    info = named.get(rule_id)
                    if info is None and rule_id not in named:
                        info = named[rule_id] = _rule_of(context, result, problems)
                elif result.rule is None and rule_index is not None and 0 <= rule_index < n_rules:
                    key = (0, rule_index)  # the driver's (Trivy, Checkov)
                    info = rules.get(key)
                    if info is None and key not in rules:
                        info = rules[key] = _rule_info(context, key, problems)
                else:  # a reference into an extension (CodeQL), an index out of range
                    info = _rule_of(context, result, problems)
                if info is not None and info.fast_title is not None and info.rule_id == rule_id:
                    row = _fast_row(context, info, result, raw, index, problems)
            if row is None:
                row = _row(parsed, context, raw, result, f"{context.path}.results[{index}]")
            if row is not None and problems.error_total == 0:
                yield row


def _fast_row(
    context: _RunContext,
    info: _RuleInfo,
    result: _Result,
    raw: Raw,
    index: int,
    problems: n.Problems,
) -> n.Row | None:
    """The Row of a result whose rule is `info` (named by its own id, with a title of its
    own), from a body without NULs: what _row would make of it, or None (nothing reported)
    for anything _row would warn about or read otherwise."""
    properties = result.properties
    if properties is not None and (
        properties.security_severity is not None or properties.tags or properties.cwe is not None
    ):
        return None
    severity = info.severity
    if severity is None:
        level = result.level
        if level is not None:
            severity = LEVEL_SEVERITY.get(level)
            if severity is None:
                return None
        elif info.level is not None:
            severity = info.level
        else:
            severity = "MEDIUM" if result.kind is None or result.kind == "fail" else "INFO"
    file_path = ""
    line = None
    snippet = None
    locations = result.locations
    if locations:
        physical = locations[0].physical_location
        if physical is None:
            return None
        artifact = physical.artifact_location
        if artifact is not None:
            key = (artifact.uri, artifact.index)
            known = context.paths.get(key)
            if known is None:
                where = f"{context.path}.results[{index}].locations[0]"
                known = context.paths[key] = _artifact_path(context, artifact, where, problems)
            file_path = known
        region = physical.region
        if region is not None:
            line = region.start_line
            if line is not None and not 0 <= line <= n.INT32_MAX:
                return None
            line = line or None  # (as _location reads it)
            if region.snippet is not None:
                snippet = region.snippet.text
    message = result.message.text if result.message is not None else None
    description = _description(message, info.title_key, info)
    if len(description) > n.LONG_TEXT_MAX:
        return None
    fingerprints = result.fingerprints
    partial = result.partial_fingerprints
    rule_id = info.rule_id
    assert rule_id is not None
    if fingerprints or partial:
        try:
            finding_id = _identity(
                rule_id, file_path, line, snippet or message, fingerprints, partial
            )
        except ValueError:
            return None
    else:
        key_text = f"{rule_id}\x1f{file_path}\x1f{line or ''}\x1f{snippet or message or ''}"
        finding_id = info.id_prefix + blake2b(key_text.encode(), digest_size=16).hexdigest()
    active = result.baseline_state != "absent"
    if active and result.suppressions:
        active = not any(s.status is None or s.status == "accepted" for s in result.suppressions)
    title = info.fast_title
    assert title is not None
    cwe_json = info.cwe_json
    cve_json = info.cve_json
    # The order of make_row's content: either path hashes a finding alike.
    content = (
        title, severity, file_path, line, description, "", "", "", "", "", cwe_json, cve_json,
        raw, info.digest,
    )  # fmt: skip
    return (
        finding_id, title, severity, SEVERITY_RANK[severity], file_path, line, None, None,
        description, "", "", "", "", "", cwe_json, cve_json, info.raw_prefix + raw + b"}}", 0,
        n.content_hash(content), active,
    )  # fmt: skip


def _lenient_result(raw: Raw, path: str, problems: n.Problems) -> _Result | None:
    """A result its Struct refused, read leniently (warning), field by field if need be
    (the fields it cannot read are left out, each with a warning)."""
    try:
        loose = decode_lenient(raw)
    except RecursionError:
        problems.error(path, "cannot be read (nested too deeply)")
        return None
    if not isinstance(loose, dict):
        problems.error(path, "must be a result object")
        return None
    return _lenient(loose, _Result, path, problems)


def _lenient(loose: dict[str, Any], kind: type[S], path: str, problems: n.Problems) -> S:
    try:
        value = msgspec.convert(loose, kind, strict=False)
        problems.warn(path, "values of unexpected types were read leniently")
        return value
    except msgspec.ValidationError:
        pass
    return msgspec.convert(_readable(loose, kind, path, problems), kind, strict=False)


def _readable(
    loose: dict[str, Any], kind: type[Struct], path: str, problems: n.Problems
) -> dict[str, Any]:
    """`loose` with the fields `kind` cannot read left out, each with a warning; within a
    field that is an object (or a list of them) that `kind` reads as a Struct, only what it
    cannot read: a `startLine` of 12.5 costs a result its line, not its file (part of its
    identity)."""
    types = {f.encode_name: f.type for f in msgspec.structs.fields(kind)}
    kept: dict[str, Any] = {}
    for key, item in loose.items():
        try:
            msgspec.convert({key: item}, kind, strict=False)
        except msgspec.ValidationError as exc:
            item = _readable_within(item, types.get(key), f"{path}.{key}", problems)
            if item is None:
                where, message = _shape_error(exc)
                problems.warn(f"{path}.{where}", f"{message}: left out")
                continue
        kept[key] = item
    return kept


def _readable_within(item: Any, kind: Any, path: str, problems: n.Problems) -> Any:
    """An object (or a list of objects) that `kind` (a Struct, a list of them, either or
    None) reads, with what it cannot read left out (_readable); None when it is not one."""
    for argument in get_args(kind) or (kind,):  # (X | None: X)
        listed = get_origin(argument) is list
        struct = get_args(argument)[0] if listed else argument
        if not (isinstance(struct, type) and issubclass(struct, Struct)):
            continue
        if listed and isinstance(item, list) and all(isinstance(x, dict) for x in item):
            return [_readable(x, struct, f"{path}[{i}]", problems) for i, x in enumerate(item)]
        if not listed and isinstance(item, dict):
            return _readable(item, struct, path, problems)
    return None


def _row(
    parsed: n.ParsedUpload, context: _RunContext, raw: Raw, result: _Result, path: str
) -> n.Row | None:
    problems = parsed.problems
    rule = _rule_of(context, result, problems)
    rule_id = result.rule_id or (result.rule.id if result.rule is not None else None)
    if not rule_id and rule is not None:
        rule_id = rule.rule_id
    if not rule_id or "\x00" in rule_id:
        problems.error(
            f"{path}.ruleId",
            "must not contain NUL characters"
            if rule_id
            else "is required (ruleId, rule.id, or a ruleIndex into the tool's rules)",
        )
        return None
    file_path, line, snippet = _location(context, result, path, problems)
    message = result.message.text if result.message is not None else None
    name = _rule_texts(rule)[0] if rule else None
    title = _first_text(rule.title if rule else None, message, name, rule_id)
    title = n.text(title, n.TITLE_MAX, f"{path}.message.text", problems)
    description = _description(message, title.strip(), rule)
    description = n.text(description, n.LONG_TEXT_MAX, f"{path}.message.text", problems)
    severity = _severity(result, rule, path, problems)
    cwe = list(rule.cwe) if rule else []
    cve = list(rule.cve) if rule else []
    if rule is None or rule.rule_id != rule_id:  # the rule's own id is read with the rule
        _add_once(cve, _vuln_ids(rule_id))
    tags = result.properties.tags if result.properties is not None else None
    if tags:
        _tag_ids(tags, cwe, cve, f"{path}.properties.tags", problems)
    if result.properties is not None and result.properties.cwe is not None:
        _add_once(cwe, n.cwe(result.properties.cwe, f"{path}.properties.cwe", problems))
    finding_id = _finding_id(result, rule_id, file_path, line, snippet or message, path, problems)
    if finding_id is None:
        return None
    suppressed = any(s.status in (None, "accepted") for s in result.suppressions or ())
    digest = rule.digest if rule else None
    result_bytes = bytes(raw)
    if n.NUL_ESCAPE in result_bytes:  # (or an escaped backslash and the text "u0000")
        cleaned = n.without_nul_escapes(result_bytes)
        if cleaned != result_bytes:
            result_bytes = cleaned
            problems.warn(path, "NUL characters replaced with U+FFFD in the raw data")
    stored = (
        b'{"sarif":{"tool":'
        + context.tool
        + b',"ruleId":'
        + _encode(rule_id)
        + b',"rule":'
        + (b'"' + digest.encode() + b'"' if digest else b"null")
        + b',"result":'
        + result_bytes
        + b"}}"
    )
    return n.make_row(
        finding_id=finding_id,
        title=title,
        severity=severity,
        file_path=file_path,
        line_number=line,
        creation_date=None,
        last_update_date=None,
        description=description,
        mitigation="",
        security_scope="",
        component_name="",
        component_version="",
        component_fix="",
        cwe=cwe[: n.MAX_LIST_ENTRIES],
        cve=cve[: n.MAX_LIST_ENTRIES],
        raw=stored,
        raw_elided=0,
        extras=(Raw(result_bytes), digest),
        seen_active=not suppressed and result.baseline_state != "absent",
    )


def _description(message: str | None, title_key: str, rule: _RuleInfo | None) -> str:
    """The message when it says more than the title (`title_key`: stripped), else the rule's
    full description when that does, else nothing."""
    if message and message.strip() != title_key:
        return message
    description = _rule_texts(rule)[1] if rule is not None else None
    return description if description and description.strip() != title_key else ""


def _first_text(*values: str | None) -> str:
    for value in values:
        if value and value.strip():
            return value
    return ""


def _severity(result: _Result, rule: _RuleInfo | None, path: str, problems: n.Problems) -> str:
    if result.properties is not None and result.properties.security_severity is not None:
        score = _score(
            result.properties.security_severity,
            f"{path}.properties.security-severity",
            problems,
        )
        if score is not None:
            return n.severity_from_score(score)
    if rule is not None and rule.score is not None:
        return n.severity_from_score(rule.score)
    if result.level is not None:
        mapped = LEVEL_SEVERITY.get(result.level)
        if mapped is not None:
            return mapped
        problems.warn(f"{path}.level", f"unknown level {result.level!r}: ignored")
    if rule is not None and rule.level is not None:
        return rule.level
    # SARIF 3.27.10: a result of kind "fail" (the default) without a level is a warning.
    return "MEDIUM" if result.kind in (None, "fail") else "INFO"


def _score(value: Any, path: str, problems: n.Problems) -> float | None:
    """A security-severity: a CVSS-like score 0-10, as a string (GitHub's form) or a number."""
    score: float | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            score = float(value)
        except (ValueError, OverflowError):  # not a number; an integer of 400 digits
            score = None
    if score is not None and 0 <= score <= 10:
        return score
    problems.warn(path, f"{str(value)[:40]!r} is not a score from 0 to 10: ignored")
    return None


def rule_digest(data: bytes | Raw) -> str:
    """A rule's key in findings.models.ScannerRule: the first 128 bits of the SHA-256 of its
    JSON text, in hex. The table is shared by every upload, so the digest must resist crafted
    collisions (a rule written to collide would show its text on another team's findings):
    SHA-256 is hardware-accelerated where CPUs have SHA extensions, ~1.5x cheaper than
    BLAKE2b there (a 100,000-result Trivy log hashes ~120 MB of rules); xxh3, cheaper still,
    is not collision-resistant. Rules stored under an earlier scheme (BLAKE2b-128) stay
    readable by their digest; the same rule sent again is stored once more under this one."""
    return sha256(data).hexdigest()[:32]


def _vuln_ids(text: str) -> list[str]:
    if text[:4] == "CVE-" and _CVE_ID(text):  # a rule per CVE (Trivy, Grype): without a search
        return [text]
    found: list[str] = _VULN_ID.findall(text)
    if len(found) == 1 and found[0][:4] == "CVE-":  # one CVE among other words: as written
        return found
    return [ident.upper() if ident[:3].upper() == "CVE" else "GHSA" + ident[4:] for ident in found]


def _tag_ids(
    tags: Sequence[Any], cwe: list[str], cve: list[str], path: str, problems: n.Problems
) -> None:
    """CWE and vulnerability ids among tags, added to `cwe` and `cve` once each."""
    texts = [tag for tag in tags if isinstance(tag, str)]
    _add_once(cwe, n.cwe([tag for tag in texts if _CWE_TAG.search(tag)], path, problems))
    for tag in texts:
        _add_once(cve, _vuln_ids(tag))


def _add_once(ids: list[str], more: Iterable[str]) -> None:
    """`more` added to `ids`, each id once."""
    for ident in more:
        if ident not in ids:
            ids.append(ident)


def _finding_id(
    result: _Result,
    rule_id: str,
    file_path: str,
    line: int | None,
    text: str | None,
    path: str,
    problems: n.Problems,
) -> str | None:
    try:
        return _identity(
            rule_id, file_path, line, text, result.fingerprints, result.partial_fingerprints
        )
    except ValueError as exc:
        problems.error(f"{path}.partialFingerprints.{FINGERPRINT_KEY}", str(exc))
        return None


def _identity(
    rule_id: str,
    file_path: str,
    line: int | None,
    text: str | None,
    fingerprints: dict[str, str] | None,
    partial_fingerprints: dict[str, str] | None,
) -> str:
    """A result's finding_id (see the module's docstring); ValueError for our own
    fingerprint when it is not a valid finding_id."""
    partial = partial_fingerprints or {}
    ours = partial.get(FINGERPRINT_KEY)
    if ours is not None:
        return n.finding_id(ours)
    parts: list[str] = [rule_id, file_path]
    # Values that identify nothing: empty (Gitleaks without git history) or a sentence
    # ("requires login": Semgrep without an account).
    full = sorted(
        (key, value)
        for key, value in (fingerprints or {}).items()
        if value and not any(c.isspace() for c in value)
    )
    partial_items = sorted((key, value) for key, value in partial.items() if value)
    if full:
        parts += [f"{key}={value}" for key, value in full]
    elif any(key in LOCATION_FINGERPRINTS for key, _ in partial_items):
        parts += [f"{key}={value}" for key, value in partial_items]
    else:
        parts += [str(line or ""), text or ""]
        parts += [f"{key}={value}" for key, value in partial_items]
    digest = blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"{rule_id[:RULE_ID_IN_FINDING_ID]}:{digest}"


def _location(
    context: _RunContext, result: _Result, path: str, problems: n.Problems
) -> tuple[str, int | None, str | None]:
    """The first physical location: file path, start line and snippet text."""
    for location in result.locations or ():
        physical = location.physical_location
        if physical is None:
            continue
        artifact = physical.artifact_location
        file_path = ""
        if artifact is not None:
            key = (artifact.uri, artifact.index)
            cached = context.paths.get(key)
            if cached is None:
                cached = _artifact_path(context, artifact, f"{path}.locations[0]", problems)
                context.paths[key] = cached
            file_path = cached
        region = physical.region
        line = None
        snippet = None
        if region is not None:
            if region.start_line is not None:
                line = n.line_number(
                    region.start_line,
                    f"{path}.locations[0].physicalLocation.region.startLine",
                    problems,
                )
                line = line or None  # SARIF counts from 1: a 0 (Semgrep Supply Chain) says none
            if region.snippet is not None:
                snippet = region.snippet.text
        return file_path, line, snippet
    return "", None, None


def _artifact_path(
    context: _RunContext, artifact: _ArtifactLocation, path: str, problems: n.Problems
) -> str:
    uri = artifact.uri
    if uri is None and artifact.index is not None:
        uri = _artifact_uri(context, artifact.index)
    if not uri:
        return ""
    text = _URI_BASE_PREFIX.sub("", uri)
    where = f"{path}.physicalLocation.artifactLocation.uri"
    local = _file_uri_path(text) if text.startswith("file:") else None
    if local is not None:
        text = local
        for root in context.roots:
            if text.startswith(root):
                text = text[len(root) :]
                break
    else:
        if text.startswith("file:"):
            problems.warn(where, "is not a valid URI: kept as sent")
        text = unquote(text)
    while text.startswith("./"):
        text = text[2:]
    return n.text(text, n.PATH_MAX, where, problems)


def _file_uri_path(uri: str) -> str | None:
    """The local path of a file: URI, percent-decoded; None if it is not a valid URI (an
    unclosed `[` is taken for an IPv6 host)."""
    try:
        return unquote(urlsplit(uri).path)
    except ValueError:
        return None


def _artifact_uri(context: _RunContext, index: int) -> str | None:
    if not 0 <= index < len(context.artifacts):
        return None
    try:
        location = _artifact_decoder.decode(context.artifacts[index]).location
    except (msgspec.ValidationError, RecursionError):
        return None
    return location.uri if location is not None else None


def _rule_of(context: _RunContext, result: _Result, problems: n.Problems) -> _RuleInfo | None:
    """The result's rule: by index (in the driver or the extension its reference names),
    else by id; None if the run does not describe it."""
    ref = result.rule
    component = 0
    if ref is not None and ref.tool_component is not None and ref.tool_component.index is not None:
        component = ref.tool_component.index + 1
    index = result.rule_index if result.rule_index is not None else (ref.index if ref else None)
    if index is None or not (
        0 <= component < len(context.components) and 0 <= index < len(context.components[component])
    ):
        rule_id = result.rule_id or (ref.id if ref else None)
        if not rule_id:
            return None
        if not context.by_id:
            _index_rules(context)
        found = context.by_id.get(rule_id)
        if found is None:
            return None
        component, index = found
    key = (component, index)
    if key not in context.rules:
        context.rules[key] = _rule_info(context, key, problems)
    return context.rules[key]


def _index_rules(context: _RunContext) -> None:
    for component, rules in enumerate(context.components):
        for index, raw in enumerate(rules):
            try:
                rule_id = _rule_decoder.decode(raw).id
            except (msgspec.ValidationError, RecursionError):
                continue
            if rule_id and rule_id not in context.by_id:
                context.by_id[rule_id] = (component, index)
    context.by_id.setdefault("", (-1, -1))  # indexed (even when the run has no rules)


def _rule_info(
    context: _RunContext, key: tuple[int, int], problems: n.Problems
) -> _RuleInfo | None:
    """A rule read once for all its results (a Trivy log has a rule per CVE: this runs
    about once per result, so its common path avoids work that repeats)."""
    component, index = key
    raw = context.components[component][index]
    texts_from: Raw | None = raw
    try:
        rule = _rule_decoder.decode(raw)
    except (msgspec.ValidationError, RecursionError):
        try:
            loose = decode_lenient(raw)
        except RecursionError:
            loose = None
        if not isinstance(loose, dict):
            problems.warn(_rule_path(context, key), "is not a rule object: ignored")
            return None
        rule = _lenient(_as_sent(loose), _Rule, _rule_path(context, key), problems)
        texts_from = None
    rule_id = rule.id or None
    score = severity = level = None
    cwe: list[str] = []
    cwe_json = n.EMPTY_JSONB_LIST
    cve = _vuln_ids(rule_id) if rule_id else []
    properties = rule.properties
    if properties is not None:
        value = properties.security_severity
        if value is not None:
            known = context.scores.get(value) if type(value) is str else None
            if known is None:
                where = f"{_rule_path(context, key)}.properties.security-severity"
                score = _score(value, where, problems)
                if score is not None:
                    known = (score, n.severity_from_score(score))
                    if type(value) is str:
                        context.scores[value] = known
            if known is not None:
                score, severity = known
        if properties.tags:
            tags_json = bytes(properties.tags)
            known_tags = context.tags.get(tags_json)
            if known_tags is None:
                known_tags = _rule_tag_ids(context, key, tags_json, problems)
            cwe, vulns, cwe_json = known_tags
            if vulns:
                _add_once(cve, vulns)  # (cve is this rule's own list)
    if rule.relationships:
        related = _related_cwe(context, key, rule.relationships, problems)
        if any(cwe_id not in cwe for cwe_id in related):
            cwe = [*cwe]  # (shared with other rules of these tags)
            _add_once(cwe, related)
            cwe_json = n.jsonb_list(cwe[: n.MAX_LIST_ENTRIES])
    configuration = rule.default_configuration
    if configuration is not None and configuration.level is not None:
        level = LEVEL_SEVERITY.get(configuration.level)
        if level is None:
            problems.warn(
                f"{_rule_path(context, key)}.defaultConfiguration.level",
                f"unknown level {configuration.level!r}: ignored",
            )
    data = _rule_data(raw, context.may_hold_nul)
    digest = rule_digest(data)
    stored_id = rule_id or ""
    if context.may_hold_nul and "\x00" in stored_id:
        # (A result naming the rule by such an id is refused; one naming it by index is not.)
        stored_id = stored_id.replace("\x00", "\ufffd")
    context.stored.add((digest, stored_id, data))
    title = rule.short_description.text if rule.short_description is not None else None
    if title and rule_id and _placeholder(title, rule_id):
        title = None  # the results' messages say more
    title_key = title.strip() if title else ""
    return _RuleInfo(
        rule_id,
        title,
        texts_from,
        None if texts_from is not None else rule.name,
        None if texts_from is not None else _text_of(rule.full_description),
        level,
        score,
        cwe,
        cve,
        digest,
        title if title and title_key and len(title) <= n.TITLE_MAX else None,
        title_key,
        severity,
        cwe_json,
        n.jsonb_list(cve[: n.MAX_LIST_ENTRIES]),
        b"".join(
            (context.raw_head, _encode(rule_id), b',"rule":"', digest.encode(), b'","result":')
        ),
        f"{rule_id[:RULE_ID_IN_FINDING_ID]}:" if rule_id else ":",
    )


def _rule_texts(info: _RuleInfo) -> tuple[str | None, str | None]:
    """A rule's name and full description (see _RuleInfo.texts_from), read once: kept for
    its other results (a Semgrep rule without a title of its own names thousands)."""
    if info.texts_from is not None:
        rule = _rule_decoder.decode(info.texts_from)  # (as it was when first read)
        info.name, info.description = rule.name, _text_of(rule.full_description)
        info.texts_from = None
    return info.name, info.description


def _text_of(value: _Text | None) -> str | None:
    return value.text if value is not None else None


def _placeholder(title: str, rule_id: str) -> bool:
    """Whether a rule's short description only names it: what Semgrep and Opengrep write for
    a rule whose author gave none ("Semgrep Finding: python.lang.security.audit.eval")."""
    tool, _, rest = title.partition(" Finding: ")
    return rest == rule_id and tool.isalnum()


def _as_sent(loose: dict[str, Any]) -> dict[str, Any]:
    """A rule decoded loosely, its values that _Rule keeps as sent (Raw) made JSON text
    again (msgspec.convert makes no Raw of a decoded value), so that an odd value elsewhere
    in the rule does not cost it its tags or relationships too."""
    if "relationships" in loose:
        loose["relationships"] = Raw(_encode(loose["relationships"]))
    properties = loose.get("properties")
    if isinstance(properties, dict) and "tags" in properties:
        properties["tags"] = Raw(_encode(properties["tags"]))
    return loose


def _rule_data(raw: Raw, may_hold_nul: bool) -> bytes | Raw:
    """A rule's JSON as it is stored and digested: as sent, NULs replaced."""
    if not may_hold_nul:
        return raw
    data = bytes(raw)
    return n.without_nul_escapes(data) if n.NUL_ESCAPE in data else data


def _sample_rules(contexts: list[_RunContext], rules: n.Rules, may_hold_nul: bool) -> None:
    """How many rules the log describes, and the digests of RULE_SAMPLE of them spread
    evenly over them (n.Rules), before any result is read."""
    components = [component for context in contexts for component in context.components]
    rules.described = sum(len(component) for component in components)
    sampled = n.spread(chain.from_iterable(components), rules.described)
    rules.sample = [rule_digest(_rule_data(raw, may_hold_nul)) for raw in sampled]


def _rule_path(context: _RunContext, key: tuple[int, int]) -> str:
    component, index = key
    where = "driver" if component == 0 else f"extensions[{component - 1}]"
    return f"{context.path}.tool.{where}.rules[{index}]"


def _related_cwe(
    context: _RunContext, key: tuple[int, int], relationships: Raw, problems: n.Problems
) -> list[str]:
    """The CWE ids a rule's relationships name: targets in a tool component named "CWE",
    SARIF's own way to say it (Flawfinder writes "CWE-327", gosec "327"). Relationships that
    are not objects say nothing and are passed over."""
    try:
        decoded = decode_lenient(relationships)
    except RecursionError:
        decoded = None
    targets = []
    for relationship in decoded if isinstance(decoded, list) else ():
        target = relationship.get("target") if isinstance(relationship, dict) else None
        if not isinstance(target, dict):
            continue
        component = target.get("toolComponent")
        name = component.get("name") if isinstance(component, dict) else None
        if isinstance(name, str) and name.strip().upper() == "CWE":
            targets.append(target.get("id"))
    path = f"{_rule_path(context, key)}.relationships"
    return n.cwe(targets, path, problems) if targets else []


def _rule_tag_ids(
    context: _RunContext, key: tuple[int, int], tags_json: bytes, problems: n.Problems
) -> tuple[list[str], list[str], bytes]:
    """The CWE ids among a rule's tags (`tags_json`, as sent), the vulnerability ids among
    them, and the CWE ids as their column holds them; kept for the next rule with these tags
    (which shares them: not to be changed) unless they needed a warning. Tags that are not a
    list are left out, with a warning; tags that are not text are ignored."""
    path = f"{_rule_path(context, key)}.properties.tags"
    warned = problems.warning_total
    cwe: list[str] = []
    vulns: list[str] = []
    try:
        tags = decode_lenient(tags_json)
    except RecursionError:
        tags = None
        problems.warn(path, "is nested too deeply: left out")
    if isinstance(tags, list):
        _tag_ids(tags, cwe, vulns, path, problems)
    elif tags is not None:
        problems.warn(path, "must be a list of strings: left out")
    known = (cwe, vulns, n.jsonb_list(cwe[: n.MAX_LIST_ENTRIES]))
    if problems.warning_total == warned:
        context.tags[tags_json] = known
    return known
