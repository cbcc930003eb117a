"""Writes of findings: ingesting an upload (and, for staff, triage)."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.repositories import allows as repository_allowed
from findings.merge import MergeCounts, RepeatedFindingId, UploadContext, merge_upload
from findings.models import Finding, FindingComment, FindingEvent, Stream, Upload
from findings.normalize import ParsedUpload
from findings.readers import read_upload
from findings.rules import keep_rules, pack_as_read
from findings.summary import SummaryDelta, as_date, summary_recount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    upload_id: int
    received: int
    duplicates: int
    counts: MergeCounts
    warnings: list[dict[str, str]]
    warning_total: int

    def as_response(self) -> dict[str, Any]:
        return {
            "upload_id": self.upload_id,
            "received": self.received,
            "duplicates": self.duplicates,
            **asdict(self.counts),
            "warnings": self.warnings,
            "warning_total": self.warning_total,
        }


def _stream_lock_id(repository: str, branch: str, scan_type: str) -> int:
    """A signed 64-bit advisory-lock id for the stream (a collision only serialises two
    unrelated streams, never mixes them)."""
    digest = hashlib.blake2b(
        f"{repository}\0{branch}\0{scan_type}".encode(), digest_size=8, person=b"gerion-st"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


# SQLite (the embedded single-process run) has no advisory locks; its writers take turns here.
_embedded_write_lock = threading.Lock()


class RepositoryNotAllowed(Exception):
    """The upload's repository is outside the API key's repositories; nothing was stored."""

    def __init__(self, repository_name: str) -> None:
        super().__init__(repository_name)
        self.repository_name = repository_name


def findings_ingest(
    *,
    body: bytes | bytearray,
    api_key: ApiKey,
    client_id: str,
    repository_patterns: Sequence[str],
    media_type: str = "application/json",
    params: Mapping[str, str] | None = None,
) -> IngestResult:
    """Store one upload atomically (SPEC "POST /api/v1/findings"): all of it or nothing.
    `media_type` chooses the reader (the JSON envelopes, SARIF); `params` are the query
    parameters (a SARIF log's stream).

    Raises findings.normalize.UploadInvalid (nothing stored) for an invalid body, and
    RepositoryNotAllowed (nothing stored) for a repository the key's `repository_patterns`
    do not allow: an empty scan too, which would otherwise mitigate that stream's findings.
    """
    read = partial(read_upload, body, media_type=media_type, params=params or {})
    with _cyclic_gc_paused():
        parsed = read()
        # Before any finding is read: an upload outside the key's repositories costs nothing.
        if parsed.repository_name and not repository_allowed(
            repository_patterns, parsed.repository_name
        ):
            raise RepositoryNotAllowed(parsed.repository_name)
        if parsed.problems.error_total or parsed.scan_type is None:
            # The upload is refused, or its stream is not known before its findings are
            # read: read them all first (and list every problem).
            parsed.rows = iter(parsed.read_all())
            parsed.problems.raise_if_any()
        if connection.vendor == "postgresql":
            return _store(parsed, read, api_key, client_id)
        with _embedded_write_lock:
            return _store(parsed, read, api_key, client_id)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """An upload of 100,000 findings allocates millions of objects, none of them cyclic; the
    cyclic collector would walk the growing heap again and again (about a third of the
    time). Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _store(
    parsed: ParsedUpload, read: Callable[[], ParsedUpload], api_key: ApiKey, client_id: str
) -> IngestResult:
    assert parsed.scan_type is not None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Uploads of one stream take turns: the lifecycle ("absent from this scan")
            # compares with the stream's previous scan, so two must not interleave. Other
            # streams go on in parallel.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s)",
                    [_stream_lock_id(parsed.repository_name, parsed.branch_name, parsed.scan_type)],
                )
        now = timezone.now()
        stream: dict[str, Any] = {
            "repository_name": parsed.repository_name,
            "branch_name": parsed.branch_name,
            "scan_type": parsed.scan_type,
        }
        previous = Stream.objects.filter(**stream).first()
        upload = Upload.objects.create(
            api_key=api_key,
            client_id=client_id,
            repository_name=parsed.repository_name,
            branch_name=parsed.branch_name,
            scan_type=parsed.scan_type,
            build_id=parsed.build_id,
            commit_hash=parsed.commit_hash,
            commit_author=parsed.commit_author,
            code_path=parsed.code_path,
            cicd_platform=parsed.cicd_platform,
            scan_duration=parsed.scan_duration,
            metadata=parsed.metadata,
            envelope=parsed.envelope,
            received_at=now,
            received=parsed.received,
        )
        context = UploadContext(
            upload_id=upload.pk,
            repository_name=parsed.repository_name,
            branch_name=parsed.branch_name,
            scan_type=parsed.scan_type,
            build_id=parsed.build_id,
            now=now,
            previous_upload_id=previous.head_upload_id if previous else None,
            previous_at=previous.head_at if previous else None,
            previous_build_id=previous.head_build_id if previous else None,
        )
        pack_as_read(connection, parsed.rules)
        try:
            # Each finding is stored as it is read (the database works while the next is
            # read), in a savepoint: a finding_id sent twice (the last one wins) starts over.
            with transaction.atomic():
                counts = merge_upload(connection, context, parsed.rows)
                parsed.problems.raise_if_any()
        except RepeatedFindingId:
            parsed = read()
            pack_as_read(connection, parsed.rules)
            rows = iter(parsed.read_all())
            parsed.problems.raise_if_any()
            counts = merge_upload(connection, context, rows)
        # The SARIF rules the findings name, committed with them (findings.rules).
        keep_rules(connection, parsed.rules)
        Stream.objects.update_or_create(
            **stream,
            defaults={"head_upload": upload, "head_at": now, "head_build_id": parsed.build_id},
        )
        Upload.objects.filter(pk=upload.pk).update(**asdict(counts))
    problems = parsed.problems
    result = IngestResult(
        upload_id=upload.pk,
        received=parsed.received,
        duplicates=parsed.received - counts.created - counts.updated,
        counts=counts,
        warnings=problems.warnings,
        warning_total=problems.warning_total,
    )
    logger.info(
        "findings upload stored",
        extra={
            "upload_id": upload.pk,
            "repository_name": parsed.repository_name,
            "branch_name": parsed.branch_name,
            "scan_type": parsed.scan_type,
            "counts": asdict(counts),
            "received": parsed.received,
            "warning_total": problems.warning_total,
        },
    )
    return result


