"""Parse, validate and normalise a findings upload (SPEC "POST /api/v1/findings"). No I/O.

Built for 100,000 findings in one body: the body is parsed once (orjson), each finding is
checked by a plain loop over a field table (no serializer or model object per finding), and
what comes out is one tuple per unique finding, ready for COPY. Every problem is reported with
its JSON path; nothing is stored unless there are none.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any

import orjson

from findings.models import SEVERITY_RANK, ScanType, Severity

MAX_ERRORS_LISTED = 1000
INT32_MAX = 2**31 - 1
MIN_YEAR, MAX_YEAR = 1900, 9999
# The identity (repository, branch, finding_id) is one unique-index entry: bound its bytes.
IDENTITY_MAX_BYTES = 640
# orjson serialises at most this many levels of nesting; deeper is refused with a path.
MAX_DEPTH = 254
# Fields the official CLI copies from the metadata into every finding. They change with every
# build, so they are left out of a finding's content hash: otherwise every re-upload would
# rewrite every finding.
_PER_BUILD_FIELDS = frozenset(
    {"build_id", "repository_name", "branch_name", "code_path", "last_update_date"}
)

_SEVERITIES = {s.value for s in Severity}
_SEVERITY_ALIASES = {"INFORMATIONAL": "INFO", "NOTE": "INFO", "WARNING": "MEDIUM"}
_SCAN_TYPES = {s.value for s in ScanType}
_SCAN_TYPE_ALIASES = {"SECRET": "SECRETS"}
_CWE_RE = re.compile(r"^(?:CWE-)?(\d{1,6})$", re.IGNORECASE)

# One finding, in the order of findings.merge.STAGING_COLUMNS.
Row = tuple[Any, ...]


class UploadInvalid(Exception):
    """The upload is refused; `errors` lists the problems with their JSON paths."""

    def __init__(self, errors: list[dict[str, str]], total: int, detail: str | None = None):
        self.errors = errors
        self.total = total
        self.detail = detail or (
            f"The upload has {total} problem(s)"
            + (f"; the first {len(errors)} are listed" if total > len(errors) else "")
            + ". Nothing was stored."
        )
        super().__init__(self.detail)


@dataclass
class ParsedUpload:
    envelope: str
    metadata: dict[str, Any]
    repository_name: str
    branch_name: str
    scan_type: str
    build_id: str | None
    code_path: str
    commit_hash: str
    commit_author: str
    cicd_platform: str
    scan_duration: float | None
    received: int
    rows: list[Row] = field(repr=False)

    @property
    def duplicates(self) -> int:
        return self.received - len(self.rows)


class _Errors:
    def __init__(self) -> None:
        self.listed: list[dict[str, str]] = []
        self.total = 0

    def add(self, path: str, message: str) -> None:
        self.total += 1
        if len(self.listed) < MAX_ERRORS_LISTED:
            self.listed.append({"path": path, "message": message})


# --- scalar normalisers: return the value, or raise ValueError with the message ------------


def _text(limit: int, max_bytes: int | None = None) -> Callable[[Any], str]:
    """A string of at most `limit` characters (and `max_bytes` UTF-8 bytes, for columns in a
    unique index: PostgreSQL's btree entries are limited to ~2.7 kB), without NUL."""

    def check(value: Any) -> str:
        if (
            type(value) is str
            and len(value) <= limit
            and "\x00" not in value
            and (max_bytes is None or len(value) * 4 <= max_bytes)
        ):
            return value  # the common case, in one test
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(value)})")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        if max_bytes is not None and len(value.encode("utf-8", "surrogatepass")) > max_bytes:
            raise ValueError(f"must be at most {max_bytes} bytes in UTF-8")
        return value

    return check


