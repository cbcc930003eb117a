"""Writes of findings: ingesting an upload (and, for staff, triage)."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.repositories import allows as repository_allowed
from findings.merge import (
    MergeCounts,
    RepeatedFindingId,
    UploadContext,
    merge_upload,
    store_rules,
)
from findings.models import Finding, FindingEvent, Stream, Upload
from findings.normalize import ParsedUpload
from findings.readers import read_upload

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
        try:
            # Each finding is stored as it is read (the database works while the next is
            # read), in a savepoint: a finding_id sent twice (the last one wins) starts over.
            with transaction.atomic():
                counts = merge_upload(connection, context, parsed.rows)
                parsed.problems.raise_if_any()
        except RepeatedFindingId:
            parsed = read()
            rows = parsed.read_all()
            parsed.problems.raise_if_any()
            counts = merge_upload(connection, context, iter(rows))
        if parsed.rules:
            store_rules(connection, parsed.rules)
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


def finding_triage(*, finding_id: int, action: TriageAction, actor: User, reason: str) -> Finding:
    """Record a staff decision on a finding: who, when, why. Uploads never change it again
    (findings.merge writes no triage column)."""
    reason = reason.strip()
    if action is TriageAction.RISK_ACCEPTED and not reason:
        raise TriageRefused("Say why the risk is accepted.")
    with transaction.atomic():
        finding = Finding.objects.select_for_update().get(pk=finding_id)
        finding.false_positive = action is TriageAction.FALSE_POSITIVE
        finding.risk_accepted = action is TriageAction.RISK_ACCEPTED
        finding.triage_reason = reason
        finding.triaged_by = actor
        finding.triaged_at = timezone.now()
        finding.save(
            update_fields=[
                "false_positive",
                "risk_accepted",
                "triage_reason",
                "triaged_by",
                "triaged_at",
            ]
        )
        kind = {
            TriageAction.FALSE_POSITIVE: FindingEvent.Kind.FALSE_POSITIVE,
            TriageAction.RISK_ACCEPTED: FindingEvent.Kind.RISK_ACCEPTED,
            TriageAction.REOPEN: FindingEvent.Kind.REOPENED,
        }[action]
        FindingEvent.objects.create(
            finding=finding, kind=kind, at=finding.triaged_at, actor=actor, reason=reason
        )
    logger.info(
        "finding triaged",
        extra={"finding": finding.pk, "action": action.value, "actor": actor.get_username()},
    )
    return finding
