"""Findings as one SARIF 2.1.0 log (SPEC "GET /api/v1/findings", Accept: application/sarif+json),
in the subset GitHub code scanning accepts, written as it is read (a large selection is
streamed, never held whole).

One run per scan type (tool "Gerion", `automationDetails.id` "gerion/<SCAN TYPE>/": GitHub
takes one analysis per tool and category). Each finding is a result:
- `ruleId`/`ruleIndex`: the scanner's rule for a finding uploaded as SARIF (its descriptor as
  the scanner sent it, findings.models.ScannerRule, less what the schema refuses: _conform;
  of a rule id described twice, the newest open finding's); else a rule per distinct title
  ("gerion/<digest of the title>"), tagged with its findings' CWEs and carrying the highest
  of their severities as `security-severity`. Each rule is listed once per run.
- `level` and `properties.security-severity` from the severity (9.5, 8.0, 5.5, 2.0 in
  GitHub's bands; INFO is level "none" without a score), `properties.tags` the CWEs
  (`external/cwe/cwe-79`, as CodeQL writes them) and vulnerability ids;
- `message.text`: the description, else the title (the title where it was the message of a
  SARIF result: _message);
- one location: the file path (a relative URI) and the start line, when known;
- `partialFingerprints["gerionFindingId/v1"]`: the finding_id, so that GitHub's upload
  recognises a finding from one export to the next, and an upload of the log back to us
  (findings.readers.sarif) keeps every finding's identity;
- its status: a mitigated finding's `baselineState` is "absent" (reported before, not now);
  a false positive or an accepted risk is an accepted external suppression whose
  justification says which (and until when a risk is accepted), and why. Uploaded back,
  neither is open (the reader reads both as not active; staff triage itself is never set by
  an upload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cache
from hashlib import blake2b
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import quote

import msgspec
from msgspec import UNSET, Struct, UnsetType

from findings.models import SEVERITY_RANK, Status, finding_status
from findings.readers.sarif import EXPORT_CATEGORY_PREFIX, EXPORT_TOOL_NAME, FINGERPRINT_KEY

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "INFO": "none"}
# A score inside each of GitHub's bands (>= 9.0, >= 7.0, >= 4.0, > 0); 0.0 (INFO) is given to
# results only, so that a result never takes its rule's score.
SCORE = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0", "INFO": "0.0"}
# Fields of each row the log is written from (findings.selectors.findings_for_sarif).
ROW_FIELDS = (
    "finding_id",
    "title",
    "severity",
    "scan_type",
    "file_path",
    "line_number",
    "description",
    "cwe",
    "cve",
    "sarif_rule",
    "sarif_rule_id",
    "sarif_message",
    "active",
    "last_seen_at",
    "false_positive",
    "risk_accepted",
    "triage_reason",
    "risk_accepted_until",
)

_encode = msgspec.json.encode


class _Rules:
    """The rules of one run, in order of first use, each once."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.stored: dict[str, str] = {}  # rule id -> digest of the scanner's descriptor
        # rule id -> (open, last seen) of the finding whose descriptor self.stored holds
        self.chosen: dict[str, tuple[bool, Any]] = {}
        self.made: dict[str, dict[str, Any]] = {}  # rule id -> our descriptor

    def of(self, row: dict[str, Any]) -> tuple[str, int]:
        rule_id = row["sarif_rule_id"]
        digest = row["sarif_rule"]
        if not isinstance(rule_id, str) or not rule_id:
            tags = _cwe_tags(row["cwe"])
            key = "\x1f".join([row["title"], *tags]).encode()
            rule_id = "gerion/" + blake2b(key, digest_size=8).hexdigest()
            made = self.made.get(rule_id)
            if made is None:
                made = self.made[rule_id] = {"title": row["title"], "tags": tags, "rank": 99}
            made["rank"] = min(made["rank"], SEVERITY_RANK[row["severity"]])
        elif isinstance(digest, str):
            # One descriptor a rule id: that of the open finding seen last, as the scanner
            # describes the rule now (Trivy's text of a CVE changes as its database does),
            # else of the closed one seen last.
            sighting = (bool(row["active"]), row["last_seen_at"])
            if rule_id not in self.chosen or sighting > self.chosen[rule_id]:
                self.stored[rule_id] = digest
                self.chosen[rule_id] = sighting
        if rule_id not in self.index:
            self.index[rule_id] = len(self.index)
        return rule_id, self.index[rule_id]

    def descriptors(self, stored: dict[str, Any]) -> list[Any]:
        """Every rule, in index order: the scanner's own descriptor where it is stored."""
        out = []
        for rule_id in self.index:
            descriptor = stored.get(self.stored.get(rule_id, ""))
            if isinstance(descriptor, dict):
                # Under the results' rule id: a result can name by index a rule whose own id
                # differs, or that has none; that rule is what described its finding.
                out.append(_descriptor({**descriptor, "id": rule_id}))
                continue
            made = self.made.get(rule_id)
            rule: dict[str, Any] = {"id": rule_id}  # a scanner's rule it did not describe
            if made is not None:
                rule["name"] = made["title"][:200]
                rule["shortDescription"] = {"text": made["title"]}
                severity = list(SEVERITY_RANK)[made["rank"]]
                rule["defaultConfiguration"] = {"level": LEVEL[severity]}
                properties: dict[str, Any] = {"tags": made["tags"]}
                if severity != "INFO":
                    properties["security-severity"] = SCORE[severity]
                rule["properties"] = properties
            out.append(rule)
        return out


