"""What every upload format shares (SPEC "POST /api/v1/findings"): the strict checks of what
identifies a stream or a finding, the tolerant normalisation of what only describes one, and
the row a finding becomes. No I/O.

Identity is strict: a bad repository, branch, scan type or `finding_id` is an error, and any
error refuses the whole upload (400, every problem listed with its JSON path). Description is
tolerant: a value the service cannot use as given is normalised, truncated or left out of its
column, the scanner's own value stays in the finding's raw data, and a warning with its path
goes back in the 201 body. A pipeline never loses its upload over a descriptive field.

Readers (findings.readers.*) turn a body into a ParsedUpload of Rows with these helpers; one
write path (findings.merge) stores them.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol, TypeVar

import msgspec
from xxhash import xxh3_64_intdigest

from findings.models import SEVERITY_RANK, ScanType, Severity

MAX_ERRORS_LISTED = 1000
MAX_WARNINGS_LISTED = 100
INT32_MAX = 2**31 - 1
# Dates outside these years are not something a scanner means; PostgreSQL could store them
# but they could not be read back once moved to UTC.
MIN_YEAR, MAX_YEAR = 1900, 9999
# The identity (repository, branch, scan type, finding_id) is one unique-index entry, and
# PostgreSQL's btree entries are limited to ~2.7 kB: bound each part in bytes.
IDENTITY_MAX_CHARS = 255
IDENTITY_MAX_BYTES = 640

# Column limits of descriptive text: longer values are stored truncated (with a warning);
# the whole value stays in the raw data.
TITLE_MAX = 2000
LONG_TEXT_MAX = 65536  # description, mitigation (OSV advisories run to 70,000+ characters)
PATH_MAX = 4096
SHORT_TEXT_MAX = 1024  # security scope, component name, version and fix
MAX_LIST_ENTRIES = 100  # CWE and CVE ids of one finding

# One finding, in the order of findings.merge.ROW_COLUMNS, ready for a binary COPY: dates
# naive in UTC (naive_utc), `cwe` and `cve` in jsonb's binary form (jsonb_list), `raw` JSON
# text (bytes or msgspec.Raw) of what no column holds as sent, `raw_elided` the bits
# (findings.models.ELIDED_BIT) of the fields a column does hold as sent.
Row = tuple[Any, ...]
# Positions in a Row that the write path reads.
ROW_FINDING_ID = 0
ROW_SEVERITY = 2
ROW_CONTENT_HASH = 18
ROW_SEEN_ACTIVE = 19

_encode = msgspec.json.encode


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


class Problems:
    """Errors (the upload is refused) and warnings (it is stored, normalised), each with the
    JSON path it is about; both capped in what is listed, never in what is counted."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []
        self.error_total = 0
        self.warnings: list[dict[str, str]] = []
        self.warning_total = 0

    def error(self, path: str, message: str) -> None:
        self.error_total += 1
        if len(self.errors) < MAX_ERRORS_LISTED:
            self.errors.append({"path": path, "message": message})

    def warn(self, path: str, message: str) -> None:
        self.warning_total += 1
        if len(self.warnings) < MAX_WARNINGS_LISTED:
            self.warnings.append({"path": path, "message": message})

    def raise_if_any(self) -> None:
        if self.error_total:
            raise UploadInvalid(self.errors, self.error_total)


RuleRow = tuple[str, str, bytes | msgspec.Raw]
# How many rules, spread over an upload's, tell whether its rules are new (findings.rules).
RULE_SAMPLE = 16
T = TypeVar("T")


