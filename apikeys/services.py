"""Writes and decisions about API keys: create, update, revoke, delete, authenticate.

Each change is audited in the same transaction as the change itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
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
from apikeys.keys import (
    ParsedKey,
    generate_key,
    hash_key,
    key_matches,
    lookup_id_from_api_key_id,
    parse_key,
)
from apikeys.models import (
    CLIENT_ID_PATTERN,
    ApiKey,
    AuditEvent,
    RevocationIsFinal,
    validate_client_id,
)
from apikeys.ratelimit import TokenBucket, get_bucket
from apikeys.repositories import DEFAULT_PATTERNS, normalize_patterns
from apikeys.selectors import api_key_state
from apikeys.state_cache import get_key_state_cache, state_changed
from apikeys.tokens import (
    MintedToken,
    TokenRejected,
    mint_token,
    unverified_api_key_id,
    verify_token,
)
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


def _valid_patterns(patterns: Sequence[str]) -> list[str]:
    try:
        return normalize_patterns(patterns)
    except ValidationError as exc:
        raise ValidationError({"repository_patterns": exc.messages}) from exc


def _insert_key(
    *,
    name: str,
    client_id: str,
    permissions: Sequence[str],
    repository_patterns: Sequence[str],
    expires_at: datetime | None,
    created_by: User | None,
    actor_name: str,
    rolled_from: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Insert a fresh key and audit its creation, in the caller's transaction."""
    for _attempt in range(5):
        generated = generate_key()
        api_key = ApiKey(
            name=name,
            client_id=client_id,
            permissions=sorted(set(permissions)),
            repository_patterns=list(repository_patterns),
            expires_at=expires_at,
            lookup_id=generated.lookup_id,
            secret_hash=hash_key(generated.plaintext),
            created_by=created_by if created_by is not None and created_by.pk else None,
            rolled_from=rolled_from,
        )
        # Constraints are the database's to enforce (a concurrent create races any check).
        api_key.full_clean(exclude=["lookup_id"], validate_constraints=False)
        detail: dict[str, Any] = {
            "permissions": api_key.permissions,
            "repository_patterns": api_key.repository_patterns,
            "expires_at": _iso(expires_at),
        }
        if rolled_from is not None:
            detail["rolled_from"] = rolled_from.api_key_id
        try:
            with transaction.atomic():
                api_key.save()
                _audit_key(AuditEvent.Action.KEY_CREATED, api_key, created_by, actor_name, detail)
        except IntegrityError as exc:
            # A concurrent create of the same client_id, or (36^12 lookup ids: astronomically
            # rare) a lookup id already taken, which the next draw replaces.
            if ApiKey.objects.filter(client_id=client_id, retires_at__isnull=True).exists():
                raise ValidationError(
                    {"client_id": "An API key with this client_id exists."}
                ) from exc
            continue
        return api_key, generated.plaintext
    raise RuntimeError("could not allocate a unique lookup id")  # pragma: no cover


def api_key_create(
    *,
    name: str,
    client_id: str,
    permissions: list[str],
    expires_at: datetime | None = None,
    repository_patterns: Sequence[str] = DEFAULT_PATTERNS,
    created_by: User | None = None,
    actor_name: str = "",
) -> tuple[ApiKey, str]:
    """Create a key; return it with its plaintext, which exists nowhere else from now on."""
    _check_expiry(expires_at)
    with transaction.atomic():
        return _insert_key(
            name=name,
            client_id=client_id,
            permissions=permissions,
            repository_patterns=_valid_patterns(repository_patterns),
            expires_at=expires_at,
            created_by=created_by,
            actor_name=actor_name,
        )


class KeyIsRetiring(ValidationError):
    """A rolled key stays as it was until it retires; its successor is the one to change."""

    def __init__(self) -> None:
        super().__init__(
            "This API key has been rolled: it stays as it is until it retires. Change its "
            "successor instead.",
            "retiring",
        )


def api_key_update(
    *,
    api_key: ApiKey,
    changed_by: User | None,
    name: str,
    permissions: list[str],
    expires_at: datetime | None,
    repository_patterns: Sequence[str] | None = None,
    actor_name: str = "",
) -> ApiKey:
    """Change what an operator may change on a live key: name, permissions, expiry,
    repositories. A narrowing reaches the key's outstanding tokens at their next request."""
    changes: dict[str, Any] = {}
    permissions = sorted(set(permissions))
    patterns = (
        list(api_key.repository_patterns)
        if repository_patterns is None
        else _valid_patterns(repository_patterns)
    )
    if name != api_key.name:
        changes["name"] = name
    if permissions != sorted(api_key.permissions):
        changes["permissions"] = permissions
    if patterns != list(api_key.repository_patterns):
        changes["repository_patterns"] = patterns
        changes["repository_patterns_before"] = list(api_key.repository_patterns)
    if expires_at != api_key.expires_at:
        _check_expiry(expires_at)
        changes["expires_at"] = _iso(expires_at)
    if not changes:
        return api_key
    api_key.name, api_key.permissions, api_key.expires_at = name, permissions, expires_at
    api_key.repository_patterns = patterns
    api_key.full_clean(exclude=["lookup_id", "client_id"], validate_constraints=False)
    with transaction.atomic():
        # Conditional on "not revoked, not rolled" in the same statement: a revocation or a
        # roll that commits between our read and this write cannot be followed by an edit.
        written = ApiKey.objects.filter(
            pk=api_key.pk, revoked_at__isnull=True, retires_at__isnull=True
        ).update(
            name=name,
            permissions=permissions,
            expires_at=expires_at,
            repository_patterns=patterns,
        )
        if not written:
            stored = ApiKey.objects.filter(pk=api_key.pk).values_list("revoked_at", flat=True)
            if not stored or stored[0] is not None:
                raise RevocationIsFinal()
            raise KeyIsRetiring()
        state_changed(api_key.lookup_id)
        _audit_key(AuditEvent.Action.KEY_UPDATED, api_key, changed_by, actor_name, changes)
        _predecessors_follow(api_key, changed_by, actor_name, changes)
    return api_key