# --- a scanner's rule as SARIF's schema allows it ---------------------------------------------
# The reader stores a scanner's rule as sent, odd values and all (each with a warning: `name`
# a number, a level "fatal", tags that are not a list). The export writes it back as the SARIF
# 2.1.0 schema allows it, so that the log stays valid. The Structs below say what the schema
# allows in a rule (reportingDescriptor): an object's fields (the schema allows no others,
# but in a property bag), their kinds, and (_DISTINCT) lists whose items must differ.
# msgspec checks a rule against them in C (~2 us), and takes every real scanner's rule in the
# fixtures as it is; only a rule they refuse is walked (_conform, ~45 us), what they refuse
# left out.

_GUID = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
_DISTINCT = msgspec.Meta(extra={"uniqueItems": True})
_Guid = Annotated[str, msgspec.Meta(pattern=_GUID)]
_Uri = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*:\S*$")]  # (absolute)
_Index = Annotated[int, msgspec.Meta(ge=-1)]
_Strings = Annotated[list[str], _DISTINCT]
_MISSING: Any = object()


def _all_distinct(*lists: Any) -> None:
    for items in lists:
        if items and _repeats(items):
            raise ValueError("repeated items")


class _ValidBag(Struct):  # (any other property allowed)
    tags: _Strings | UnsetType = UNSET

    def __post_init__(self) -> None:
        _all_distinct(self.tags)


class _ValidText(Struct, forbid_unknown_fields=True):
    text: str
    markdown: str | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET


class _ValidMessage(Struct, forbid_unknown_fields=True):
    text: str | UnsetType = UNSET
    markdown: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    arguments: list[str] | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.text is UNSET and self.id is UNSET:
            raise ValueError("a text or an id")


