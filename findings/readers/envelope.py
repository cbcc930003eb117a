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
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw, Struct

from findings import normalize as n
from findings.models import ELIDABLE_FIELDS, ELIDED_BIT, SEVERITY_RANK, loads_lenient

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
    plus `vuln_details`) send it. Anything else is read by `_slow_finding`. (A Raw field is
    None when absent, Raw(b"null") when sent as null.)"""

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
    # Descriptive, kept as sent and part of what the finding says (the CLI's premium keys are
    # small or null; its per-package details can be long: kept as their bytes).
    vuln_details: Raw = None  # type: ignore[assignment]
    trace: Any = None
    confidence: Any = None
    reachability: Any = None
    risk_score: Any = None
    score_breakdown: Any = None
    # Per build: the CLI stamps them on every finding of every scan. Kept in the raw data,
    # never part of what the finding says (a re-scan must not rewrite every finding).
    creation_date: datetime | None = None
    last_update_date: datetime | None = None
    branch_name: Any = None
    build_id: Any = None
    code_path: Any = None
    commit_hash: Any = None
    commit_author: Any = None
    mitigated_on_build_id: Any = None


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
# The fields that have a column of their own (a finding's own copies of the stream's values
# included): the rest of a finding is what it says beyond them.
_COLUMNS = frozenset(ELIDABLE_FIELDS) | {
    "scan_type",
    "repository_name",
    "active",
    "mitigated",
    "false_positive",
}


class _Extras(Struct, omit_defaults=True, gc=False):
    """What a fast-path finding sent that no column holds as sent (see
    findings.models.ELIDABLE_FIELDS), in the order the CLI sends it; None is left out."""

    severity: Any = None
    scan_type: Any = None
    repository_name: Any = None
    branch_name: Any = None
    build_id: Any = None
    code_path: Any = None
    commit_hash: Any = None
    commit_author: Any = None
    active: Any = None
    mitigated: Any = None
    false_positive: Any = None
    creation_date: Any = None
    last_update_date: Any = None
    cwe: Any = None
    cve: Any = None
    mitigated_on_build_id: Any = None
    trace: Any = None
    confidence: Any = None
    reachability: Any = None
    risk_score: Any = None
    score_breakdown: Any = None
    vuln_details: Any = None


# The metadata stays bytes until read on its own: a value Python cannot hold as sent (1e400)
# is then read leniently, not taken for a wrong shape of the whole body.
class _CliData(Struct):
    scan_metadata: Raw = None  # type: ignore[assignment]
    metadata: Raw = None  # type: ignore[assignment]
    findings: list[Raw] | None = None


class _Envelope(Struct):
    metadata: Raw = None  # type: ignore[assignment]
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


def read_envelope(body: bytes | bytearray) -> n.ParsedUpload:
    """The upload: its stream checked now, its findings as `rows` is consumed. Raises
    UploadInvalid for a body that is not JSON or not an envelope."""
    problems = n.Problems()
    envelope, body, repaired = _decode_envelope(body, problems)
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
    raw_meta = meta
    meta = _metadata_value(raw_meta, meta_path, problems)
    stream = _metadata(meta, meta_path, problems, repaired)
    meta = _storable(meta, raw_meta, meta_path, problems)
    parsed = n.ParsedUpload(
        envelope=kind,
        metadata=meta if isinstance(meta, dict) else {},
        received=len(findings),
        rows=iter(()),
        problems=problems,
        **stream,
    )
    parsed.rows = _rows(parsed, findings, findings_path, meta_path, body, repaired)
    return parsed


def _decode_envelope(
    body: bytes | bytearray, problems: n.Problems
) -> tuple[_Envelope, bytes | bytearray, bool]:
    """The envelope, the body its findings are slices of, and whether text had to be
    repaired: escaped lone surrogates (`\\udce9`, what Python's json writes for a file name
    that is not UTF-8) are replaced with U+FFFD, with a warning (valid JSON that no UTF-8 text
    can hold); in an identity they are an error (see _repaired_identity)."""
    try:
        return _envelope_decoder.decode(body), body, False
    except msgspec.ValidationError as exc:
        n.raise_if_not_json(body)  # a wrong shape is reported only for JSON
        raise n.UploadInvalid(*_shape_error(exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        error = exc
    if n.LONE_SURROGATE.search(body):
        cleaned = n.SURROGATE_ESCAPES.sub(_replace_lone_surrogate, body)
        try:
            envelope = _envelope_decoder.decode(cleaned)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
        else:
            problems.warn("$", "escaped lone surrogates (not UTF-8 text) replaced with U+FFFD")
            return envelope, cleaned, True
    raise n.UploadInvalid([], 0, f"The body is not valid JSON: {error}") from None


def _replace_lone_surrogate(match: re.Match[bytes]) -> bytes:
    escape = match.group(1)
    if len(escape) == 5 and escape[1:2] in b"dD":  # a surrogate alone
        return b"\\ufffd"
    return match.group(0)


def _metadata_value(meta: Raw | None, path: str, problems: n.Problems) -> Any:
    """The metadata's value; numbers Python cannot hold as sent (1e400, 5,000 digits) are
    kept as their text, with a warning."""
    if meta is None:
        return None
    try:
        return _any_decoder.decode(meta)
    except msgspec.ValidationError:
        problems.warn(path, "numbers out of range kept as their text")
        return loads_lenient(bytes(meta))
    except RecursionError:
        problems.error(path, f"is nested too deeply (at most {METADATA_MAX_DEPTH} levels)")
        return {}


def _storable(meta: Any, raw: Raw | None, path: str, problems: n.Problems) -> Any:
    """The metadata as stored (PostgreSQL's jsonb holds no NUL): read again with its NUL
    escapes replaced by U+FFFD, with a warning. (An identity with one was refused before.)"""
    if raw is None or not isinstance(meta, dict) or n.NUL_ESCAPE not in bytes(raw):
        return meta
    cleaned = n.without_nul_escapes(bytes(raw))
    if cleaned == bytes(raw):
        return meta  # an escaped backslash before "u0000", not a NUL
    problems.warn(path, "NUL characters replaced with U+FFFD")
    return _metadata_value(Raw(cleaned), path, n.Problems())  # its warnings were given


def _repaired_identity(value: str, repaired: bool) -> None:
    if repaired and "\ufffd" in value:
        raise ValueError("must be UTF-8 text (it held an escaped lone surrogate)")


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


def _metadata(meta: Any, path: str, problems: n.Problems, repaired: bool) -> dict[str, Any]:
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
            _repaired_identity(stream[key], repaired)
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


def _rows(
    parsed: n.ParsedUpload,
    findings: list[Raw],
    base: str,
    meta_path: str,
    body: bytes | bytearray,
    repaired: bool,
) -> Iterator[n.Row]:
    """The Row of each finding, in order (repeated finding_ids too: see ParsedUpload); sets
    the upload's scan type when the metadata has none (all findings must agree)."""
    problems = parsed.problems
    repository = parsed.repository_name
    scan_type = parsed.scan_type
    scan_type_from: str | None = None  # the path that set the scan type, when a finding did
    may_hold_nul = n.may_hold_nul(body)
    decode = _finding_decoder.decode
    exact_severity = n.SEVERITY_EXACT
    rank = SEVERITY_RANK
    scan_types = _SCAN_TYPES
    cwe_cache: dict[tuple[str, ...], tuple[bytes, bool]] = {}
    empty_list = n.EMPTY_JSONB_LIST
    jsonb_prefix = n.JSONB_VERSION
    jsonb_one = jsonb_prefix + b"["
    bit = ELIDED_BIT
    fixed_elided = bit["finding_id"] | bit["title"]
    bit_path = bit["file_path"]
    bit_severity, bit_line, bit_cwe, bit_cve = (
        bit["severity"],
        bit["line_number"],
        bit["cwe"],
        bit["cve"],
    )
    bit_description, bit_mitigation, bit_scope = (
        bit["description"],
        bit["mitigation"],
        bit["security_scope"],
    )
    bit_component, bit_version, bit_fix = (
        bit["component_name"],
        bit["component_version"],
        bit["component_fix"],
    )
    make_hash = n.content_hash
    for index, raw in enumerate(findings):
        finding = None
        if not (may_hold_nul and n.NUL_ESCAPE in bytes(raw)):
            try:
                finding = decode(raw)
                # Kept as bytes, unread: PostgreSQL must be able to take them as UTF-8 text.
                details = finding.vuln_details
                if details is not None and not _utf8(details):
                    finding = None
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                finding = None
        row: n.Row
        if (
            finding is None
            or finding.title.isspace()
            or finding.finding_id.isspace()
            or (repaired and "\ufffd" in finding.finding_id)
            or (  # four bytes a character could overflow the identity's index entry
                len(finding.finding_id) * 4 > n.IDENTITY_MAX_BYTES
                and len(finding.finding_id.encode()) > n.IDENTITY_MAX_BYTES
            )
        ):
            slow = _slow_finding(raw, f"{base}[{index}]", repository, problems, repaired)
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
            # CWE lists repeat across findings: each distinct one is read once (unless it
            # needed a warning, which each finding must get). Its column holds it as sent
            # (left out of the raw data) when reading changed nothing.
            cwes = finding.cwe
            if not cwes:
                cwe_json, cwe_as_sent = empty_list, cwes is not None
            else:
                key = tuple(cwes)
                cached = cwe_cache.get(key)
                if cached is None:
                    warned = problems.warning_total
                    cwe_list = n.jsonb_list(n.cwe(cwes, f"{base}[{index}].cwe", problems))
                    cached = (cwe_list, cwe_list == jsonb_prefix + _encode(cwes))
                    if problems.warning_total == warned:
                        cwe_cache[key] = cached
                cwe_json, cwe_as_sent = cached
            cves = finding.cve
            if cves is None:
                cve_json, cve_as_sent = empty_list, False
            elif (  # one id, as the CLI sends it (a string, or a list of one)
                (cve := cves if type(cves) is str else cves[0] if len(cves) == 1 else "")
                and cve[0] > " "
                and cve[-1] > " "
                and not (" " in cve or "," in cve or ";" in cve)
            ):
                cve_json, cve_as_sent = jsonb_one + _encode(cve) + b"]", type(cves) is list
            else:
                cve_json = n.jsonb_list(n.cve(cves, f"{base}[{index}].cve", problems))
                cve_as_sent = type(cves) is list and cve_json == jsonb_prefix + _encode(cves)
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
            # Every text the Struct took is in its column as sent (no truncation on this
            # path): left out of the raw data, as are the severity, line and ids when the
            # columns hold them as sent.
            elided = fixed_elided
            if sev == severity:
                elided |= bit_severity
            if finding.file_path is not None:
                elided |= bit_path
            if line is not None:
                elided |= bit_line
            if finding.description is not None:
                elided |= bit_description
            if finding.mitigation is not None:
                elided |= bit_mitigation
            if finding.security_scope is not None:
                elided |= bit_scope
            if finding.component_name is not None:
                elided |= bit_component
            if finding.component_version is not None:
                elided |= bit_version
            if finding.component_fix is not None:
                elided |= bit_fix
            kept_cwe = cwes
            if cwe_as_sent:
                elided, kept_cwe = elided | bit_cwe, None
            kept_cve = cves
            if cve_as_sent:
                elided, kept_cve = elided | bit_cve, None
            extras = _encode(
                _Extras(
                    None if elided & bit_severity else sev,
                    finding.scan_type,
                    own_repository,
                    finding.branch_name,
                    finding.build_id,
                    finding.code_path,
                    finding.commit_hash,
                    finding.commit_author,
                    finding.active,
                    finding.mitigated,
                    finding.false_positive,
                    finding.creation_date,
                    finding.last_update_date,
                    kept_cwe,
                    kept_cve,
                    finding.mitigated_on_build_id,
                    finding.trace,
                    finding.confidence,
                    finding.reachability,
                    finding.risk_score,
                    finding.score_breakdown,
                    _value(finding.vuln_details),
                )
            )
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
                extras,
                elided,
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
                parsed.scan_type = scan_type
            elif normalized != scan_type:
                where = f"{scan_type_from}.scan_type" if scan_type_from else "the metadata"
                problems.error(
                    f"{base}[{index}].scan_type", f"is {normalized}, but {where} says {scan_type}"
                )
                continue
        if problems.error_total == 0:
            yield row
    if scan_type is None and problems.error_total == 0:
        problems.error(
            f"{meta_path}.scan_type",
            "is required when no finding carries a scan_type (SAST, SCA, SECRETS, IAC)",
        )


def _utf8(raw: Raw) -> bool:
    data = bytes(raw)
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _value(raw: Raw | None) -> Raw | None:
    """A Raw field's value for the raw data: None (left out) if absent or null."""
    return None if raw is None or raw == NULL else raw


def _date(moment: datetime, path: str, problems: n.Problems) -> datetime | None:
    """A date the fast path did not take as it was (a zone, or an edge year): naive UTC."""
    if n.in_range(moment):
        return n.naive_utc(moment)
    problems.warn(path, f"is outside the years {n.MIN_YEAR}-{n.MAX_YEAR}: left out")
    return None


def _slow_finding(
    raw: Raw, path: str, repository: str | None, problems: n.Problems, repaired: bool = False
) -> tuple[n.Row, Any] | None:
    """A finding the fast path refused, checked field by field: None if it has errors (they
    are in `problems`), else its Row and its own scan type (checked by the caller)."""
    # Not UTF-8 (Latin-1 bytes in a description, say): what only describes the finding is
    # kept with U+FFFD in place of what is not text, with a warning; an identity cannot be.
    data = bytes(raw)
    not_utf8 = not _utf8(raw)
    if not_utf8:
        data = data.decode("utf-8", "replace").encode()
        raw = Raw(data)
        problems.warn(path, "bytes that are not UTF-8 replaced with U+FFFD")
    try:
        fields = _fields_decoder.decode(raw)
    except msgspec.ValidationError:
        problems.error(path, "must be an object")
        return None
    except msgspec.DecodeError as exc:
        problems.error(path, f"is not valid JSON: {exc}")
        return None
    except RecursionError:
        problems.error(path, "is nested too deeply")
        return None
    values: dict[str, Any] = {}
    unreadable: set[str] = set()  # numbers beyond what Python holds (1e400): raw data only
    for key, value in fields.items():
        try:
            values[key] = _any_decoder.decode(value)
        except msgspec.ValidationError:
            if key in _COLUMNS:
                problems.warn(f"{path}.{key}", "a number out of range: left out")
            values[key] = None
            unreadable.add(key)
        except RecursionError:
            problems.error(f"{path}.{key}", "is nested too deeply")
            return None
    before = problems.error_total

    identity = values.get("finding_id")
    try:
        if "finding_id" in unreadable:
            raise ValueError("must be a string or an integer")
        finding_id = n.finding_id(identity)
        if not_utf8 and "\ufffd" in finding_id:
            raise ValueError("must be UTF-8 text")
        _repaired_identity(finding_id, repaired)
    except ValueError as exc:
        problems.error(f"{path}.finding_id", "is required" if identity is None else str(exc))
        finding_id = ""
    title = values.get("title")
    if "title" in unreadable:
        title = ""  # a number out of range: "must be a non-empty string" below
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
    # The raw data: what no column holds exactly as it was sent (nulls are not kept).
    as_stored = dict(zip(_TEXT_COLUMNS, (columns[0], *columns[2:3], *columns[4:10]), strict=True))
    as_stored |= {
        "finding_id": finding_id,
        "severity": severity,
        "line_number": columns[3],
        "cwe": msgspec.json.decode(columns[10][1:]),
        "cve": msgspec.json.decode(columns[11][1:]),
    }
    elided = 0
    kept: dict[str, Raw] = {}
    for key, value in fields.items():
        sent = values[key]
        if (
            key in ELIDED_BIT
            and sent is not None
            and sent == as_stored[key]
            and type(sent) is type(as_stored[key])  # 7 is not "7", True is not 1
        ):
            elided |= ELIDED_BIT[key]
            continue
        if sent is not None or key in unreadable:
            kept[key] = value
    stored_raw = _encode(kept)
    if n.NUL_ESCAPE in stored_raw:
        stored_raw = n.without_nul_escapes(stored_raw)
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
        elided,
        n.content_hash(columns + extras),
        active is not False and mitigated is not True,
    )
    return row, own_scan_type


_TEXT_COLUMNS = (
    "title",
    "file_path",
    "description",
    "mitigation",
    "security_scope",
    "component_name",
    "component_version",
    "component_fix",
)
