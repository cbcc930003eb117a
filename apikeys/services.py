"""Writes and decisions about API keys: create, update, revoke, delete, authenticate.

Each change is audited in the same transaction as the change itself.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apikeys import errors
from apikeys.keys import ParsedKey, generate_key, hash_key, key_matches, parse_key
from apikeys.models import (
    CLIENT_ID_PATTERN,
    ApiKey,
    AuditEvent,
    RevocationIsFinal,
    validate_client_id,
)
from apikeys.ratelimit import TokenBucket, get_bucket
from apikeys.selectors import api_key_for_authentication, api_key_get
from apikeys.tokens import TokenRejected, mint_token, verify_token
from gerion.net import client_network
from gerion.problems import ProblemError

logger = logging.getLogger(__name__)

_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)


# --- Audit --------------------------------------------------------------------------------------


def _actor_fields(actor: User | None, actor_name: str) -> dict[str, Any]:
    if actor is not None and actor.is_authenticated:
        return {"actor": actor, "actor_name": actor.get_username()}
    return {"actor": None, "actor_name": actor_name or "system"}


def _audit_key(
    action: str,
    api_key: ApiKey,
    actor: User | None,
    actor_name: str,
    detail: dict[str, Any] | None = None,
    *,
    link: bool = True,
) -> None:
    AuditEvent.objects.create(
        action=action,
        subject=api_key.api_key_id,
        client_id=api_key.client_id,
        api_key=api_key if link else None,
        detail=detail or {},
        **_actor_fields(actor, actor_name),
    )


# --- Operators' actions --------------------------------------------------------------------------


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})


def api_key_create(
    *,
    name: str,
    client_id: str,
    permissions: list[str],
    expires_at: datetime | None = None,
    created_by: User | None = None,
    actor_name: str = "",
) -> tuple[ApiKey, str]:
    """Create a key; return it with its plaintext, which exists nowhere else from now on."""
    _check_expiry(expires_at)
    for _attempt in range(5):
        generated = generate_key()
        api_key = ApiKey(
            name=name,
            client_id=client_id,
            permissions=sorted(set(permissions)),
            expires_at=expires_at,
            lookup_id=generated.lookup_id,
            secret_hash=hash_key(generated.plaintext),
            created_by=created_by if created_by is not None and created_by.pk else None,
        )
        api_key.full_clean(exclude=["lookup_id"])
        try:
            with transaction.atomic():
                api_key.save()
                _audit_key(
                    AuditEvent.Action.KEY_CREATED,
                    api_key,
                    created_by,
                    actor_name,
                    {"permissions": api_key.permissions, "expires_at": _iso(expires_at)},
                )
        except IntegrityError as exc:
            # A concurrent create of the same client_id, or (36^12 lookup ids: astronomically
            # rare) a lookup id already taken, which the next draw replaces.
            if ApiKey.objects.filter(client_id=client_id).exists():
                raise ValidationError(
                    {"client_id": "An API key with this client_id exists."}
                ) from exc
            continue
        return api_key, generated.plaintext
    raise RuntimeError("could not allocate a unique lookup id")  # pragma: no cover


def api_key_update(
    *,
    api_key: ApiKey,
    changed_by: User | None,
    name: str,
    permissions: list[str],
    expires_at: datetime | None,
    actor_name: str = "",
) -> ApiKey:
    """Change what an operator may change on a live key: name, permissions, expiry."""
    changes: dict[str, Any] = {}
    permissions = sorted(set(permissions))
    if name != api_key.name:
        changes["name"] = name
    if permissions != sorted(api_key.permissions):
        changes["permissions"] = permissions
    if expires_at != api_key.expires_at:
        _check_expiry(expires_at)
        changes["expires_at"] = _iso(expires_at)
    if not changes:
        return api_key
    api_key.name, api_key.permissions, api_key.expires_at = name, permissions, expires_at
    api_key.full_clean(exclude=["lookup_id", "client_id"])
    with transaction.atomic():
        # Conditional on "not revoked" in the same statement: a revocation that commits
        # between our read and this write cannot be followed by an edit.
        written = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            name=name, permissions=permissions, expires_at=expires_at
        )
        if not written:
            raise RevocationIsFinal()
        _audit_key(AuditEvent.Action.KEY_UPDATED, api_key, changed_by, actor_name, changes)
    return api_key


def api_key_revoke(
    *, api_key: ApiKey, revoked_by: User | None = None, actor_name: str = ""
) -> bool:
    """Revoke now and for good. Returns False if it was already revoked (nothing changes).

    Every token minted from the key fails on its next use: token checks read the key's state
    from the database on every request, so there is nothing to invalidate or wait for.
    """
    now = timezone.now()
    by = revoked_by if revoked_by is not None and revoked_by.pk else None
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        )
        if changed:
            api_key.revoked_at, api_key.revoked_by = now, by
            _audit_key(AuditEvent.Action.KEY_REVOKED, api_key, revoked_by, actor_name)
    if changed:
        logger.info("api key revoked", extra={"api_key_id": api_key.api_key_id})
    return bool(changed)


def api_key_delete(
    *, api_key: ApiKey, deleted_by: User | None = None, actor_name: str = ""
) -> None:
    """Delete the key; its audit trail stays (by api_key_id and client_id)."""
    with transaction.atomic():
        _audit_key(
            AuditEvent.Action.KEY_DELETED,
            api_key,
            deleted_by,
            actor_name,
            {"name": api_key.name, "was": api_key.status().value},
            link=False,
        )
        api_key.delete()
    logger.info("api key deleted", extra={"api_key_id": api_key.api_key_id})


def api_key_touch(*, api_key: ApiKey, now: datetime) -> None:
    """Record use at most once per key per GERION_LAST_USED_RESOLUTION_SECONDS, so a busy key
    costs no write per request; the guard in the WHERE clause keeps concurrent workers from
    writing it twice."""
    resolution = timedelta(seconds=settings.GERION_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is not None and now - api_key.last_used_at < resolution:
        return
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - resolution)
    ).update(last_used_at=now)
    api_key.last_used_at = now


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- M2M authentication: API key -> JWT -----------------------------------------------------


def _unusable(api_key: ApiKey, now: datetime) -> tuple[str, str] | None:
    """(problem code, detail) if the key may not be used now, whatever proves who holds it."""
    status = api_key.status(now)
    if status == ApiKey.Status.REVOKED:
        return "api_key_revoked", "The API key has been revoked."
    if status == ApiKey.Status.EXPIRED:
        return "api_key_expired", "The API key has expired."
    return None


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    client_id: str
    api_key_id: str

    def as_response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "client_id": self.client_id,
            "api_key_id": self.api_key_id,
        }


def _client_id_from(body: bytes) -> str:
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise errors.invalid_body("The body must be a JSON object.") from exc
    if not isinstance(data, dict):
        raise errors.invalid_body('The body must be a JSON object: {"client_id": "..."}.')
    client_id = data.get("client_id")
    if client_id is None:
        message = "This field is required."
    elif not isinstance(client_id, str) or not _CLIENT_ID_RE.match(client_id):
        message = str(validate_client_id.message)
    else:
        return client_id
    raise errors.invalid_body(
        "The body is invalid; see `errors`.", errors=[{"path": "client_id", "message": message}]
    )


def m2m_authenticate(
    *,
    presented_key: str | None,
    body: bytes,
    client_ip: str,
    bucket: TokenBucket | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Trade an API key for a JWT (SPEC "POST /api/v1/auth/m2m/authenticate").

    Rate limiting follows the SPEC: a request is charged to its key's bucket only once the key
    has verified; every request without a usable key is charged to its client IP, so nobody
    can drain a key's bucket by sending a wrong secret with its public prefix.
    """
    bucket = bucket or get_bucket()
    now = now or timezone.now()

    def refuse_for_ip(problem: errors.CredentialRejected) -> ProblemError:
        decision = bucket.take(f"ip:{client_network(client_ip)}")
        if not decision.allowed:
            return errors.rate_limited(decision.retry_after_header, without_usable_key=True)
        return problem

    if presented_key is None:
        raise refuse_for_ip(errors.missing_api_key())
    parsed: ParsedKey | None = parse_key(presented_key)  # cheap: no hashing, no query
    if parsed is None:
        raise refuse_for_ip(errors.invalid_api_key("The API key is malformed."))
    api_key = api_key_for_authentication(lookup_id=parsed.lookup_id)
    if api_key is None:
        raise refuse_for_ip(errors.api_key_not_found())
    if not key_matches(parsed.plaintext, api_key.secret_hash):
        raise refuse_for_ip(errors.invalid_api_key())

    decision = bucket.take(f"key:{api_key.lookup_id}")
    if not decision.allowed:
        raise errors.rate_limited(decision.retry_after_header)

    client_id = _client_id_from(body)
    unusable = _unusable(api_key, now)
    if unusable:
        raise errors.key_unusable(*unusable)
    if client_id != api_key.client_id:
        raise errors.key_unusable(
            "client_id_mismatch", "The client_id does not match the one registered for this key."
        )

    api_key_touch(api_key=api_key, now=now)
    minted = mint_token(
        client_id=api_key.client_id,
        api_key_id=api_key.api_key_id,
        scopes=list(api_key.permissions),
        now=now.timestamp(),
    )
    _record_signing_key_activation(minted.kid)
    return IssuedToken(
        access_token=minted.token,
        expires_in=minted.expires_in,
        client_id=api_key.client_id,
        api_key_id=api_key.api_key_id,
    )