class _ValidToolReference(Struct, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    index: _Index | UnsetType = UNSET
    guid: _Guid | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET


class _ValidReference(Struct, rename="camel", forbid_unknown_fields=True):
    id: str | UnsetType = UNSET
    index: _Index | UnsetType = UNSET
    guid: _Guid | UnsetType = UNSET
    tool_component: _ValidToolReference | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.id is UNSET and self.index is UNSET and self.guid is UNSET:
            raise ValueError("an id, an index or a guid")


class _ValidRelationship(Struct, forbid_unknown_fields=True):
    target: _ValidReference
    kinds: _Strings | UnsetType = UNSET
    description: _ValidMessage | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET

    def __post_init__(self) -> None:
        _all_distinct(self.kinds)


class _ValidConfiguration(Struct, forbid_unknown_fields=True):
    enabled: bool | UnsetType = UNSET
    level: Literal["none", "note", "warning", "error"] | UnsetType = UNSET
    rank: Annotated[float, msgspec.Meta(ge=-1, le=100)] | UnsetType = UNSET
    parameters: _ValidBag | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET


class _ValidDescriptor(Struct, rename="camel", forbid_unknown_fields=True):
    id: str
    deprecated_ids: _Strings | UnsetType = UNSET
    guid: _Guid | UnsetType = UNSET
    deprecated_guids: Annotated[list[_Guid], _DISTINCT] | UnsetType = UNSET
    name: str | UnsetType = UNSET
    deprecated_names: _Strings | UnsetType = UNSET
    short_description: _ValidText | UnsetType = UNSET
    full_description: _ValidText | UnsetType = UNSET
    message_strings: dict[str, _ValidText] | UnsetType = UNSET
    default_configuration: _ValidConfiguration | UnsetType = UNSET
    help_uri: _Uri | UnsetType = UNSET
    help: _ValidText | UnsetType = UNSET
    relationships: Annotated[list[_ValidRelationship], _DISTINCT] | UnsetType = UNSET
    properties: _ValidBag | UnsetType = UNSET

    def __post_init__(self) -> None:
        _all_distinct(
            self.deprecated_ids, self.deprecated_guids, self.deprecated_names, self.relationships
        )


def _descriptor(descriptor: dict[str, Any]) -> dict[str, Any]:
    """A scanner's rule as the export writes it: as stored when the schema takes it, else
    conformed."""
    try:
        msgspec.convert(descriptor, _ValidDescriptor)
    except msgspec.ValidationError:
        conformed: dict[str, Any] = _conform(descriptor, _ValidDescriptor)
        return conformed
    return descriptor


@cache
def _fields(kind: type[Struct]) -> tuple[dict[str, Any], bool]:
    """A Struct's fields (name as sent -> type), and whether it takes others (~0.2 ms to ask
    msgspec: asked once)."""
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(kind)}
    return fields, not kind.__struct_config__.forbid_unknown_fields


def _conform(value: Any, kind: Any) -> Any:
    """`value` with what `kind` (a _Valid* Struct, or the type of one of its fields) refuses
    left out, at every depth: an object's fields it does not name or cannot take, a list's
    items, repeated items of a _DISTINCT list; _MISSING when what is left is still refused
    (a required field gone, a value of the wrong kind). What `kind` takes as it is, is not
    walked."""
    if _takes(value, kind):
        return value
    args = get_args(kind)
    if get_origin(kind) is Union or isinstance(kind, UnionType):  # X | UnsetType: X
        (kind,) = [arg for arg in args if arg is not UnsetType]
        args = get_args(kind)
    outer, distinct = kind, False
    if get_origin(kind) is Annotated:
        kind, distinct = args[0], any(meta is _DISTINCT for meta in args[1:])
    conformed = value
    if isinstance(kind, type) and issubclass(kind, Struct):
        if not isinstance(value, dict):
            return _MISSING
        fields, others = _fields(kind)
        conformed = {}
        for key, item in value.items():
            if key in fields:
                item = _conform(item, fields[key])
            if item is not _MISSING and (key in fields or others):
                conformed[key] = item
    elif get_origin(kind) in (list, dict):
        if not isinstance(value, get_origin(kind)):
            return _MISSING
        item_kind = get_args(kind)[-1]
        items = value.items() if isinstance(value, dict) else enumerate(value)
        kept = {k: c for k, v in items if (c := _conform(v, item_kind)) is not _MISSING}
        conformed = kept if isinstance(value, dict) else list(kept.values())
        if distinct:  # the first of each, by its JSON (objects too)
            unique: dict[bytes, Any] = {}
            for item in conformed:
                unique.setdefault(_encode(item, order="sorted"), item)
            conformed = list(unique.values())
    return conformed if _takes(conformed, outer) else _MISSING


