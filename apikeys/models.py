"""API keys and their audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from apikeys.keys import api_key_id_for
from apikeys.repositories import DEFAULT_PATTERNS, normalize_patterns


class Permission(models.TextChoices):
    WRITE_FINDINGS = "write:findings", "write:findings (upload findings)"
    READ_FINDINGS = "read:findings", "read:findings (list findings)"


CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{3,50}\Z"
validate_client_id = RegexValidator(
    CLIENT_ID_PATTERN, "3 to 50 characters: letters, digits, '.', '_' or '-'.", "invalid_client_id"
)


class RevocationIsFinal(ValidationError):
    """Raised on any attempt to change a revoked key: revocation cannot be undone."""

    def __init__(self) -> None:
        super().__init__("This API key is revoked; revocation cannot be undone.", "revoked")


class RollIsFinal(ValidationError):
    """Raised on any attempt to bring a rolled key back: its successor has taken over."""

    def __init__(self) -> None:
        super().__init__("This API key has been rolled; that cannot be undone.", "rolled")


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def update(self, **kwargs: Any) -> int:
        # Bulk updates bypass save(); un-revoking through them is refused here as well, and by
        # a database trigger below that (migration 0002). So is un-rolling (the partial unique
        # index on client_id refuses it too while the successor exists).
        if "revoked_at" in kwargs and kwargs["revoked_at"] is None:
            raise RevocationIsFinal()
        if "retires_at" in kwargs and kwargs["retires_at"] is None:
            raise RollIsFinal()
        return super().update(**kwargs)

    def usable(self, now: datetime | None = None) -> ApiKeyQuerySet:
        now = now or timezone.now()
        return self.filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now),
            models.Q(retires_at__isnull=True) | models.Q(retires_at__gt=now),
            revoked_at__isnull=True,
        )


def default_repository_patterns() -> list[str]:
    return list(DEFAULT_PATTERNS)


class ApiKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        RETIRING = "retiring", "Retiring (rolled)"
        EXPIRED = "expired"
        REVOKED = "revoked"

    name = models.CharField(max_length=100, help_text="What the key is for, e.g. 'Jenkins main'.")
    # Unique among keys that were not rolled (Meta.constraints): a rolled key shares it with
    # its successor during the grace period, and keeps it, harmlessly, once retired.
    client_id = models.CharField(
        max_length=50,
        validators=[validate_client_id],
        help_text="The client_id the CI sends when it authenticates. Cannot change later.",
    )
    lookup_id = models.CharField(max_length=12, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    permissions = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Optional. After this moment the key and its tokens fail."
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Glob patterns (apikeys.repositories); read with the key's state on every request, so a
    # narrowing reaches outstanding tokens at their next use.
    repository_patterns = models.JSONField(default=default_repository_patterns)
    # Rolling: the key this one replaced, and (on the replaced key) the end of its grace
    # period, after which it behaves as expired. Set once, never cleared.
    rolled_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="successors",
        editable=False,
    )
    retires_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        permissions = [
            ("revoke_apikey", "Can revoke API keys"),
            ("roll_apikey", "Can roll API keys"),
        ]
        indexes = [models.Index(fields=["revoked_at", "expires_at"], name="apikey_state_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["client_id"],
                condition=models.Q(retires_at__isnull=True),
                name="apikey_client_id_unique_unless_rolled",
                violation_error_message="An API key with this client_id exists.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.api_key_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("revoked_at", "retires_at")
            if stored and stored[0][0] is not None:
                raise RevocationIsFinal()
            if stored and stored[0][1] is not None and self.retires_at is None:
                raise RollIsFinal()
        super().save(*args, **kwargs)

    @property
    def api_key_id(self) -> str:
        return api_key_id_for(self.lookup_id)

    def status(self, now: datetime | None = None) -> ApiKey.Status:
        if self.revoked_at is not None:
            return ApiKey.Status.REVOKED
        now = now or timezone.now()
        if self.expires_at is not None and self.expires_at <= now:
            return ApiKey.Status.EXPIRED
        if self.retires_at is not None:
            return ApiKey.Status.EXPIRED if self.retires_at <= now else ApiKey.Status.RETIRING
        return ApiKey.Status.ACTIVE

    def clean(self) -> None:
        allowed = set(Permission.values)
        if not isinstance(self.permissions, list) or not self.permissions:
            raise ValidationError({"permissions": "Choose at least one permission."})
        unknown = [p for p in self.permissions if p not in allowed]
        if unknown:
            raise ValidationError({"permissions": f"Unknown permission(s): {', '.join(unknown)}."})
        if not isinstance(self.repository_patterns, list):
            raise ValidationError({"repository_patterns": "A list of patterns."})
        try:
            self.repository_patterns = normalize_patterns(self.repository_patterns)
        except ValidationError as exc:
            raise ValidationError({"repository_patterns": exc.messages}) from exc


class AuditEvent(models.Model):
    """One row per security-relevant change. Rows are written once and never changed."""

    class Action(models.TextChoices):
        KEY_CREATED = "api_key.created", "API key created"
        KEY_UPDATED = "api_key.updated", "API key changed"
        KEY_REVOKED = "api_key.revoked", "API key revoked"
        KEY_DELETED = "api_key.deleted", "API key deleted"
        KEY_ROLLED = "api_key.rolled", "API key rolled"
        SIGNING_KEY_GENERATED = "signing_key.generated", "Signing key generated"
        SIGNING_KEY_ACTIVATED = "signing_key.activated", "Signing key first used"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=40, choices=Action.choices)
    # The api_key_id or the signing key's kid: kept as text so it outlives a deleted key.
    subject = models.CharField(max_length=64, db_index=True)
    client_id = models.CharField(max_length=50, blank=True)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Username, or the command that acted.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            # Every process records "this kid became active" at most once, race or not.
            models.UniqueConstraint(
                fields=["action", "subject"],
                condition=models.Q(action="signing_key.activated"),
                name="audit_signing_key_activated_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.subject} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)
