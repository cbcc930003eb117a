"""Brute-force protection for the sign-in forms (staff pages and admin): a fixed window of
failed attempts per client address (django-ratelimit, shared through the cache)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

from gerion.failures import Window, failure_window
from gerion.net import client_ip

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]


def _window(request: HttpRequest, *, count_this_one: bool) -> Window | None:
    window = failure_window(
        request,
        group="gerion.login-failures",
        rate=settings.GERION_LOGIN_FAILURE_RATE,
        count_this_one=count_this_one,
    )
    if window is None:
        logger.warning("sign-in limiter: cache unreachable; not limiting")
    return window


def limit_failed_logins(view: View) -> View:
    """Counts failed sign-ins per client address; once over the limit, refuses every sign-in
    from it (a right password too, or guessing would go on) until the window ends."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        window = _window(request, count_this_one=False)
        if window is not None and window.full:
            logger.warning(
                "sign-in refused: too many failures", extra={"remote_ip": client_ip(request)}
            )
            return HttpResponse(
                render_to_string("429_login.html", {"retry_after": window.retry_after}),
                status=429,
                headers={"Retry-After": window.retry_after},
            )
        response = view(request, *args, **kwargs)
        if not request.user.is_authenticated:
            _window(request, count_this_one=True)
            logger.warning("sign-in failed", extra={"remote_ip": client_ip(request)})
        return response

    return wrapper
