"""Deploy checks of the project's own settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def check_secret_key_configured(**kwargs: Any) -> list[CheckMessage]:
    if settings.SECRET_KEY_FROM_ENV:
        return []
    return [
        Error(
            "DJANGO_SECRET_KEY is not set: a key generated on this machine is in use.",
            hint="Set DJANGO_SECRET_KEY to 50+ random characters, the same on every machine.",
            id="gerion.E001",
        )
    ]
