"""The JSON envelopes (SPEC "POST /api/v1/findings"): the documented
`{"metadata": {...}, "findings": [...]}` and the official CLI's
`{"findings_data": {"scan_metadata" | "metadata": {...}, "findings": [...]}}`.

Built for 100,000 findings a request. The body is decoded once by msgspec: the envelope into
typed fields, each finding into its exact bytes (kept as its raw data, never re-serialised)
and then into a typed Struct whose compiled checks are the whole validation of a well-formed
finding. A finding the Struct refuses (a field of an unexpected type or size, a field it does
not know, a NUL) takes the slow path: decoded loosely and checked field by field, so that
identity problems become errors and descriptive oddities become warnings, each with its path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw, Struct

from findings import normalize as n
from findings.models import SEVERITY_RANK

NULL = Raw(b"null")
# Depth the metadata may nest to: it is stored through the ORM (Python's json), whose
# recursion would fail long before msgspec's or PostgreSQL's.
METADATA_MAX_DEPTH = 64

_Identity = Annotated[str, Meta(min_length=1, max_length=n.IDENTITY_MAX_CHARS)]
_Title = Annotated[str, Meta(min_length=1, max_length=n.TITLE_MAX)]
_Long = Annotated[str, Meta(max_length=n.LONG_TEXT_MAX)]
_Path = Annotated[str, Meta(max_length=n.PATH_MAX)]
_Short = Annotated[str, Meta(max_length=n.SHORT_TEXT_MAX)]
_Line = Annotated[int, Meta(ge=0, le=n.INT32_MAX)]
_CveId = Annotated[str, Meta(max_length=n.CVE_MAX)]


class _Finding(Struct, forbid_unknown_fields=True, gc=False):
    """A finding in the shape the documentation and the official CLI (all 31 of its keys,
    plus `vuln_details`) send it. Anything else is read by `_slow_finding`."""

    finding_id: _Identity
    title: _Title
    severity: str | None = None
    scan_type: str | None = None
    repository_name: str | None = None
    file_path: _Path | None = None
    line_number: _Line | None = None
    description: _Long | None = None
    mitigation: _Long | None = None
    security_scope: _Short | None = None
    component_name: _Short | None = None
    component_version: _Short | None = None
    component_fix: _Short | None = None
    cwe: list[str] | None = None
    cve: list[_CveId] | _CveId | None = None
    active: bool | None = None
    mitigated: bool | None = None
    false_positive: bool | None = None
    # Descriptive, kept as sent and part of what the finding says.
    vuln_details: Raw = NULL
    trace: Raw = NULL
    confidence: Raw = NULL
    reachability: Raw = NULL
    risk_score: Raw = NULL
    score_breakdown: Raw = NULL
    # Per build: the CLI stamps them on every finding of every scan. Kept in the raw data,
    # never part of what the finding says (a re-scan must not rewrite every finding).
    creation_date: datetime | None = None
    last_update_date: datetime | None = None
    branch_name: Raw = NULL
    build_id: Raw = NULL
    code_path: Raw = NULL
    commit_hash: Raw = NULL
    commit_author: Raw = NULL
    mitigated_on_build_id: Raw = NULL


_KNOWN_EXTRAS = (
    "vuln_details",
    "trace",
    "confidence",
    "reachability",
    "risk_score",
    "score_breakdown",
)
_PER_BUILD = frozenset(
    {
        "creation_date",
        "last_update_date",
        "branch_name",
        "build_id",
        "code_path",
        "commit_hash",
        "commit_author",
        "mitigated_on_build_id",
    }
)
_COLUMNS = frozenset(
    {
        "finding_id",
        "title",
        "severity",
        "scan_type",
        "repository_name",
        "file_path",
        "line_number",
        "description",
        "mitigation",
        "security_scope",
        "component_name",
        "component_version",
        "component_fix",
        "cwe",
        "cve",
        "active",
        "mitigated",
        "false_positive",
    }
)


class _CliData(Struct):
    scan_metadata: Any = None
    metadata: Any = None
    findings: list[Raw] | None = None


class _Envelope(Struct):
    metadata: Any = None
    findings: list[Raw] | None = None
    findings_data: _CliData | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_finding_decoder = msgspec.json.Decoder(_Finding)
_fields_decoder = msgspec.json.Decoder(dict[str, Raw])
_any_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode

_SCAN_TYPES = {
    spelling: value
    for value in ("SAST", "SCA", "SECRETS", "IAC")
    for spelling in (value, value.lower(), value.capitalize())
} | {"IaC": "IAC"}
_AT_PATH = re.compile(r" - at `\$(.*)`$")
# JSON escapes PostgreSQL's jsonb cannot hold (NUL) appear in a body only as this text.
_NUL_ESCAPE = b"\\u0000"


def read_envelope(body: bytes) -> n.ParsedUpload:
    """The normalised upload, or UploadInvalid listing every problem (capped)."""
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:
        _raise_if_not_json(body)  # a wrong shape is reported only for JSON
        raise n.UploadInvalid(*_shape_error(exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise n.UploadInvalid([], 0, f"The body is not valid JSON: {exc}") from None

    problems = n.Problems()
    if envelope.findings_data is not None:
        data = envelope.findings_data
        if data.scan_metadata is not None or data.metadata is None:
            kind, meta_path, meta = "cli", "findings_data.scan_metadata", data.scan_metadata
            if data.scan_metadata is None:
                meta_path = "findings_data.metadata"  # the name both versions understand
        else:
            kind, meta_path, meta = "cli-legacy", "findings_data.metadata", data.metadata
        findings_path, findings = "findings_data.findings", data.findings
    else:
        kind, meta_path, meta = "documented", "metadata", envelope.metadata
        findings_path, findings = "findings", envelope.findings
    del envelope

    if findings is None:
        problems.error(findings_path, "is required and must be a list (it may be empty)")
        findings = []
    stream = _metadata(meta, meta_path, problems)
    scan_type = stream.pop("scan_type")
    rows, scan_type = _findings(
        findings, findings_path, stream.get("repository_name"), scan_type, problems, body
    )
    if scan_type is None and problems.error_total == 0:
        problems.error(
            f"{meta_path}.scan_type",
            "is required when no finding carries a scan_type (SAST, SCA, SECRETS, IAC)",
        )
    problems.raise_if_any()
    assert scan_type is not None
    assert isinstance(meta, dict)
    return n.ParsedUpload(
        envelope=kind,
        metadata=meta,
        scan_type=scan_type,
        received=len(findings),
        rows=rows,
        warnings=problems.warnings,
        warning_total=problems.warning_total,
        **stream,
    )


def _raise_if_not_json(body: bytes) -> None:
    try:
        msgspec.json.decode(body, type=Raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise n.UploadInvalid([], 0, f"The body is not valid JSON: {exc}") from None


def _shape_error(exc: msgspec.ValidationError) -> tuple[list[dict[str, str]], int]:
    message = str(exc)
    match = _AT_PATH.search(message)
    path = match.group(1).lstrip(".") if match else ""
    message = _AT_PATH.sub("", message)
    if not path:
        message = 'must be an object: {"metadata": ..., "findings": [...]}'
    elif path.endswith("findings"):
        message = "is required and must be a list (it may be empty)"
    else:
        message = f"must be an object ({message.lower()})"
    return [{"path": path or "$", "message": message}], 1


def _metadata(meta: Any, path: str, problems: n.Problems) -> dict[str, Any]:
    """The stream and the build: repository and branch strictly, the rest tolerantly."""
    stream: dict[str, Any] = {
        "repository_name": "",
        "branch_name": "",
        "scan_type": None,
        "build_id": None,
        "code_path": "",
        "commit_hash": "",
        "commit_author": "",
        "cicd_platform": "",
        "scan_duration": None,
    }
    if not isinstance(meta, dict):
        problems.error(path, "is required and must be an object")
        return stream
    for key in ("repository_name", "branch_name"):
        value = meta.get(key)
        try:
            stream[key] = n.stream_name(value)
        except ValueError as exc:
            problems.error(f"{path}.{key}", "is required" if value is None else str(exc))
    if meta.get("scan_type") is not None:
        try:
            stream["scan_type"] = n.normalize_scan_type(meta["scan_type"])
        except ValueError as exc:
            problems.error(f"{path}.scan_type", str(exc))
    if _depth_exceeds(meta, METADATA_MAX_DEPTH):
        problems.error(path, f"is nested too deeply (at most {METADATA_MAX_DEPTH} levels)")
        return stream
    if problems.error_total == 0 and _contains_nul(meta):  # jsonb cannot hold one
        problems.error(path, "must not contain NUL characters")
        return stream
    # Documented as required, but never worth losing a scan over: a CI variable that is unset
    # arrives as null, and the code path only describes where the scan ran.
    build_id = meta.get("build_id")
    if isinstance(build_id, int | float) and not isinstance(build_id, bool):
        build_id = _encode(build_id).decode()
    if build_id is not None and not isinstance(build_id, str):
        problems.warn(f"{path}.build_id", "must be a string or a number: left out")
        build_id = None
    stream["build_id"] = n.text(build_id, 255, f"{path}.build_id", problems) or None
    if "code_path" not in meta:
        problems.warn(f"{path}.code_path", "is missing (documented as required)")
    for key, limit in (
        ("code_path", n.PATH_MAX),
        ("commit_hash", 128),
        ("commit_author", 255),
        ("cicd_platform", 100),
    ):
        stream[key] = n.text(meta.get(key), limit, f"{path}.{key}", problems)
    duration = meta.get("scan_duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        if 0 <= duration < 10**9:
            stream["scan_duration"] = float(duration)
    elif duration is not None:
        problems.warn(f"{path}.scan_duration", "must be a number of seconds: left out")
    return stream


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            if any("\x00" in key for key in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _findings(
    findings: list[Raw],
    base: str,
    repository: str | None,
    scan_type: str | None,
    problems: n.Problems,
    body: bytes,
) -> tuple[list[n.Row], str | None]:
    """One Row per unique finding_id (the last occurrence wins), and the upload's scan type
    (the metadata's, or the one all findings agree on)."""
    rows: dict[str, n.Row] = {}
    scan_type_from: str | None = None  # the path that set the scan type, when a finding did
    may_hold_nul = _NUL_ESCAPE in body
    decode = _finding_decoder.decode
    exact_severity = n.SEVERITY_EXACT
    rank = SEVERITY_RANK
    scan_types = _SCAN_TYPES
    cwe_cache: dict[tuple[str, ...], bytes] = {}
    empty_list = n.EMPTY_JSONB_LIST
    jsonb_one = n.JSONB_VERSION + b"["
    make_hash = n.content_hash
    for index, raw in enumerate(findings):
        finding = None
        if not (may_hold_nul and _NUL_ESCAPE in bytes(raw)):
            try:
                finding = decode(raw)
            except (msgspec.ValidationError, RecursionError):
                finding = None
        row: n.Row
        if (
            finding is None
            or finding.title.isspace()
            or finding.finding_id.isspace()
            or (  # four bytes a character could overflow the identity's index entry
                len(finding.finding_id) * 4 > n.IDENTITY_MAX_BYTES
                and len(finding.finding_id.encode()) > n.IDENTITY_MAX_BYTES
            )
        ):
            slow = _slow_finding(raw, f"{base}[{index}]", repository, problems)
            if slow is None:
                continue
            row, own_scan_type = slow
        else:
            # The fast path: every value below passed the Struct's compiled checks.
            own_scan_type = finding.scan_type
            sev = finding.severity
            severity = exact_severity.get(sev) if sev is not None else "INFO"
            if severity is None:
                severity = n.severity(sev, f"{base}[{index}].severity", problems)
            own_repository = finding.repository_name
            if own_repository is not None and own_repository.strip() != repository:
                if repository:
                    problems.error(
                        f"{base}[{index}].repository_name",
                        "differs from the metadata's repository_name",
                    )
                continue
            cwes = finding.cwe
            if not cwes:
                cwe_json = empty_list
            else:
                key = tuple(cwes)
                cached = cwe_cache.get(key)
                if cached is None:
                    cached = n.jsonb_list(n.cwe(cwes, f"{base}[{index}].cwe", problems))
                    cwe_cache[key] = cached
                cwe_json = cached
            cves = finding.cve
            if cves is None:
                cve_json = empty_list
            elif (  # one id, as the CLI sends it (a string, or a list of one)
                (cve := cves if type(cves) is str else cves[0] if len(cves) == 1 else "")
                and cve[0] > " "
                and cve[-1] > " "
                and not (" " in cve or "," in cve or ";" in cve)
            ):
                cve_json = jsonb_one + _encode(cve) + b"]"
            else:
                cve_json = n.jsonb_list(n.cve(cves, f"{base}[{index}].cve", problems))
            created = finding.creation_date
            if created is not None and (
                created.tzinfo is not None or not 1900 < created.year < 9999
            ):
                created = _date(created, f"{base}[{index}].creation_date", problems)
            updated = finding.last_update_date
            if updated is not None and (
                updated.tzinfo is not None or not 1900 < updated.year < 9999
            ):
                updated = _date(updated, f"{base}[{index}].last_update_date", problems)
            title = finding.title
            file_path = finding.file_path or ""
            line = finding.line_number
            description = finding.description or ""
            mitigation = finding.mitigation or ""
            scope = finding.security_scope or ""
            component = finding.component_name or ""
            version = finding.component_version or ""
            fix = finding.component_fix or ""
            content = (
                title, severity, file_path, line, description, mitigation, scope, component,
                version, fix, cwe_json, cve_json, finding.vuln_details, finding.trace,
                finding.confidence, finding.reachability, finding.risk_score,
                finding.score_breakdown,
            )  # fmt: skip
            row = (
                finding.finding_id,
                title,
                severity,
                rank[severity],
                file_path,
                line,
                created,
                updated,
                description,
                mitigation,
                scope,
                component,
                version,
                fix,
                cwe_json,
                cve_json,
                raw,
                make_hash(content),
                finding.active is not False and finding.mitigated is not True,
            )
        if own_scan_type is not None:
            normalized = scan_types.get(own_scan_type)
            if normalized is None:
                try:
                    normalized = n.normalize_scan_type(own_scan_type)
                except ValueError as exc:
                    problems.error(f"{base}[{index}].scan_type", str(exc))
                    continue
            if scan_type is None:
                scan_type, scan_type_from = normalized, f"{base}[{index}]"
            elif normalized != scan_type:
                where = f"{scan_type_from}.scan_type" if scan_type_from else "the metadata"
                problems.error(
                    f"{base}[{index}].scan_type", f"is {normalized}, but {where} says {scan_type}"
                )
                continue
        if problems.error_total == 0:
            rows[row[0]] = row
    return list(rows.values()), scan_type


def _date(moment: datetime, path: str, problems: n.Problems) -> datetime | None:
    """A date the fast path did not take as it was (a zone, or an edge year): naive UTC."""
    if n.in_range(moment):
        return n.naive_utc(moment)
    problems.warn(path, f"is outside the years {n.MIN_YEAR}-{n.MAX_YEAR}: left out")
    return None


def _slow_finding(
    raw: Raw, path: str, repository: str | None, problems: n.Problems
) -> tuple[n.Row, Any] | None:
    """A finding the fast path refused, checked field by field: None if it has errors (they
    are in `problems`), else its Row and its own scan type (checked by the caller)."""
    try:
        fields = _fields_decoder.decode(raw)
    except msgspec.ValidationError:
        problems.error(path, "must be an object")
        return None
    except RecursionError:
        problems.error(path, "is nested too deeply")
        return None
    values: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            values[key] = _any_decoder.decode(value)
        except msgspec.ValidationError:  # a number beyond what Python reads (1e400)
            if key in _COLUMNS:
                problems.warn(f"{path}.{key}", "a number out of range: left out")
            values[key] = None
        except RecursionError:
            problems.error(f"{path}.{key}", "is nested too deeply")
            return None
    before = problems.error_total

    identity = values.get("finding_id")
    try:
        finding_id = n.finding_id(identity)
    except ValueError as exc:
        problems.error(f"{path}.finding_id", "is required" if identity is None else str(exc))
        finding_id = ""
    title = values.get("title")
    if isinstance(title, int | float) and not isinstance(title, bool):
        problems.warn(f"{path}.title", "a number: stored as text")
        title = _encode(title).decode()
    if not isinstance(title, str) or not title.strip():
        problems.error(
            f"{path}.title", "is required" if title is None else "must be a non-empty string"
        )
    own_repository = values.get("repository_name")
    if (
        own_repository is not None
        and repository
        and (not isinstance(own_repository, str) or own_repository.strip() != repository)
    ):
        problems.error(f"{path}.repository_name", "differs from the metadata's repository_name")
    own_scan_type = values.get("scan_type")
    if own_scan_type is not None and not isinstance(own_scan_type, str):
        problems.error(f"{path}.scan_type", "must be a string: SAST, SCA, SECRETS or IAC")
    if problems.error_total != before:
        return None

    def text(key: str, limit: int) -> str:
        return n.text(values.get(key), limit, f"{path}.{key}", problems)

    def checked(key: str, normaliser: Callable[[Any, str, n.Problems], Any]) -> Any:
        return normaliser(values.get(key), f"{path}.{key}", problems)

    severity = checked("severity", n.severity)
    # The order of the fast path's `content`: equal findings hash equally on either path.
    columns = (
        n.text(title, n.TITLE_MAX, f"{path}.title", problems),
        severity,
        text("file_path", n.PATH_MAX),
        checked("line_number", n.line_number),
        text("description", n.LONG_TEXT_MAX),
        text("mitigation", n.LONG_TEXT_MAX),
        text("security_scope", n.SHORT_TEXT_MAX),
        text("component_name", n.SHORT_TEXT_MAX),
        text("component_version", n.SHORT_TEXT_MAX),
        text("component_fix", n.SHORT_TEXT_MAX),
        n.jsonb_list(checked("cwe", n.cwe)),
        n.jsonb_list(checked("cve", n.cve)),
    )
    active = checked("active", n.flag)
    mitigated = checked("mitigated", n.flag)
    checked("false_positive", n.flag)
    # What the finding says beyond its columns: the known extras in the fast path's order,
    # then any other field, by name.
    extras = tuple(fields.get(key, NULL) for key in _KNOWN_EXTRAS) + tuple(
        item
        for key in sorted(fields)
        if key not in _COLUMNS and key not in _PER_BUILD and key not in _KNOWN_EXTRAS
        for item in (key, fields[key])
    )
    stored_raw = raw
    if _NUL_ESCAPE in bytes(raw):
        stored_raw = Raw(_NUL_ESCAPES.sub(_replace_nul, bytes(raw)))
        problems.warn(path, "NUL characters replaced with U+FFFD in the raw data")
    row = (
        finding_id,
        columns[0],
        severity,
        SEVERITY_RANK[severity],
        *columns[2:4],
        checked("creation_date", n.moment),
        checked("last_update_date", n.moment),
        *columns[4:],
        stored_raw,
        n.content_hash(columns + extras),
        active is not False and mitigated is not True,
    )
    return row, own_scan_type


# Every escape sequence, left to right, so that an escaped backslash followed by the text
# "u0000" is not taken for the escape of a NUL.
_NUL_ESCAPES = re.compile(rb"\\(u0000|.)", re.DOTALL)


def _replace_nul(match: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if match.group(1) == b"u0000" else match.group(0)