def normalize_severity(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string: CRITICAL, HIGH, MEDIUM, LOW or INFO")
    upper = value.strip().upper()
    upper = _SEVERITY_ALIASES.get(upper, upper)
    if upper not in _SEVERITIES:
        raise ValueError("must be one of CRITICAL, HIGH, MEDIUM, LOW, INFO")
    return upper


def normalize_scan_type(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string: SAST, SCA, SECRETS or IAC")
    upper = value.strip().upper()
    upper = _SCAN_TYPE_ALIASES.get(upper, upper)
    if upper not in _SCAN_TYPES:
        raise ValueError("must be one of SAST, SCA, SECRETS, IAC")
    return upper


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("must be an ISO 8601 date-time string")
    text = value.strip()
    # The CLI sends local-looking times without a zone: they are UTC. (Appending the zone is
    # cheaper than replacing it on the parsed object, 200,000 times per large upload.)
    if len(text) > 10 and not (text[-1] in "Zz" or "+" in text[10:] or "-" in text[10:]):
        text += "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # Stored and read back in UTC: an offset must not push it out of what can be read.
        in_utc = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("must be an ISO 8601 date-time") from None
    if not MIN_YEAR <= in_utc.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return moment


def _line_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer or null")
    if not 0 <= value <= INT32_MAX:
        raise ValueError(f"must be between 0 and {INT32_MAX}")
    return value


def _cwe(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if len(items) > 100:
        raise ValueError("must have at most 100 entries")
    out = []
    for item in items:
        if type(item) is int and 0 <= item < 1_000_000:
            out.append(f"CWE-{item}")
            continue
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError("entries must be integers or strings like 'CWE-79'")
        match = _CWE_RE.match(str(item).strip())
        if match is None:
            raise ValueError(f"{str(item)[:40]!r} is not a CWE id")
        out.append(f"CWE-{int(match.group(1))}")
    return out


def _cve(value: Any) -> list[str]:
    if type(value) is str and "," not in value and 0 < len(value) <= 64 and "\x00" not in value:
        value = value.strip()
        if value:
            return [value]  # the CLI's usual single CVE
        raise ValueError("entries must be non-empty strings of at most 64 characters")
    if isinstance(value, str):
        items: list[Any] = [part for part in (p.strip() for p in value.split(",")) if part]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("must be a string or a list of strings")
    if len(items) > 100:
        raise ValueError("must have at most 100 entries")
    cleaned = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        if not text or len(text) > 64 or "\x00" in text:
            raise ValueError("entries must be non-empty strings of at most 64 characters")
        cleaned.append(text)
    return cleaned


# The stored columns of a finding, in staging order after finding_id and title:
# (key, normaliser, value when missing or null).
_OPTIONAL_FIELDS: list[tuple[str, Callable[[Any], Any], Any]] = [
    ("severity", normalize_severity, Severity.INFO.value),
    ("file_path", _text(4096), ""),
    ("line_number", _line_number, None),
    ("creation_date", _datetime, None),
    ("last_update_date", _datetime, None),
    ("description", _text(65536), ""),
    ("mitigation", _text(65536), ""),
    ("security_scope", _text(1024), ""),
    ("component_name", _text(1024), ""),
    ("component_version", _text(1024), ""),
    ("component_fix", _text(1024), ""),
    ("cwe", _cwe, []),
    ("cve", _cve, []),
]
_FINDING_ID = _text(255, IDENTITY_MAX_BYTES)
_TITLE = _text(2000)


def _finding_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _FINDING_ID(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _title(value: Any) -> str:
    text = _TITLE(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _find_nul(value: Any, path: str) -> str | None:
    """The JSON path of the first string (or key) holding a NUL character; PostgreSQL cannot
    store one in text or jsonb, so it is refused rather than silently altered. Iterative: a
    deeply nested document must not exhaust the interpreter's stack."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if "\x00" in key:
                    return f"{where}.{key!r}"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


# --- the envelope and the metadata ----------------------------------------------------------


def _envelope(document: Any) -> tuple[str, str, Any, str, Any]:
    """(envelope name, metadata path, metadata, findings path, findings)."""
    if not isinstance(document, dict):
        raise UploadInvalid(
            [{"path": "$", "message": 'must be an object: {"metadata": ..., "findings": [...]}'}],
            1,
        )
    if "findings_data" in document:
        data = document["findings_data"]
        if not isinstance(data, dict):
            raise UploadInvalid([{"path": "findings_data", "message": "must be an object"}], 1)
        if "scan_metadata" in data:
            return (
                "cli",
                "findings_data.scan_metadata",
                data["scan_metadata"],
                "findings_data.findings",
                data.get("findings"),
            )
        return (
            "cli-legacy",
            "findings_data.metadata",
            data.get("metadata"),
            "findings_data.findings",
            data.get("findings"),
        )
    return (
        "documented",
        "metadata",
        document.get("metadata"),
        "findings",
        document.get("findings"),
    )


def _stream_name(meta: dict[str, Any], key: str, path: str, errors: _Errors) -> str:
    """A repository or branch name: required, trimmed (" acme/x" is "acme/x"), and bounded
    in bytes as part of the unique identity."""
    value = meta.get(key)
    if value is None:
        errors.add(f"{path}.{key}", "is required")
        return ""
    try:
        text = _text(255, IDENTITY_MAX_BYTES)(value).strip()
    except ValueError as exc:
        errors.add(f"{path}.{key}", str(exc))
        return ""
    if not text:
        errors.add(f"{path}.{key}", "must not be empty")
    return text


def _optional(
    meta: dict[str, Any],
    key: str,
    path: str,
    check: Callable[[Any], Any],
    default: Any,
    errors: _Errors,
) -> Any:
    value = meta.get(key)
    if value is None:
        return default
    try:
        return check(value)
    except ValueError as exc:
        errors.add(f"{path}.{key}", str(exc))
        return default


def _build_id(value: Any) -> str | None:
    # CI variables arrive as strings or numbers; an unset one as null (kept, not refused).
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(255)(value)


def _scan_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not 0 <= number < 10**9:
        raise ValueError("must be a non-negative number of seconds")
    return number


# --- the whole upload -----------------------------------------------------------------------


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Parsing 100,000 findings allocates millions of containers, none of them cyclic; the
    cyclic collector would scan the growing heap again and again (more than half of the
    parse time). Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_upload(body: bytes) -> ParsedUpload:
    """The normalised upload, or UploadInvalid listing every problem (capped at 1000)."""
    with _cyclic_gc_paused():
        return _parse_upload(body)


def _parse_upload(body: bytes) -> ParsedUpload:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UploadInvalid([], 0, f"The body is not valid JSON: {exc}") from None
    errors = _Errors()
    envelope, meta_path, meta, findings_path, findings = _envelope(document)

    if not isinstance(findings, list):
        errors.add(findings_path, "is required and must be a list (it may be empty)")
        findings = []
    if not isinstance(meta, dict):
        # Without metadata its fields cannot be checked one by one; the findings still are.
        errors.add(meta_path, "is required and must be an object")
        _findings(findings, findings_path, None, None, errors)
        raise UploadInvalid(errors.listed, errors.total)

    repository = _stream_name(meta, "repository_name", meta_path, errors)
    branch = _stream_name(meta, "branch_name", meta_path, errors)
    if "code_path" not in meta:
        errors.add(f"{meta_path}.code_path", "is required")
    code_path = _optional(meta, "code_path", meta_path, _text(4096), "", errors)
    # Documented as required, but a CI variable that is unset must not lose the upload:
    # null and missing are both "no build id".
    build_id = _optional(meta, "build_id", meta_path, _build_id, None, errors)
    scan_type = _optional(meta, "scan_type", meta_path, normalize_scan_type, None, errors)
    commit_hash = _optional(meta, "commit_hash", meta_path, _text(128), "", errors)
    commit_author = _optional(meta, "commit_author", meta_path, _text(255), "", errors)
    cicd_platform = _optional(meta, "cicd_platform", meta_path, _text(100), "", errors)
    # Informational only (the CLI's timing): an odd value is kept in the metadata as sent, not
    # worth refusing the scan over.
    try:
        scan_duration = (
            _scan_duration(meta["scan_duration"]) if meta.get("scan_duration") is not None else None
        )
    except ValueError:
        scan_duration = None
    nul_in_meta = _find_nul(meta, meta_path)
    if nul_in_meta:
        errors.add(nul_in_meta, "must not contain NUL characters")
    try:
        orjson.dumps(meta)
    except orjson.JSONEncodeError:
        errors.add(meta_path, f"is nested too deeply (at most {MAX_DEPTH} levels)")

    rows, scan_type = _findings(findings, findings_path, repository, scan_type, errors)
    if scan_type is None and errors.total == 0:
        errors.add(
            f"{meta_path}.scan_type",
            "is required when no finding carries a scan_type (SAST, SCA, SECRETS, IAC)",
        )
    if errors.total:
        raise UploadInvalid(errors.listed, errors.total)
    assert scan_type is not None
    return ParsedUpload(
        envelope=envelope,
        metadata=meta,
        repository_name=repository,
        branch_name=branch,
        scan_type=scan_type,
        build_id=build_id,
        code_path=code_path,
        commit_hash=commit_hash,
        commit_author=commit_author,
        cicd_platform=cicd_platform,
        scan_duration=scan_duration,
        received=len(findings),
        rows=rows,
    )


def _findings(
    findings: list[Any],
    base: str,
    repository: str | None,
    scan_type: str | None,
    errors: _Errors,
) -> tuple[list[Row], str | None]:
    """One row per unique finding_id (the last occurrence wins), and the upload's scan type
    (the metadata's, or the one all findings agree on). Empties `findings` as it goes."""
    rows: dict[str, Row] = {}
    dumps = orjson.dumps
    inferred_from: str | None = None
    for index, finding in enumerate(findings):
        # Let go of the parsed object as soon as its row exists: peak memory stays near the
        # larger of the two, not their sum.
        findings[index] = None
        path = f"{base}[{index}]"
        if not isinstance(finding, dict):
            errors.add(path, "must be an object")
            continue
        before = errors.total
        get = finding.get

        try:
            finding_id = _finding_id(get("finding_id"))
        except ValueError as exc:
            errors.add(
                f"{path}.finding_id", "is required" if get("finding_id") is None else str(exc)
            )
            finding_id = ""
        try:
            title = _title(get("title"))
        except ValueError as exc:
            errors.add(f"{path}.title", "is required" if get("title") is None else str(exc))
            title = ""

        values: list[Any] = [finding_id, title]
        for key, check, default in _OPTIONAL_FIELDS:
            value = get(key)
            if value is None:
                values.append(default)
                continue
            try:
                values.append(check(value))
            except ValueError as exc:
                errors.add(f"{path}.{key}", str(exc))
                values.append(default)

        own_repository = get("repository_name")
        if (
            own_repository is not None
            and repository is not None
            and (not isinstance(own_repository, str) or own_repository.strip() != repository)
        ):
            errors.add(f"{path}.repository_name", "differs from the metadata's repository_name")
        own_scan_type = get("scan_type")
        if own_scan_type is not None:
            try:
                normalized = normalize_scan_type(own_scan_type)
            except ValueError as exc:
                errors.add(f"{path}.scan_type", str(exc))
            else:
                if scan_type is None:
                    scan_type, inferred_from = normalized, path
                elif normalized != scan_type:
                    where = f"{inferred_from}.scan_type" if inferred_from else "the metadata"
                    errors.add(
                        f"{path}.scan_type", f"is {normalized}, but {where} says {scan_type}"
                    )
        seen_active = True
        for key in ("active", "mitigated", "false_positive"):
            value = get(key)
            if value is not None and not isinstance(value, bool):
                errors.add(f"{path}.{key}", "must be true, false or null")
        # The scanner itself may report a finding as fixed; it then counts as mitigated.
        if get("active") is False or get("mitigated") is True:
            seen_active = False

        try:
            raw = dumps(finding)
        except orjson.JSONEncodeError:
            errors.add(path, f"is nested too deeply (at most {MAX_DEPTH} levels)")
            continue
        # A NUL elsewhere (unknown fields): the known fields already reported their own.
        if errors.total == before and b"\\u0000" in raw:
            nul_path = _find_nul(finding, path)
            if nul_path:
                errors.add(nul_path, "must not contain NUL characters")
        if errors.total != before:
            continue
        values.insert(3, SEVERITY_RANK[values[2]])
        values[-2] = dumps(values[-2]).decode()  # cwe as JSON text
        values[-1] = dumps(values[-1]).decode()  # cve as JSON text
        values.append(raw.decode())
        if _PER_BUILD_FIELDS.isdisjoint(finding):
            hashed = raw
        else:
            hashed = dumps({k: v for k, v in finding.items() if k not in _PER_BUILD_FIELDS})
        values.append(blake2b(hashed, digest_size=16).hexdigest())
        values.append(seen_active)
        rows[finding_id] = tuple(values)
    return list(rows.values()), scan_type