def _predecessors_follow(
    api_key: ApiKey, changed_by: User | None, actor_name: str, changes: dict[str, Any]
) -> None:
    """Keys this one was rolled from, still in their grace period, stand in for it: what it
    may do and touch, and its expiry, apply to them as well (a key narrowed after a roll is
    narrowed for the pipeline still on the old key, and its outstanding tokens, at once)."""
    followed = {
        field: getattr(api_key, field)
        for field in ("permissions", "repository_patterns", "expires_at")
        if field in changes
    }
    if not followed:
        return
    now = timezone.now()
    predecessor_id = api_key.rolled_from_id
    seen: set[int] = set()
    while predecessor_id is not None and predecessor_id not in seen:
        seen.add(predecessor_id)
        predecessor = ApiKey.objects.filter(
            pk=predecessor_id, revoked_at__isnull=True, retires_at__gt=now
        ).first()
        if predecessor is None:
            return
        ApiKey.objects.filter(pk=predecessor.pk).update(**followed)
        state_changed(predecessor.lookup_id)
        detail = {**changes, "followed_successor": api_key.api_key_id}
        _audit_key(AuditEvent.Action.KEY_UPDATED, predecessor, changed_by, actor_name, detail)
        predecessor_id = predecessor.rolled_from_id


MAX_GRACE = timedelta(days=30)
DEFAULT_GRACE = timedelta(hours=24)


