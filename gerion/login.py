"""Brute-force protection for the sign-in forms (staff pages and admin): a fixed window of
failed attempts per client address (django-ratelimit, shared through the cache)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string
from django_ratelimit.core import get_usage

from gerion.net import client_ip, client_network

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]
_GROUP = "gerion.login-failures"


def _usage(request: HttpRequest, *, increment: bool) -> dict[str, Any] | None:
    try:
        usage: dict[str, Any] | None = get_usage(
            request,
            group=_GROUP,
            key=lambda _group, req: client_network(client_ip(req)),
            rate=settings.GERION_LOGIN_FAILURE_RATE,
            increment=increment,
        )
    except redis.RedisError:
        logger.warning("sign-in limiter: cache unreachable; not limiting")
        return None
    return usage


def limit_failed_logins(view: View) -> View:
    """Counts failed sign-ins per client address; once over the limit, refuses every sign-in
    from it (a right password too, or guessing would go on) until the window ends."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        usage = _usage(request, increment=False)
        if usage is not None and usage["count"] >= usage["limit"]:
            logger.warning(
                "sign-in refused: too many failures", extra={"remote_ip": client_ip(request)}
            )
            retry_after = str(max(1, int(usage["time_left"])))
            return HttpResponse(
                render_to_string("429_login.html", {"retry_after": retry_after}),
                status=429,
                headers={"Retry-After": retry_after},
            )
        response = view(request, *args, **kwargs)
        if not request.user.is_authenticated:
            _usage(request, increment=True)
            logger.warning("sign-in failed", extra={"remote_ip": client_ip(request)})
        return response

    return wrapper
