"""System checks: refuse to start with a signing key that cannot be used, and (with --deploy)
with the generated development key standing in for the production one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from apikeys.signing_keys import SigningKeyError, load_signing_key


@register(Tags.security)
def check_signing_keys(**kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    configured = (
        [("GERION_JWT_SIGNING_KEY", settings.GERION_JWT_SIGNING_KEY)]
        if (settings.GERION_JWT_SIGNING_KEY)
        else []
    )
    configured += [("GERION_JWT_RETIRED_KEYS", path) for path in settings.GERION_JWT_RETIRED_KEYS]
    for setting, path in configured:
        try:
            load_signing_key(path)
        except SigningKeyError as exc:
            problems.append(
                Error(
                    f"{setting}: {exc}",
                    hint="Create one with `manage.py generatesigningkey PATH` (RSA, 3072 bits).",
                    id="apikeys.E001",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def check_production_signing_key(**kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if not settings.GERION_JWT_SIGNING_KEY:
        problems.append(
            Error(
                "GERION_JWT_SIGNING_KEY is not set: tokens would be signed with a development "
                "key generated on this machine, which other machines do not share.",
                hint="Generate a key once (`manage.py generatesigningkey PATH`), give every "
                "machine the same file and point GERION_JWT_SIGNING_KEY at it.",
                id="apikeys.E010",
            )
        )
    return problems
