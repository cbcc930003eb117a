"""Uploads (one scan of one stream) and findings (one issue in a stream, across scans).

A stream is (repository, branch, scan type). A finding's identity is its stream plus the
scanner's `finding_id`; the database enforces it, so no code path can store one twice.
Findings are written in bulk by set-based SQL (findings.merge), not through these models; the
models describe the tables and serve the reads.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apikeys.models import ApiKey


class RawJSONField(models.JSONField):
    """JSON kept as the text that was sent (PostgreSQL `json`, not `jsonb`): a scanner's
    object exactly as it wrote it (key order, numbers, duplicates), stored without the cost of
    converting 100,000 objects an upload to jsonb. Not for querying into."""

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        # Text (findings.apps registers the loader), read so that any JSON that was stored
        # can be read: numbers Python will not hold as numbers (1e400, 5,000 digits) stay text.
        if value is None or not isinstance(value, str):
            return value
        return loads_lenient(value)


def loads_lenient(text: str | bytes) -> Any:
    """JSON as Python values, numbers Python will not hold as numbers kept as their text."""
    return json.loads(text, parse_int=_int_or_text, parse_float=_float_or_text)


def decode_lenient(text: str | bytes | msgspec.Raw) -> Any:
    """loads_lenient at msgspec's speed: msgspec decodes it unless a number is beyond what
    it holds (1e400), its only complaint about valid JSON. RecursionError for nesting deeper
    than it goes."""
    try:
        return _lenient_decoder.decode(text)
    except msgspec.ValidationError:
        return loads_lenient(bytes(text) if isinstance(text, msgspec.Raw) else text)


_lenient_decoder = msgspec.json.Decoder()


def _int_or_text(text: str) -> int | str:
    return int(text) if len(text) <= 4000 else text  # Python's own limit is 4,300 digits


def _float_or_text(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


# Fields of a scanner's finding that a column may hold exactly as it was sent. The raw data
# leaves out those that do (an upload does not send the same text to the database twice),
# `raw_elided` says which, and Finding.scanner_data puts them back.
ELIDABLE_FIELDS = (
    "finding_id",
    "title",
    "severity",
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
)
ELIDED_BIT = {name: 1 << position for position, name in enumerate(ELIDABLE_FIELDS)}


class Severity(models.TextChoices):
    CRITICAL = "CRITICAL", "Critical"
    HIGH = "HIGH", "High"
    MEDIUM = "MEDIUM", "Medium"
    LOW = "LOW", "Low"
    INFO = "INFO", "Info"


# Most severe first: the order of dashboards, filters and sorting.
SEVERITY_ORDER = [s.value for s in Severity]
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}


def sla_days(severity: str) -> int | None:
    """Days a finding of this severity may stay open (None: no SLA)."""
    days: int | None = settings.GERION_SLA_DAYS.get(severity)
    return days


class ScanType(models.TextChoices):
    SAST = "SAST"
    SCA = "SCA"
    SECRETS = "SECRETS"
    IAC = "IAC"


class Upload(models.Model):
    """One accepted POST /api/v1/findings: who sent which scan of which stream, and what it did."""

    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads"
    )
    client_id = models.CharField(max_length=50)
    repository_name = models.CharField(max_length=255)
    branch_name = models.CharField(max_length=255)
    scan_type = models.CharField(max_length=16, choices=ScanType.choices)
    build_id = models.CharField(max_length=255, null=True, blank=True)
    commit_hash = models.CharField(max_length=128, blank=True)
    commit_author = models.CharField(max_length=255, blank=True)
    code_path = models.TextField(blank=True)
    cicd_platform = models.CharField(max_length=100, blank=True)
    scan_duration = models.FloatField(null=True, blank=True)
    # The metadata object as the client sent it, unknown fields included.
    metadata = models.JSONField(default=dict)
    envelope = models.CharField(max_length=20)
    received_at = models.DateTimeField(db_index=True)
    received = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    reactivated = models.PositiveIntegerField(default=0)
    mitigated = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["repository_name", "branch_name", "scan_type", "-received_at"],
                name="upload_stream_idx",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.repository_name}@{self.branch_name} {self.scan_type}"


class Stream(models.Model):
    """The latest upload of each (repository, branch, scan type).

    A finding is active exactly when the stream's latest upload reported it, so an active
    finding was last seen in that upload. Re-uploads therefore leave unchanged active findings
    untouched (no row written) and their last sighting is read from here; see
    findings.selectors.with_last_seen.
    """

    repository_name = models.CharField(max_length=255)
    branch_name = models.CharField(max_length=255)
    scan_type = models.CharField(max_length=16, choices=ScanType.choices)
    head_upload = models.ForeignKey(Upload, on_delete=models.PROTECT, related_name="+")
    head_at = models.DateTimeField()
    head_build_id = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repository_name", "branch_name", "scan_type"], name="stream_identity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.repository_name}@{self.branch_name} {self.scan_type}"


class Finding(models.Model):
    repository_name = models.CharField(max_length=255)
    branch_name = models.CharField(max_length=255)
    scan_type = models.CharField(max_length=16, choices=ScanType.choices)
    finding_id = models.CharField(max_length=255)

    title = models.TextField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    # 0 = CRITICAL ... 4 = INFO, stored so that "most severe first" pages come from an index.
    severity_rank = models.PositiveSmallIntegerField()
    file_path = models.TextField(blank=True)
    line_number = models.IntegerField(null=True, blank=True)
    creation_date = models.DateTimeField(null=True, blank=True)
    last_update_date = models.DateTimeField(null=True, blank=True)
    description = models.TextField(blank=True)
    mitigation = models.TextField(blank=True)
    security_scope = models.TextField(blank=True)
    component_name = models.TextField(blank=True)
    component_version = models.TextField(blank=True)
    component_fix = models.TextField(blank=True)
    cwe = models.JSONField(default=list, blank=True)
    cve = models.JSONField(default=list, blank=True)
    # What the scanner sent that no column holds as sent (unknown fields included): with
    # the columns `raw_elided` names, the whole object (see scanner_data); null values are
    # not kept. And a 64-bit digest of what the finding says (findings.normalize.content_hash,
    # without per-build values such as dates and build ids): a re-upload rewrites a finding
    # only when this changes (or its state does).
    raw = RawJSONField(default=dict)
    raw_elided = models.IntegerField(default=0)
    content_hash = models.BigIntegerField(default=0)

    # Lifecycle, decided by uploads: open while the scanner keeps reporting it.
    active = models.BooleanField(default=True)
    mitigated = models.BooleanField(default=False)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    mitigated_on_build_id = models.CharField(max_length=255, null=True, blank=True)
    # Triage, decided by staff: never changed by an upload.
    false_positive = models.BooleanField(default=False)
    risk_accepted = models.BooleanField(default=False)
    # Why staff decided (required to accept a risk).
    triage_reason = models.TextField(blank=True)
    # No index: nothing reads findings by who triaged them, and each index costs every
    # inserted finding (an upload inserts 100,000).
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    # A risk accepted until this day (inclusive, UTC) reopens by itself the day after
    # (findings.services.findings_reopen_expired). Null: accepted with no end.
    risk_accepted_until = models.DateField(null=True, blank=True)
    # Who on the staff is on it. No database constraint (Django still clears it when the user
    # is deleted) and only a partial index: every inserted finding is unassigned, and neither
    # a foreign-key trigger nor an index entry should cost each of them.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    # When and where the finding was first reported, and last reported *as stored*: an active
    # finding is last seen in its stream's latest upload (Stream.head_*), which these columns
    # do not follow; read through findings.selectors.with_last_seen. No FK constraint (rows
    # are written by set-based SQL) and no index: an update that changes only unindexed
    # columns can stay on its page (HOT) without touching the indexes.
    first_seen_at = models.DateTimeField()
    first_seen_upload = models.ForeignKey(
        Upload, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    first_seen_build_id = models.CharField(max_length=255, null=True, blank=True)
    last_seen_at = models.DateTimeField()
    last_seen_upload = models.ForeignKey(
        Upload, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    last_seen_build_id = models.CharField(max_length=255, null=True, blank=True)
    mitigated_in_upload = models.ForeignKey(
        Upload,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    class Meta:
        permissions = [("triage_finding", "Can triage findings (false positive, risk accepted)")]
        constraints = [
            models.UniqueConstraint(
                fields=["repository_name", "branch_name", "scan_type", "finding_id"],
                name="finding_identity",
            )
        ]
        # The dashboard reads OpenFindingCount and search reads FindingWords, not this table.
        indexes = [
            # "Assigned to me", and expired risk acceptances: only rows that have a value are
            # in these indexes, so an inserted finding adds nothing to them.
            models.Index(
                fields=["assignee"],
                condition=Q(assignee__isnull=False),
                name="finding_assignee_idx",
            ),
            models.Index(
                fields=["risk_accepted_until"],
                condition=Q(risk_accepted_until__isnull=False),
                name="finding_risk_until_idx",
            ),
            # Staff list, most severe first, newest first within a severity (keyset pages), for
            # all repositories and for one. The pattern operator class also answers an API
            # key's repository globs (`acme/%`, findings.selectors.RepositoryGlob) from this
            # index whatever the database's collation; equality uses it as before.
            models.Index(fields=["severity_rank", "-id"], name="finding_severity_rank_idx"),
            models.Index(
                fields=["repository_name", "severity_rank", "-id"],
                opclasses=["varchar_pattern_ops", "int2_ops", "int8_ops"],
                name="finding_repo_rank_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding_id}: {self.title[:60]}"

    @property
    def scanner_data(self) -> dict[str, Any]:
        """The finding as the scanner sent it (fields with a null value aside)."""
        data: dict[str, Any] = {
            name: getattr(self, name) for name, bit in ELIDED_BIT.items() if self.raw_elided & bit
        }
        if isinstance(self.raw, dict):
            data.update(self.raw)
        return data

    @property
    def status(self) -> str:
        return finding_status(
            active=self.active, false_positive=self.false_positive, risk_accepted=self.risk_accepted
        )

    @property
    def is_open(self) -> bool:
        return self.active and not (self.false_positive or self.risk_accepted)

    @property
    def age_days(self) -> int:
        """Whole days since the day (UTC) it was first seen."""
        return (timezone.now().date() - self.first_seen_at.astimezone(UTC).date()).days

    @property
    def sla_days(self) -> int | None:
        return sla_days(self.severity)

    @property
    def sla_due(self) -> date | None:
        days = self.sla_days
        return None if days is None else self.first_seen_at.astimezone(UTC).date() + timedelta(days)

    @property
    def overdue(self) -> bool:
        """Open past its severity's SLA (GERION_SLA_DAYS)."""
        days = self.sla_days
        return self.is_open and days is not None and self.age_days > days