_activation_recorded: set[str] = set()


def _record_signing_key_activation(kid: str) -> None:
    """Audit the first token a signing key signs (once per kid, across all processes): the
    trail shows when a rotation took effect."""
    if kid in _activation_recorded:
        return
    try:
        with transaction.atomic():
            AuditEvent.objects.get_or_create(
                action=AuditEvent.Action.SIGNING_KEY_ACTIVATED,
                subject=kid,
                defaults={"actor_name": "system"},
            )
    except IntegrityError:
        pass  # another process recorded it first
    _activation_recorded.add(kid)


# --- Bearer JWTs on the findings API --------------------------------------------------------------


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """Who a verified token speaks for; DRF's request.user on the findings API."""

    api_key: ApiKey
    scopes: frozenset[str]
    claims: dict[str, Any] = field(repr=False)
    is_authenticated: ClassVar[bool] = True

    @property
    def client_id(self) -> str:
        return self.api_key.client_id

    @property
    def api_key_id(self) -> str:
        return self.api_key.api_key_id


def principal_from_token(*, token: str, now: datetime | None = None) -> ApiKeyPrincipal:
    """Verify the token, then the key's state now: a revoked, deleted or expired key fails at
    once, whatever the token's own expiry says."""
    try:
        claims = verify_token(token)
    except TokenRejected as exc:
        raise errors.token_rejected(exc.code, exc.detail) from exc
    api_key = api_key_get(api_key_id=claims["api_key_id"])
    if api_key is None:
        raise errors.token_rejected("invalid_token", "The API key behind this token was deleted.")
    if api_key.client_id != claims["client_id"]:
        raise errors.token_rejected("invalid_token", "The token does not match its API key.")
    now = now or timezone.now()
    unusable = _unusable(api_key, now)
    if unusable:
        raise errors.token_rejected(*unusable)
    api_key_touch(api_key=api_key, now=now)
    # A permission removed from the key since the token was minted is removed at once too.
    scopes = frozenset(claims["scope"].split()) & frozenset(api_key.permissions)
    return ApiKeyPrincipal(api_key=api_key, scopes=scopes, claims=claims)
