"""Test data. API keys are made through the service, which is the only way to learn a key's
plaintext; everything else through factory_boy."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import factory
from django.contrib.auth.models import User

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from findings.services import findings_ingest

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class StaffFactory(UserFactory):
    is_staff = True


class SuperuserFactory(StaffFactory):
    is_superuser = True


_counter = iter(range(1, 1_000_000))


def make_api_key(
    *,
    client_id: str | None = None,
    permissions: tuple[str, ...] = ("write:findings", "read:findings"),
    expires_at: datetime | None = None,
    name: str = "CI runner",
    repositories: tuple[str, ...] = ("*",),
) -> tuple[ApiKey, str]:
    """A fresh key and its plaintext."""
    return api_key_create(
        name=name,
        client_id=client_id or f"runner-{next(_counter)}",
        permissions=list(permissions),
        expires_at=expires_at,
        repository_patterns=repositories,
        actor_name="tests",
    )


def store_scan(
    api_key: ApiKey,
    client_id: str,
    findings: list[dict[str, Any]],
    *,
    repository: str = "acme/app",
    scan_type: str = "SAST",
) -> None:
    """One upload stored through the ingest service, for tests that need findings to look at
    rather than to upload."""
    body = {
        "metadata": {
            "repository_name": repository,
            "branch_name": "main",
            "build_id": "1",
            "code_path": ".",
            "scan_type": scan_type,
        },
        "findings": findings,
    }
    findings_ingest(
        body=json.dumps(body).encode(),
        api_key=api_key,
        client_id=client_id,
        repository_patterns=api_key.repository_patterns,
    )
