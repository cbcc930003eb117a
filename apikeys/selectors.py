"""Reads of API keys and their audit trail."""

from __future__ import annotations

from apikeys.keys import lookup_id_from_api_key_id
from apikeys.models import ApiKey

# Authentication reads only what it decides on; the secret hash is compared in Python.
_AUTH_FIELDS = (
    "id",
    "client_id",
    "lookup_id",
    "secret_hash",
    "permissions",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


def api_key_for_authentication(*, lookup_id: str) -> ApiKey | None:
    return ApiKey.objects.only(*_AUTH_FIELDS).filter(lookup_id=lookup_id).first()


def api_key_get(*, api_key_id: str) -> ApiKey | None:
    """The key named by its public id (`key-<lookup>`), or None."""
    lookup_id = lookup_id_from_api_key_id(api_key_id)
    if lookup_id is None:
        return None
    return ApiKey.objects.filter(lookup_id=lookup_id).first()
