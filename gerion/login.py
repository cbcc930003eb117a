"""Brute-force protection for every form that checks a password: the staff sign-in, the admin
sign-in and the admin's password change.

Failures are counted from the authentication result (Django's `user_login_failed` signal), not
from the session, so a signed-in user guessing someone else's password counts like anyone.
Fixed windows (django-ratelimit on the shared cache) that end by themselves, no lockout for
good:
- per client address (GERION_LOGIN_FAILURE_RATE);
- per username, from wherever the guesses come (GERION_LOGIN_USERNAME_FAILURE_RATE), so a
  guess spread over many addresses is limited too;
- per browser that has signed in as that username before (a signed cookie, OWASP's "device
  cookie"): such a browser is judged by its own window instead of the two above, so nobody can
  keep the owner out by failing on purpose.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UsernameField
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core import signing
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string
from django.utils.crypto import salted_hmac

from gerion.failures import Window, failure_window
from gerion.net import client_ip

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]

SIGNIN_COOKIE = "gerion_signin"
SIGNIN_COOKIE_MAX_AGE = 30 * 24 * 3600
_SIGNIN_COOKIE_SALT = "gerion.login.signin-cookie"
# Set on the request by the user_logged_in receiver; read by the view wrapper.
_SIGNED_IN_AS = "_gerion_signed_in_as"


def _username_digest(username: str) -> str:
    """Names the account in cache keys and in the sign-in cookie without spelling it out."""
    return salted_hmac("gerion.login.username", username).hexdigest()[:32]


def _trusted_browser(request: HttpRequest, username: str) -> str | None:
    """The browser id of a valid sign-in cookie for this username, or None."""
    value = request.COOKIES.get(SIGNIN_COOKIE)
    if not value:
        return None
    try:
        data = signing.loads(value, salt=_SIGNIN_COOKIE_SALT, max_age=SIGNIN_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("u") != _username_digest(username):
        return None
    browser = data.get("b")
    return browser if isinstance(browser, str) else None


def _windows(request: HttpRequest, username: str, *, count_this_one: bool) -> list[Window]:
    browser = _trusted_browser(request, username)
    keyed: list[tuple[str, str, str | None]]
    if browser is not None:
        keyed = [("gerion.login-browser-failures", settings.GERION_LOGIN_FAILURE_RATE, browser)]
    else:
        keyed = [
            ("gerion.login-failures", settings.GERION_LOGIN_FAILURE_RATE, None),
            (
                "gerion.login-username-failures",
                settings.GERION_LOGIN_USERNAME_FAILURE_RATE,
                _username_digest(username),
            ),
        ]
    windows = []
    for group, rate, key in keyed:
        window = failure_window(
            request, group=group, rate=rate, key=key, count_this_one=count_this_one
        )
        if window is None:
            logger.warning("sign-in limiter: cache unreachable; not limiting")
        else:
            windows.append(window)
    return windows


def _count_failure(request: HttpRequest, username: str) -> None:
    _windows(request, username, count_this_one=True)
    # Never the username: people type their password into that field.
    logger.warning("sign-in failed", extra={"remote_ip": client_ip(request)})


@receiver(user_login_failed, dispatch_uid="gerion.login.count_failed_sign_in")
def count_failed_sign_in(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Every failed authenticate() of a request counts, whoever is signed in."""
    if request is None:
        return
    username = credentials.get(get_user_model().USERNAME_FIELD)
    _count_failure(request, username if isinstance(username, str) else "")


@receiver(user_logged_in, dispatch_uid="gerion.login.remember_signed_in_browser")
def remember_signed_in_browser(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    if request is not None:
        setattr(request, _SIGNED_IN_AS, user.get_username())


def _set_signin_cookie(response: HttpResponseBase, username: str) -> None:
    value = signing.dumps(
        {"u": _username_digest(username), "b": secrets.token_urlsafe(16)},
        salt=_SIGNIN_COOKIE_SALT,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=SIGNIN_COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def _too_many(request: HttpRequest, full: list[Window]) -> HttpResponse:
    retry_after = str(max(int(window.retry_after) for window in full))
    logger.warning("sign-in refused: too many failures", extra={"remote_ip": client_ip(request)})
    return HttpResponse(
        render_to_string("429_login.html", {"retry_after": retry_after}),
        status=429,
        headers={"Retry-After": retry_after},
    )


def _limited(
    view: View, *, username_of: Callable[[HttpRequest], str], count_refused_posts: bool
) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = username_of(request)
        full = [
            window for window in _windows(request, username, count_this_one=False) if window.full
        ]
        if full:
            return _too_many(request, full)
        response = view(request, *args, **kwargs)
        signed_in_as = getattr(request, _SIGNED_IN_AS, None)
        if isinstance(signed_in_as, str):
            _set_signin_cookie(response, signed_in_as)
        elif count_refused_posts and response.status_code == 200:
            # The form came back instead of a redirect: the password did not check out.
            _count_failure(request, username)
        return response

    return wrapper


def _posted_username(request: HttpRequest) -> str:
    """The username as the sign-in form will authenticate it (stripped, NFKC-normalised), so
    that " admin" or "admin" in full-width letters is checked against admin's window."""
    raw = request.POST.get("username", "")
    try:
        return str(UsernameField().to_python(raw))
    except ValidationError:
        return str(raw)


def limit_failed_logins(view: View) -> View:
    """A sign-in view: once a window is full, every sign-in it covers is refused with a 429
    (a right password too, or guessing would go on) until the window ends."""
    return _limited(view, username_of=_posted_username, count_refused_posts=False)


def limit_password_checks(view: View) -> View:
    """A password change view that asks for the current password (admin): a stolen session must
    not be a way to guess it. Refused changes count as failures of the signed-in username."""
    return _limited(
        view, username_of=lambda r: str(r.user.get_username()), count_refused_posts=True
    )