class ScannerRule(models.Model):
    """A rule (SARIF reportingDescriptor) as the scanner sent it, stored once however many
    findings it describes: its help text can be kilobytes, shared by thousands of results of
    one upload. A SARIF finding names it by `digest` in its raw data (findings.readers.sarif);
    rows are only ever added (equal digests are equal rules), so none is left dangling. The
    rules of a large upload wait in a ScannerRulePack until read (findings.rules)."""

    # The first 128 bits of the SHA-256 of the JSON, hex (findings.readers.sarif.rule_digest;
    # rules stored before it keep their BLAKE2b-128 key, which their findings name). Looked up
    # by equality only: the LIKE index Django adds to a text key on PostgreSQL is dropped
    # (migration 0010), as it costs each new rule.
    digest = models.CharField(max_length=32, primary_key=True)
    rule_id = models.TextField()
    # The rule's JSON text as the scanner sent it (findings.selectors.scanner_rules reads it):
    # the reader has parsed the whole body already, and PostgreSQL's `json` would parse the
    # 100+ MB of rules of a large Trivy log again for nothing but a check. Never queried into.
    data = models.TextField()

    def __str__(self) -> str:
        return self.rule_id


class ScannerRulePack(models.Model):
    """Rules of one large upload, not stored as rows yet (findings.rules): their rows
    (digest, rule id, JSON as sent), compressed together. An upload writes packs in its own
    transaction; findings.rules.rules_catch_up turns them into ScannerRule rows, and every
    reader of rules catches up first."""

    rules = models.PositiveIntegerField()  # how many (for operators' eyes)
    # One zstd frame: the rules' JSON texts one after the other, then a newline and a JSON
    # line [[digest, rule_id, length], ...] (findings.rules.RulePacker).
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"{self.rules} SARIF rules"