def _takes(value: Any, kind: Any) -> bool:
    """Whether `kind` takes `value` as it is (a _DISTINCT list's items all different: what a
    Struct's __post_init__ checks of its lists)."""
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    distinct = any(_DISTINCT in get_args(arg) for arg in (kind, *get_args(kind)))
    return not (distinct and isinstance(value, list) and _repeats(value))


def _repeats(items: list[Any]) -> bool:
    return len({_encode(v, order="sorted") for v in items}) < len(items)


def _message(row: dict[str, Any]) -> str:
    """The description, else the title; but the title for a finding whose title was its
    message (its scanner's rule describes it by its id alone, or not at all): read back,
    the message is its title again and the rule's own description its description."""
    if row["sarif_message"] == row["title"]:
        return str(row["title"])
    return str(row["description"] or row["title"])


def _cwe_tags(cwe: Any) -> list[str]:
    return [
        f"external/cwe/cwe-{item[4:]}"
        for item in (cwe or ())
        if isinstance(item, str) and item.startswith("CWE-")
    ]


def sarif_log(
    rows: Iterable[dict[str, Any]], stored_rules: Callable[[list[str]], dict[str, Any]]
) -> Iterator[bytes]:
    """The log of `rows` (in scan type order), in pieces of JSON text. `stored_rules` gives
    the scanner's descriptors by digest (read once per run, for the rules its results use)."""
    yield b'{"$schema":' + _encode(SCHEMA_URI) + b',"version":"2.1.0","runs":['
    scan_type: str | None = None
    rules = _Rules()
    batch: list[bytes] = []
    for row in rows:
        if row["scan_type"] != scan_type:
            if scan_type is not None:
                yield b"".join(batch) + _run_end(rules, stored_rules) + b","
                batch = []
                rules = _Rules()
            scan_type = row["scan_type"]
            category = _encode({"id": f"{EXPORT_CATEGORY_PREFIX}{scan_type}/"})
            batch.append(b'{"automationDetails":' + category + b',"results":[')
        else:
            batch.append(b",")
        batch.append(_encode(_result(row, rules)))
        if len(batch) >= 1000:
            yield b"".join(batch)
            batch = []
    if scan_type is not None:
        yield b"".join(batch) + _run_end(rules, stored_rules)
    yield b"]}"


def _run_end(rules: _Rules, stored_rules: Callable[[list[str]], dict[str, Any]]) -> bytes:
    stored = stored_rules(sorted(set(rules.stored.values()))) if rules.stored else {}
    tool = {"driver": {"name": EXPORT_TOOL_NAME, "rules": rules.descriptors(stored)}}
    return b'],"tool":' + _encode(tool) + b',"columnKind":"utf16CodeUnits"}'


def _result(row: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    rule_id, rule_index = rules.of(row)
    severity = row["severity"]
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[severity],
        "message": {"text": _message(row)},
    }
    if row["file_path"]:
        physical: dict[str, Any] = {"artifactLocation": {"uri": quote(row["file_path"], safe="/")}}
        line = row["line_number"]
        if isinstance(line, int) and line >= 1:
            physical["region"] = {"startLine": line}
        result["locations"] = [{"physicalLocation": physical}]
    result["partialFingerprints"] = {FINGERPRINT_KEY: row["finding_id"]}
    if not row["active"]:
        result["baselineState"] = "absent"  # no longer reported: mitigated
    status = finding_status(
        active=row["active"],
        false_positive=row["false_positive"],
        risk_accepted=row["risk_accepted"],
    )
    if status in (Status.FALSE_POSITIVE, Status.RISK_ACCEPTED):
        said = status
        if status == Status.RISK_ACCEPTED and row["risk_accepted_until"] is not None:
            said += f" until {row['risk_accepted_until'].isoformat()}"
        reason = row["triage_reason"]
        justification = f"{said}: {reason}" if reason else said
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": justification}
        ]
    properties: dict[str, Any] = {"security-severity": SCORE[severity]}
    tags = _cwe_tags(row["cwe"]) + [item for item in row["cve"] or () if isinstance(item, str)]
    if tags:
        properties["tags"] = tags
    result["properties"] = properties
    return result