# --- staff triage ------------------------------------------------------------------------------


class TriageAction(StrEnum):
    FALSE_POSITIVE = "false_positive"
    RISK_ACCEPTED = "risk_accepted"
    REOPEN = "reopen"


class TriageRefused(Exception):
    """The triage cannot be done as asked; the message says why."""


_KIND = {
    TriageAction.FALSE_POSITIVE: FindingEvent.Kind.FALSE_POSITIVE,
    TriageAction.RISK_ACCEPTED: FindingEvent.Kind.RISK_ACCEPTED,
    TriageAction.REOPEN: FindingEvent.Kind.REOPENED,
}
# Written in batches: one statement per batch, whatever the size of the selection.
_BATCH = 5_000


def finding_triage(
    *,
    finding_id: int,
    action: TriageAction,
    actor: User,
    reason: str,
    until: date | None = None,
) -> Finding:
    """Record a staff decision on one finding: who, when, why. Uploads never change it again
    (findings.merge writes no triage column)."""
    findings_triage(ids=[finding_id], action=action, actor=actor, reason=reason, until=until)
    return Finding.objects.get(pk=finding_id)


def findings_triage(
    *,
    ids: list[int],
    action: TriageAction,
    actor: User,
    reason: str,
    until: date | None = None,
    today: date | None = None,
) -> int:
    """Record one staff decision on many findings, atomically: each gets the decision and an
    event in its history (who, when, why, until when). A reopen changes only triaged
    findings. Returns how many findings changed.

    Raises TriageRefused (nothing changed) without a reason to accept a risk, with an expiry
    in the past or on another action, or for more than GERION_BULK_TRIAGE_MAX findings;
    Finding.DoesNotExist when none of `ids` exists."""
    reason = reason.strip()
    today = today or timezone.now().date()
    if action is TriageAction.RISK_ACCEPTED and not reason:
        raise TriageRefused("Say why the risk is accepted.")
    if until is not None and action is not TriageAction.RISK_ACCEPTED:
        raise TriageRefused("Only an accepted risk has an expiry date.")
    if until is not None and until < today:
        raise TriageRefused("The expiry date is in the past.")
    if len(ids) > settings.GERION_BULK_TRIAGE_MAX:
        raise TriageRefused(
            f"That is {len(ids):,} findings; one triage changes at most "
            f"{settings.GERION_BULK_TRIAGE_MAX:,}. Narrow the filter."
        )
    if len(ids) == 1 and not Finding.objects.filter(pk=ids[0]).exists():
        raise Finding.DoesNotExist
    with _triage_transaction(ids):
        changed = _set_triage(
            ids,
            kind=_KIND[action],
            actor=actor,
            reason=reason,
            until=until,
            only_triaged=action is TriageAction.REOPEN,
        )
    logger.info(
        "findings triaged",
        extra={"count": changed, "action": action.value, "actor": actor.get_username()},
    )
    return changed


def findings_reopen_expired(*, today: date | None = None) -> int:
    """Reopen every finding whose risk acceptance ended before `today` (UTC): what the
    staff pages do on read and `manage.py reopenexpiredrisks` does on a schedule. Returns
    how many reopened."""
    today = today or timezone.now().date()
    expired = Finding.objects.filter(
        risk_accepted_until__lt=today, risk_accepted=True, false_positive=False
    )
    # The partial index on risk_accepted_until answers this without reading findings.
    if not expired.exists():
        return 0
    ids = list(expired.values_list("id", flat=True))
    with _triage_transaction(ids):
        changed = _set_triage(
            ids,
            kind=FindingEvent.Kind.RISK_EXPIRED,
            actor=None,
            reason="",
            until=None,
            only_triaged=True,
            expired_before=today,
        )
    if changed:
        logger.info("expired risk acceptances reopened", extra={"count": changed})
    return changed