class ScannerRuleSet(models.Model):
    """The rules a large SARIF upload's findings named, all of them stored (as rules, or in
    its packs) when this row was committed with that upload: the next upload naming the same
    rules in the same order (the same scanner on the same image, another branch's or build's
    scan) need not look up each one (findings.rules.keep_rules). Rules are never deleted, so
    a set stays true."""

    # The first 128 bits of the SHA-256 of the rules' digests, in the order the log names
    # them, comma-separated (findings.rules._rule_set_digest).
    digest = models.CharField(max_length=32, primary_key=True)

    def __str__(self) -> str:
        return self.digest


class Status(models.TextChoices):
    ACTIVE = "Active"
    MITIGATED = "Mitigated"
    FALSE_POSITIVE = "False positive"
    RISK_ACCEPTED = "Risk accepted"


def finding_status(*, active: bool, false_positive: bool, risk_accepted: bool) -> str:
    """Staff triage first (it outlives scans), then the lifecycle."""
    if false_positive:
        return Status.FALSE_POSITIVE.value
    if risk_accepted:
        return Status.RISK_ACCEPTED.value
    return Status.ACTIVE.value if active else Status.MITIGATED.value


class FindingEvent(models.Model):
    """A change of a finding's status: by an upload (mitigated, reactivated) or by staff
    (triage). Creation is not an event: first_seen_* records it."""

    class Kind(models.TextChoices):
        MITIGATED = "mitigated", "Mitigated"
        REACTIVATED = "reactivated", "Reactivated"
        FALSE_POSITIVE = "false_positive", "Marked false positive"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"
        REOPENED = "reopened", "Reopened by staff"
        RISK_EXPIRED = "risk_expired", "Reopened: risk acceptance expired"
        ASSIGNED = "assigned", "Assigned"

    finding = models.ForeignKey(
        Finding, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField()
    upload = models.ForeignKey(
        Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    build_id = models.CharField(max_length=255, null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    # Risk accepted: until when (inclusive). Assigned: to whom (null: unassigned).
    until = models.DateField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["finding", "at"], name="finding_event_idx")]

    def __str__(self) -> str:
        return f"{self.finding_id} {self.kind} at {self.at:%Y-%m-%d %H:%M}"


class FindingComment(models.Model):
    """A staff member's note on a finding."""

    finding = models.ForeignKey(
        Finding, on_delete=models.CASCADE, related_name="comments", db_index=False
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    body = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["finding", "at"], name="finding_comment_idx")]

    def __str__(self) -> str:
        return f"comment on {self.finding_id} at {self.at:%Y-%m-%d %H:%M}"