def api_key_roll(
    *,
    api_key: ApiKey,
    grace: timedelta = DEFAULT_GRACE,
    rolled_by: User | None = None,
    actor_name: str = "",
) -> tuple[ApiKey, str]:
    """Issue the key's successor (same name, client_id, permissions, repositories and expiry)
    and retire the key at the end of `grace` (0: at once); return the successor and its
    plaintext. Until then both work, so a CI secret is replaced without a failed build.

    Refused (ValidationError) for a key that is revoked, expired or already rolled: roll its
    successor instead. The retired key behaves as expired, and so do the tokens it minted."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ValidationError(
            {"grace": f"The grace period must be between 0 and {MAX_GRACE.days * 24} hours."}
        )
    with transaction.atomic():
        # Locked: two operators rolling the same key at once make one successor, not two.
        old = ApiKey.objects.select_for_update().filter(pk=api_key.pk).first()
        if old is None:
            raise ValidationError("This API key no longer exists.")
        now = timezone.now()
        if old.retires_at is not None:
            successor = old.successors.order_by("-created_at").first()
            raise ValidationError(
                "This API key has already been rolled"
                + (f" (its successor is {successor.api_key_id})" if successor else "")
                + "; roll the successor instead."
            )
        unusable = _unusable(old, now)
        if unusable:
            raise ValidationError(f"{unusable[1]} Only a usable key can be rolled.")
        retires_at = now + grace
        # Retire first: the successor takes over the client_id, unique among keys that are
        # not retiring.
        ApiKey.objects.filter(pk=old.pk).update(retires_at=retires_at)
        state_changed(old.lookup_id)
        old.retires_at = retires_at
        successor, plaintext = _insert_key(
            name=old.name,
            client_id=old.client_id,
            permissions=old.permissions,
            repository_patterns=old.repository_patterns,
            expires_at=old.expires_at,
            created_by=rolled_by,
            actor_name=actor_name,
            rolled_from=old,
        )
        _audit_key(
            AuditEvent.Action.KEY_ROLLED,
            old,
            rolled_by,
            actor_name,
            {
                "successor": successor.api_key_id,
                "grace_seconds": int(grace.total_seconds()),
                "retires_at": _iso(retires_at),
            },
        )
    api_key.retires_at = retires_at
    logger.info(
        "api key rolled",
        extra={"api_key_id": old.api_key_id, "successor": successor.api_key_id},
    )
    return successor, plaintext


def api_key_revoke(
    *, api_key: ApiKey, revoked_by: User | None = None, actor_name: str = ""
) -> bool:
    """Revoke now and for good. Returns False if it was already revoked (nothing changes).

    The key is refused on its next authentication and every token minted from it on its next
    use, in every worker: the state workers keep of it stops matching (apikeys.state_cache).
    """
    now = timezone.now()
    by = revoked_by if revoked_by is not None and revoked_by.pk else None
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        )
        if changed:
            state_changed(api_key.lookup_id)
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
        state_changed(api_key.lookup_id)
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
        if api_key.retires_at is not None and api_key.retires_at <= now:
            return "api_key_expired", "The API key was rolled and has retired; use its successor."
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


def _token_for(api_key: ApiKey, now: datetime) -> MintedToken:
    return mint_token(
        client_id=api_key.client_id,
        api_key_id=api_key.api_key_id,
        scopes=list(api_key.permissions),
        now=now.timestamp(),
    )


def _refusal(api_key: ApiKey, client_id: str, now: datetime) -> ProblemError | None:
    """Why this key may not have a token for `client_id` now; None if it may."""
    unusable = _unusable(api_key, now)
    if unusable:
        return errors.key_unusable(*unusable)
    if client_id != api_key.client_id:
        return errors.key_unusable(
            "client_id_mismatch", "The client_id does not match the one registered for this key."
        )
    return None


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
    lookup_id = parsed.lookup_id
    # The key's state as this worker keeps it (apikeys.state_cache), else from the database,
    # tagged with the epoch it is read under. Either way its secret hash is right: it never
    # changes for a key.
    states = get_key_state_cache()
    kept = states.kept(lookup_id)
    if kept is None:
        epoch = states.current_epoch(lookup_id)
        api_key = api_key_state(lookup_id=lookup_id)
    else:
        epoch, api_key = kept.epoch, kept.api_key
    if api_key is None:
        raise refuse_for_ip(errors.api_key_not_found())
    if not key_matches(parsed.plaintext, api_key.secret_hash):
        raise refuse_for_ip(errors.invalid_api_key())

    # The bucket's take reads the key's epoch too (the state used from here on is current).
    # While Redis answers, the token is signed as if it will say yes: the signature costs
    # about what the round trip does, so the request costs about the larger of the two. The
    # token leaves only if the answer allows it and confirms the state it was made from.
    finish = bucket.start_take(f"key:{lookup_id}", states.watch(lookup_id))
    try:
        # A bad body is answered only after the bucket's answer: a 429 comes first.
        body_problem: ProblemError | None = None
        try:
            client_id = _client_id_from(body)
        except ProblemError as exc:
            client_id, body_problem = "", exc
        usable = body_problem is None and _refusal(api_key, client_id, now) is None
        early = _token_for(api_key, now) if usable else None
    finally:
        decision = finish()
    if decision.watched is None or decision.watched != epoch:
        if kept is not None or decision.watched is not None:
            # Changed since it was read, or unconfirmed (Redis unreachable): read it again.
            early = None
            api_key = api_key_state(lookup_id=lookup_id)
            if api_key is None:
                states.forget(lookup_id)
                raise errors.api_key_not_found()
        states.keep(lookup_id, api_key, decision.watched)
    elif kept is None:
        states.keep(lookup_id, api_key, epoch)  # read from the database, confirmed
    if not decision.allowed:
        raise errors.rate_limited(decision.retry_after_header)

    if body_problem is not None:
        raise body_problem
    refusal = _refusal(api_key, client_id, now)  # again: the state may have been read anew
    if refusal is not None:
        raise refusal

    api_key_touch(api_key=api_key, now=now)
    minted = early or _token_for(api_key, now)
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

    @property
    def repository_patterns(self) -> tuple[str, ...]:
        """The repositories the key may touch now (read with its state on this request)."""
        return tuple(self.api_key.repository_patterns)


def principal_from_token(*, token: str, now: datetime | None = None) -> ApiKeyPrincipal:
    """Verify the token, then the key's state now: a revoked, deleted, expired or retired key
    fails at once, whatever the token's own expiry says, and the key's current permissions
    and repositories apply, not those it had when the token was minted.

    The state is the one this worker keeps (apikeys.state_cache) if the key's epoch in Redis
    confirms it, else read from the database; the epoch is read while the token is verified."""
    states = get_key_state_cache()
    hinted = unverified_api_key_id(token)
    hinted_lookup = lookup_id_from_api_key_id(hinted) if hinted is not None else None
    finish = states.start_epoch_read(hinted_lookup) if hinted_lookup is not None else None
    try:
        claims = verify_token(token)
    except TokenRejected as exc:
        raise errors.token_rejected(exc.code, exc.detail) from exc
    finally:
        epoch = finish() if finish is not None else None
    lookup_id = lookup_id_from_api_key_id(claims["api_key_id"])
    if lookup_id != hinted_lookup:
        epoch = None  # cannot happen for a token that verified: the hint is its own claim
    kept = states.kept(lookup_id) if lookup_id is not None else None
    if kept is not None and epoch is not None and kept.epoch == epoch:
        api_key: ApiKey | None = kept.api_key
    else:
        # Read after the epoch was: a change committed after this read renews it.
        api_key = api_key_state(lookup_id=lookup_id) if lookup_id is not None else None
        if api_key is not None and lookup_id is not None:
            states.keep(lookup_id, api_key, epoch)
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