def _triage_transaction(ids: list[int]) -> Any:
    """A transaction that holds the upload locks of every stream the findings belong to,
    in one order: an upload of those streams waits (and is waited for) instead of
    interleaving its writes with the triage's, so neither can deadlock the other."""

    @contextmanager
    def locked() -> Iterator[None]:
        if connection.vendor != "postgresql":
            with _embedded_write_lock, transaction.atomic():
                yield
            return
        with transaction.atomic():
            streams: set[tuple[str, str, str]] = set()
            for start in range(0, len(ids), _BATCH):
                streams.update(
                    Finding.objects.filter(id__in=ids[start : start + _BATCH])
                    .values_list("repository_name", "branch_name", "scan_type")
                    .distinct()
                )
            with connection.cursor() as cursor:
                for lock_id in sorted(_stream_lock_id(*stream) for stream in streams):
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
            yield

    return locked()


def _set_triage(
    ids: list[int],
    *,
    kind: str,
    actor: User | None,
    reason: str,
    until: date | None,
    only_triaged: bool,
    expired_before: date | None = None,
) -> int:
    now = timezone.now()
    reopening = kind in (FindingEvent.Kind.REOPENED, FindingEvent.Kind.RISK_EXPIRED)
    delta = SummaryDelta()
    changed = 0
    for start in range(0, len(ids), _BATCH):
        batch: QuerySet[Finding] = Finding.objects.filter(id__in=ids[start : start + _BATCH])
        if only_triaged:
            batch = batch.exclude(false_positive=False, risk_accepted=False)
        if expired_before is not None:
            batch = batch.filter(risk_accepted_until__lt=expired_before, false_positive=False)
        targets = list(batch.values_list("id", flat=True))
        if not targets:
            continue
        chosen = Finding.objects.filter(id__in=targets)
        # Open before (active, untriaged) ones close; active triaged ones open on a reopen.
        opening = chosen.filter(active=True).exclude(false_positive=False, risk_accepted=False)
        closing = chosen.filter(active=True, false_positive=False, risk_accepted=False)
        for queryset, sign in ((opening, 1), (closing, -1)) if reopening else ((closing, -1),):
            for repository, severity, day, n in _open_groups(queryset):
                delta.open[(repository, severity, day)] += sign * n
        chosen.update(
            false_positive=kind == FindingEvent.Kind.FALSE_POSITIVE,
            risk_accepted=kind == FindingEvent.Kind.RISK_ACCEPTED,
            risk_accepted_until=until,
            triage_reason=reason,
            triaged_by=actor,
            triaged_at=now,
        )
        FindingEvent.objects.bulk_create(
            [
                FindingEvent(
                    finding_id=pk, kind=kind, at=now, actor=actor, reason=reason, until=until
                )
                for pk in targets
            ],
            batch_size=_BATCH,
        )
        changed += len(targets)
    with connection.cursor() as cursor:
        delta.apply(cursor, connection)
    return changed


def _open_groups(queryset: QuerySet[Finding]) -> list[tuple[str, str, date, int]]:
    """(repository, severity, first-seen day, count) of the findings."""
    groups = (
        queryset.annotate(day=TruncDate("first_seen_at", tzinfo=UTC))
        .values_list("repository_name", "severity", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [(repo, sev, as_date(day), n) for repo, sev, day, n in groups]


# --- assignee and comments -----------------------------------------------------------------


def finding_assign(*, finding_id: int, assignee: User | None, actor: User) -> Finding:
    """Put a staff member on a finding (None: nobody), recorded in its history."""
    if assignee is not None and not (assignee.is_active and assignee.is_staff):
        raise TriageRefused("Only active staff can be assigned.")
    with transaction.atomic():
        finding = Finding.objects.select_for_update().get(pk=finding_id)
        if finding.assignee_id == (assignee.pk if assignee else None):
            return finding
        finding.assignee = assignee
        finding.save(update_fields=["assignee"])
        FindingEvent.objects.create(
            finding=finding,
            kind=FindingEvent.Kind.ASSIGNED,
            at=timezone.now(),
            actor=actor,
            assignee=assignee,
        )
    return finding


COMMENT_MAX = 5000


def finding_comment_add(*, finding_id: int, author: User, body: str) -> FindingComment:
    body = body.strip()
    if not body:
        raise TriageRefused("Write something to comment.")
    if len(body) > COMMENT_MAX:
        raise TriageRefused(f"A comment holds at most {COMMENT_MAX:,} characters.")
    if not Finding.objects.filter(pk=finding_id).exists():
        raise Finding.DoesNotExist
    return FindingComment.objects.create(
        finding_id=finding_id, author=author, at=timezone.now(), body=body
    )


def findings_recount() -> tuple[int, int]:
    """Rebuild the dashboard's figures from the findings and their history (a safety net:
    every write keeps them in step)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Uploads and triage wait while the tables are rebuilt.
            with connection.cursor() as cursor:
                cursor.execute(
                    "LOCK TABLE findings_openfindingcount, findings_findingday IN EXCLUSIVE MODE"
                )
        return summary_recount(connection)