class OpenFindingCount(models.Model):
    """How many open findings (active, not triaged) a repository has of a severity, by the day
    (UTC) they were first seen: the dashboard's figures, overdue ones included, without
    reading findings. Kept in step in the same transaction by every write that opens or
    closes a finding (findings.summary); `manage.py recountfindings` rebuilds it."""

    repository_name = models.CharField(max_length=255)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    first_seen_on = models.DateField()
    count = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repository_name", "severity", "first_seen_on"], name="open_count_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.repository_name} {self.severity} {self.first_seen_on}: {self.count}"


class FindingDay(models.Model):
    """What uploads did on a day (UTC), per severity: findings opened (new and open, or
    reactivated) and fixed (mitigated), with the total time those took to fix: the status
    history summed by day, for the trend chart and mean time to fix."""

    day = models.DateField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    opened = models.IntegerField(default=0)
    fixed = models.IntegerField(default=0)
    fix_seconds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "severity"], name="finding_day_key")]

    def __str__(self) -> str:
        return f"{self.day} {self.severity}: +{self.opened} -{self.fixed}"


class FindingWords(models.Model):
    """The words search looks for in a finding (findings.search), under a GIN index
    (PostgreSQL; migration 0007). Written after the upload that stored the finding, from
    SearchQueue, so that an upload pays nothing for search."""

    finding = models.OneToOneField(
        Finding,
        on_delete=models.CASCADE,
        primary_key=True,
        db_constraint=False,
        related_name="+",
    )
    words = models.TextField()

    def __str__(self) -> str:
        return f"words of {self.finding_id}"


class SearchQueue(models.Model):
    """Findings whose words are not (or no longer) in FindingWords: a range of ids per upload
    that created findings, and each finding an upload rewrote. A range may hold ids of other
    uploads too (ids are handed out to every session from one sequence): indexing a finding
    twice is harmless."""

    low = models.BigIntegerField()
    high = models.BigIntegerField()

    def __str__(self) -> str:
        return f"findings {self.low}..{self.high}"
