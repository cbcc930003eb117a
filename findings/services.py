"""Writes of findings: ingesting an upload (and, for staff, triage)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.repositories import allows as repository_allowed
from findings.merge import MergeCounts, UploadContext, merge_upload
from findings.models import Finding, FindingEvent, Stream, Upload
from findings.normalize import ParsedUpload, parse_upload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    upload_id: int
    received: int
    duplicates: int
    counts: MergeCounts

    def as_response(self) -> dict[str, Any]:
        return {
            "upload_id": self.upload_id,
            "received": self.received,
            "duplicates": self.duplicates,
            **asdict(self.counts),
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
    *, body: bytes, api_key: ApiKey, client_id: str, repository_patterns: Sequence[str]
) -> IngestResult:
    """Store one upload atomically (SPEC "POST /api/v1/findings"): all of it or nothing.

    Raises findings.normalize.UploadInvalid (nothing stored) for an invalid body, and
    RepositoryNotAllowed (nothing stored) for a repository the key's `repository_patterns`
    do not allow: an empty scan too, which would otherwise mitigate that stream's findings.
    """
    parsed = parse_upload(body)
    if not repository_allowed(repository_patterns, parsed.repository_name):
        raise RepositoryNotAllowed(parsed.repository_name)
    if connection.vendor == "postgresql":
        return _store(parsed, api_key, client_id)
    with _embedded_write_lock:
        return _store(parsed, api_key, client_id)


def _store(parsed: ParsedUpload, api_key: ApiKey, client_id: str) -> IngestResult:
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
        counts = merge_upload(
            connection,
            UploadContext(
                upload_id=upload.pk,
                repository_name=parsed.repository_name,
                branch_name=parsed.branch_name,
                scan_type=parsed.scan_type,
                build_id=parsed.build_id,
                now=now,
                previous_upload_id=previous.head_upload_id if previous else None,
                previous_at=previous.head_at if previous else None,
                previous_build_id=previous.head_build_id if previous else None,
            ),
            parsed.rows,
        )
        Stream.objects.update_or_create(
            **stream,
            defaults={"head_upload": upload, "head_at": now, "head_build_id": parsed.build_id},
        )
        Upload.objects.filter(pk=upload.pk).update(**asdict(counts))
    result = IngestResult(
        upload_id=upload.pk, received=parsed.received, duplicates=parsed.duplicates, counts=counts
    )
    logger.info(
        "findings upload stored",
        extra={
            "upload_id": upload.pk,
            "repository_name": parsed.repository_name,
            "branch_name": parsed.branch_name,
            "scan_type": parsed.scan_type,
            "counts": result.as_response(),
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