def spread(items: Iterable[T], total: int) -> list[T]:
    """At most RULE_SAMPLE of `items` (`total` of them), evenly spread, the first included."""
    return list(islice(items, 0, None, -(-total // RULE_SAMPLE) or 1))


class RuleSink(Protocol):
    def add(self, row: RuleRow) -> None: ...


class Rules(dict[str, RuleRow]):
    """An upload's SARIF rules, each stored once (findings.rules.keep_rules): digest ->
    (digest, rule id, the rule's JSON as sent: bytes or msgspec.Raw), its row.

    Known before any finding is read: how many rules the log describes (`described`), and the
    digests of a few of them spread over it (`sample`), which tell findings.rules whether
    they are new. A `sink` (findings.rules.RulePacker) then receives each rule as the reader
    first reads it, while the findings are merged."""

    described: int = 0
    sample: Sequence[str] = ()
    sink: RuleSink | None = None

    def add(self, row: RuleRow) -> None:
        if row[0] not in self:
            self[row[0]] = row
            if self.sink is not None:
                self.sink.add(row)


@dataclass
class ParsedUpload:
    """One upload: its stream and build, read and checked at once, and its findings, read as
    `rows` is consumed (so that the write path can store each while the next is read).

    `rows` stops yielding at the first problem, but reads on to the end so that `problems`
    lists them all: whoever consumes it checks `problems` afterwards. The scan type is None
    until a finding gives it, when the metadata does not."""

    envelope: str
    metadata: dict[str, Any]
    repository_name: str
    branch_name: str
    scan_type: str | None
    build_id: str | None
    code_path: str
    commit_hash: str
    commit_author: str
    cicd_platform: str
    scan_duration: float | None
    received: int
    rows: Iterator[Row] = field(repr=False)
    problems: Problems = field(repr=False)
    # Descriptions shared by many findings, stored once (findings.models.ScannerRule).
    # Complete once `rows` is consumed.
    rules: Rules = field(default_factory=Rules, repr=False)

    def read_all(self) -> list[Row]:
        """Every row, one per finding_id (the last occurrence wins); `problems` complete."""
        rows = {row[ROW_FINDING_ID]: row for row in self.rows}
        self.rows = iter(())
        return list(rows.values())


# --- JSON text that PostgreSQL cannot take as it is -------------------------------------------

# A NUL can reach a decoded value only through this escape (JSON has no raw control
# characters): a body without it holds none.
NUL_ESCAPE = b"\\u0000"
# Every escape sequence, left to right, so that an escaped backslash followed by the text
# "u0000" is not taken for the escape of a NUL.
_ESCAPES = re.compile(rb"\\(u0000|.)", re.DOTALL)
_NUL_ESCAPE_SEARCH = re.compile(re.escape(NUL_ESCAPE)).search


def may_hold_nul(body: bytes | bytearray) -> bool:
    """Whether the body holds NUL_ESCAPE anywhere, as `in` says: the regular expression's
    search takes 0.06 s over a 174 MB log where `in` takes 0.09 s, more than msgspec's whole
    decode (CPython's substring search skips by the needle's last byte, a "0", which JSON
    text is full of)."""
    return _NUL_ESCAPE_SEARCH(body) is not None


def without_nul_escapes(data: bytes) -> bytes:
    """JSON text with each escaped NUL (which PostgreSQL stores in no text, json or jsonb)
    replaced by the escape of U+FFFD; the rest as it is."""
    return _ESCAPES.sub(_nul_to_replacement, data)


def _nul_to_replacement(match: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if match.group(1) == b"u0000" else match.group(0)


# How much of a body is checked for UTF-8 at a time (utf8_repaired): a few MB of text at most.
_UTF8_STEP = 1 << 20
# The error handler utf8_repaired decodes with: each byte that is not UTF-8 becomes the text
# `\xe9` (its value), written as a JSON string holds it (the backslash escaped).
_JSON_BYTE_ESCAPES = "gerion-json-byte-escapes"


def _json_byte_escapes(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return "".join(f"\\\\x{byte:02x}" for byte in bad), error.end


codecs.register_error(_JSON_BYTE_ESCAPES, _json_byte_escapes)


def utf8_repaired(body: bytes | bytearray) -> bytes | None:
    """None when `body` is UTF-8 (JSON text must be, RFC 8259), else the body with each byte
    that is not written as the text `\\xe9` inside its JSON string (as git quotes a file
    name that is not UTF-8): two values that differ only in such bytes stay different (two
    files `caf\\xe9.py` and `caf\\xe8.py` are two findings, where U+FFFD for both would merge
    them), and the same bytes read the same every time. An ASCII body (the usual) costs one
    pass that reads 8 bytes at a time (7 ms for 174 MB); another is decoded a step at a time,
    the text thrown away (~60 ms for a 174 MB log with curly quotes in its descriptions)."""
    if body.isascii():
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for start in range(0, len(body), _UTF8_STEP):
            decoder.decode(view[start : start + _UTF8_STEP])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        pass
    else:
        return None
    repairer = codecs.getincrementaldecoder("utf-8")(_JSON_BYTE_ESCAPES)
    parts = [
        repairer.decode(view[start : start + _UTF8_STEP]).encode()
        for start in range(0, len(body), _UTF8_STEP)
    ]
    parts.append(repairer.decode(b"", final=True).encode())
    return b"".join(parts)


# A \\u escape of a UTF-16 surrogate; and every escape sequence, left to right, a surrogate
# pair as one (so that an escaped backslash before "ud800" is not taken for an escape).
LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
SURROGATE_ESCAPES = re.compile(
    rb"\\(u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[dD][89a-fA-F][0-9a-fA-F]{2}|.)",
    re.DOTALL,
)


def lone_surrogates_as_text(body: bytes | bytearray) -> bytes | None:
    """None when `body` escapes no lone surrogate (valid JSON that no UTF-8 text can hold);
    else the body with each such escape written as text: U+DC80-U+DCFF, what Python's json
    writes for a byte of a file name that is not UTF-8, as that byte's `\\xe9` (as
    utf8_repaired reads the byte itself), any other as `\\ud800`."""
    if not LONE_SURROGATE.search(body):
        return None
    return SURROGATE_ESCAPES.sub(_surrogate_as_text, body)


def _surrogate_as_text(match: re.Match[bytes]) -> bytes:
    escape = match.group(1)
    if len(escape) != 5 or escape[1:2] not in b"dD":
        return match.group(0)  # another escape, or a pair
    value = int(escape[1:], 16)
    if 0xDC80 <= value <= 0xDCFF:
        return b"\\\\x%02x" % (value - 0xDC00)
    return b"\\\\" + escape


def raise_if_not_json(body: bytes | bytearray) -> None:
    """UploadInvalid ("not valid JSON") unless `body` is JSON, whatever its shape."""
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UploadInvalid([], 0, f"The body is not valid JSON: {exc}") from None


# --- identity: strict ------------------------------------------------------------------------


def _bounded_identity(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value) > IDENTITY_MAX_CHARS:
        raise ValueError(f"must be at most {IDENTITY_MAX_CHARS} characters (got {len(value)})")
    if len(value) * 4 > IDENTITY_MAX_BYTES and len(value.encode()) > IDENTITY_MAX_BYTES:
        raise ValueError(f"must be at most {IDENTITY_MAX_BYTES} bytes in UTF-8")
    return value


def stream_name(value: Any) -> str:
    """A repository or branch name: a non-empty string, trimmed (" acme/x" is "acme/x")."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = _bounded_identity(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def finding_id(value: Any) -> str:
    """The scanner's id of a finding within its stream: a non-empty string (or an integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("must not be empty")
    return _bounded_identity(value)


_SCAN_TYPES = {s.value for s in ScanType}
_SCAN_TYPE_ALIASES = {"SECRET": "SECRETS"}


def normalize_scan_type(value: Any) -> str:
    """SAST, SCA, SECRETS or IAC, in any case (the CLI sends "Secrets", "IaC")."""
    if not isinstance(value, str):
        raise ValueError("must be a string: SAST, SCA, SECRETS or IAC")
    upper = value.strip().upper()
    upper = _SCAN_TYPE_ALIASES.get(upper, upper)
    if upper not in _SCAN_TYPES:
        raise ValueError("must be one of SAST, SCA, SECRETS, IAC")
    return upper


# --- description: tolerant -------------------------------------------------------------------

_SEVERITIES = [s.value for s in Severity]
# Our own words in the casings clients send: normalised without a warning (documented).
SEVERITY_EXACT: dict[str, str] = {
    spelling: word for word in _SEVERITIES for spelling in (word, word.lower(), word.capitalize())
}
# Other scanners' vocabularies: stored as the nearest of ours, with a warning.
SEVERITY_FOREIGN: dict[str, str] = {
    "ERROR": "HIGH",  # Semgrep/Opengrep rule severity, SARIF level
    "WARNING": "MEDIUM",  # Semgrep/Opengrep, SARIF
    "WARN": "MEDIUM",
    "NOTE": "LOW",  # SARIF
    "MODERATE": "MEDIUM",  # npm audit, GitHub advisories
    "IMPORTANT": "HIGH",  # Red Hat
    "BLOCKER": "CRITICAL",  # SonarQube
    "MAJOR": "HIGH",
    "MINOR": "LOW",
    "NEGLIGIBLE": "INFO",  # Grype
    "UNKNOWN": "INFO",  # Trivy, Grype
    "UNDEFINED": "INFO",
    "INFORMATIONAL": "INFO",
    "INFORMATION": "INFO",
    "NONE": "INFO",
    "TRACE": "INFO",  # KICS
    "INVENTORY": "INFO",  # Semgrep
    "EXPERIMENT": "INFO",
}
DEFAULT_SEVERITY = Severity.INFO.value


def severity_from_score(score: float) -> str:
    """A CVSS-like score in GitHub's bands (as code scanning reads security-severity)."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0:
        return "LOW"
    return "INFO"


def severity(value: Any, path: str, problems: Problems) -> str:
    """One of ours; scanners' words and CVSS scores are mapped (warning); anything else is
    INFO, the documented default (warning). A missing severity is INFO without a warning."""
    if value is None:
        return DEFAULT_SEVERITY
    if isinstance(value, str):
        word = value.strip()
        exact = SEVERITY_EXACT.get(word) or SEVERITY_EXACT.get(word.upper())
        if exact is not None:
            return exact
        if not word:
            return DEFAULT_SEVERITY
        foreign = SEVERITY_FOREIGN.get(word.upper())
        if foreign is not None:
            problems.warn(path, f"{_show(value)} is not a severity of ours: stored as {foreign}")
            return foreign
        try:
            score: float | None = float(word)
        except ValueError:
            score = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            score = float(value)
        except OverflowError:  # an integer of hundreds of digits
            score = None
    else:
        score = None
    if score is not None and 0 <= score <= 10:
        mapped = severity_from_score(score)
        problems.warn(path, f"score {_show(value)} stored as {mapped} (CVSS bands)")
        return mapped
    problems.warn(path, f"unknown severity {_show(value)}: stored as {DEFAULT_SEVERITY}")
    return DEFAULT_SEVERITY


def _show(value: Any) -> str:
    """A scanner's value, short, for a message."""
    text = value if isinstance(value, str) else _encode(value).decode()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def text(value: Any, limit: int, path: str, problems: Problems) -> str:
    """A string for a text column: numbers become their text, NUL characters (which
    PostgreSQL cannot store) are replaced, an over-long value is truncated; other values are
    left out of the column. Each with a warning; the raw data keeps what was sent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = _encode(value).decode()
            problems.warn(path, "a number: stored as text")
        else:
            problems.warn(path, "must be a string: left out (kept in the raw data)")
            return ""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
        problems.warn(path, "NUL characters replaced with U+FFFD")
    if len(value) > limit:
        problems.warn(
            path, f"{len(value)} characters: stored truncated to {limit} (kept whole in raw data)"
        )
        value = value[:limit]
    return str(value)


def line_number(value: Any, path: str, problems: Problems) -> int | None:
    """A line number (0 .. 2**31-1); a numeric string is read as one (warning); anything
    else is left out (warning)."""
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        if 0 <= number <= INT32_MAX:
            problems.warn(path, "a numeric string: read as a number")
            return number
    if number is not None and 0 <= number <= INT32_MAX:
        if not isinstance(value, int):
            problems.warn(path, f"{_show(value)} read as {number}")
        return number
    problems.warn(path, f"{_show(value)} is not a line number: left out")
    return None


def moment(value: Any, path: str, problems: Problems) -> datetime | None:
    """An ISO 8601 date-time (a date alone is midnight; no zone is UTC, as the CLI sends),
    returned naive in UTC (see naive_utc); anything else is left out with a warning."""
    if value is None:
        return None
    parsed: datetime | None = None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is not None:
        if in_range(parsed):
            return naive_utc(parsed)
        problems.warn(path, f"{_show(value)} is outside the years {MIN_YEAR}-{MAX_YEAR}: left out")
        return None
    problems.warn(path, f"{_show(value)} is not an ISO 8601 date-time: left out")
    return None


def naive_utc(moment: datetime) -> datetime:
    """Dates of findings travel naive in UTC: most arrive without a zone (the CLI's), and
    attaching one to each of 200,000 values costs more than the rest of their reading. The
    write path sends them to timestamptz columns as UTC (findings.merge)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def in_range(moment: datetime) -> bool:
    """Within the readable years, also once moved to UTC (an offset may cross a year)."""
    if MIN_YEAR < moment.year < MAX_YEAR:
        return True
    if moment.tzinfo is None:  # naive is UTC here
        in_utc = moment
    else:
        try:
            in_utc = moment.astimezone(UTC)
        except OverflowError:
            return False
    return MIN_YEAR <= moment.year <= MAX_YEAR and MIN_YEAR <= in_utc.year <= MAX_YEAR


def flag(value: Any, path: str, problems: Problems) -> bool | None:
    """true/false; "true"/"false" strings are read (warning); anything else is ignored."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        problems.warn(path, "a string: read as a boolean")
        return value.strip().lower() == "true"
    problems.warn(path, f"{_show(value)} is not true or false: ignored")
    return None


# CWE ids as scanners write them: "CWE-79", "cwe-79", "CWE-79: Improper Neutralization ..."
# (Semgrep and Opengrep rules), "external/cwe/cwe-79" (CodeQL tags), or the bare number.
_CWE_IN_TEXT = re.compile(r"(?i)\bcwe[-_ ]?(\d{1,7})\b")
_CWE_PLAIN = re.compile(r"(?i)^\s*(?:cwe-?)?(\d{1,7})\s*$")


def _cwe_of(item: Any) -> list[str]:
    """The CWE ids in one entry."""
    if isinstance(item, int) and not isinstance(item, bool):
        return [f"CWE-{item}"] if 0 <= item < 10_000_000 else []
    if not isinstance(item, str):
        return []
    plain = _CWE_PLAIN.match(item)
    if plain is not None:
        return [f"CWE-{int(plain.group(1))}"]
    return [f"CWE-{int(n)}" for n in _CWE_IN_TEXT.findall(item)]


def cwe(value: Any, path: str, problems: Problems) -> list[str]:
    """CWE ids as "CWE-<n>", in order, once each. Labels ("CWE-89: Improper ...") are read
    without a warning (the CLI passes Semgrep's on); entries with no id are left out."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    unreadable = 0
    for item in items:
        ids = _cwe_of(item)
        if not ids and not (isinstance(item, str) and not item.strip()):
            unreadable += 1
        for cwe_id in ids:
            if cwe_id not in out:
                out.append(cwe_id)
    if unreadable:
        problems.warn(path, f"{_entries(unreadable)} without a CWE id: left out")
    if len(out) > MAX_LIST_ENTRIES:
        problems.warn(path, f"{len(out)} CWE ids: the first {MAX_LIST_ENTRIES} are stored")
        out = out[:MAX_LIST_ENTRIES]
    return out


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


_CVE_SPLIT = re.compile(r"[\s,;]+")
CVE_MAX = 64


def cve(value: Any, path: str, problems: Problems) -> list[str]:
    """Vulnerability ids (CVE, GHSA, OSV...) as a list, once each: a list, or one string
    that may hold several separated by commas or spaces."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = _CVE_SPLIT.split(value)
    elif isinstance(value, list):
        items = value
    else:
        problems.warn(path, "must be a string or a list of strings: left out")
        return []
    out: list[str] = []
    dropped = 0
    for item in items:
        if isinstance(item, str):
            ident = item.strip()
            if not ident:
                continue
            if len(ident) <= CVE_MAX and "\x00" not in ident:
                if ident not in out:
                    out.append(ident)
                continue
        dropped += 1
    if dropped:
        problems.warn(path, f"{_entries(dropped)} that are not ids: left out")
    if len(out) > MAX_LIST_ENTRIES:
        problems.warn(path, f"{len(out)} ids: the first {MAX_LIST_ENTRIES} are stored")
        out = out[:MAX_LIST_ENTRIES]
    return out


# --- the row -------------------------------------------------------------------------------


def content_hash(content: tuple[Any, ...]) -> int:
    """A signed 64-bit digest of what a finding says: its descriptive columns, then anything
    else it carries (raw JSON values), never per-build values such as its build, dates or
    commit. A re-upload rewrites a finding only when this changes. (Not a security boundary:
    whoever could make two contents collide may write the finding anyway; xxh3 is ~15x
    cheaper a call than blake2b, which counts at 100,000 findings.)"""
    return xxh3_64_intdigest(_encode(content)) - _SIGNED_OFFSET


_SIGNED_OFFSET = 1 << 63  # unsigned 64-bit -> PostgreSQL's signed bigint, one to one


# jsonb's binary input: a version byte, then the JSON text.
JSONB_VERSION = b"\x01"
EMPTY_JSONB_LIST = JSONB_VERSION + b"[]"


def jsonb_list(values: list[str]) -> bytes:
    """A list of ids in jsonb's binary form, as the write path sends it."""
    return JSONB_VERSION + _encode(values) if values else EMPTY_JSONB_LIST


def make_row(
    *,
    finding_id: str,
    title: str,
    severity: str,
    file_path: str,
    line_number: int | None,
    creation_date: datetime | None,
    last_update_date: datetime | None,
    description: str,
    mitigation: str,
    security_scope: str,
    component_name: str,
    component_version: str,
    component_fix: str,
    cwe: list[str],
    cve: list[str],
    raw: bytes,
    raw_elided: int,
    extras: tuple[Any, ...],
    seen_active: bool,
) -> Row:
    """The Row of one finding, from values already normalised (for readers without a fast
    path of their own; see findings.readers.envelope for the one built for volume)."""
    cwe_json, cve_json = jsonb_list(cwe), jsonb_list(cve)
    content = (
        title, severity, file_path, line_number, description, mitigation, security_scope,
        component_name, component_version, component_fix, cwe_json, cve_json,
    )  # fmt: skip
    return (
        finding_id,
        title,
        severity,
        SEVERITY_RANK[severity],
        file_path,
        line_number,
        creation_date,
        last_update_date,
        description,
        mitigation,
        security_scope,
        component_name,
        component_version,
        component_fix,
        cwe_json,
        cve_json,
        raw,
        raw_elided,
        content_hash(content + extras),
        seen_active,
    )
