"""Brute-force protection on every form that checks a password.

Failures are counted from the authentication result (Django's `user_login_failed`), whatever
the session: per client address and per username, in windows that end. A browser that has
signed in as a user before (its sign-in cookie) is not locked out by other people's failures
on that username.
"""

import time

import pytest
from django.test import Client

from tests.factories import PASSWORD, SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db

LOGIN_FORMS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def _tight_limits(settings):
    # Day-long windows: fixed windows end at a moment of their own, and a test whose attempts
    # straddled the end of a 5-minute one would see its count start again (1 run in ~100).
    settings.GERION_LOGIN_FAILURE_RATE = "5/d"
    settings.GERION_LOGIN_USERNAME_FAILURE_RATE = "8/d"


def attempt(client, url, password, *, username="admin", ip="203.0.113.5"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url", LOGIN_FORMS)
def test_after_too_many_failures_even_the_right_password_is_refused(url):
    SuperuserFactory(username="admin")
    client = Client()

    assert [attempt(client, url, "wrong").status_code for _ in range(5)] == [200] * 5
    refused = attempt(client, url, PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in refused.content
    # Someone else, elsewhere, signs in as usual.
    assert attempt(Client(), url, PASSWORD, ip="198.51.100.20").status_code == 302


@pytest.mark.parametrize("url", LOGIN_FORMS)
@pytest.mark.parametrize("signed_in_as", ["staff", "non-staff"])
def test_a_signed_in_user_cannot_guess_another_users_password(url, signed_in_as):
    """The probe: signed in as anyone, wrong passwords for `admin` were never counted."""
    SuperuserFactory(username="admin")
    attacker = UserFactory(username="mallory", is_staff=signed_in_as == "staff")
    client = Client()
    client.force_login(attacker)

    statuses = [attempt(client, url, f"guess-{n}").status_code for n in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]
    # The right password, found at last, no longer opens an admin session.
    found = attempt(client, url, PASSWORD)
    assert found.status_code == 429
    assert client.session["_auth_user_id"] == str(attacker.pk)


@pytest.mark.parametrize("url", LOGIN_FORMS)
def test_a_guess_spread_over_many_addresses_is_limited_per_username(url):
    SuperuserFactory(username="admin")
    # Eight failures for one account, each from a different address (a botnet).
    for n in range(8):
        assert attempt(Client(), url, "wrong", ip=f"198.51.100.{n + 1}").status_code == 200
    # The ninth address has never failed, but the account has had enough guesses.
    refused = attempt(Client(), url, PASSWORD, ip="198.51.100.99")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # Other accounts are not affected.
    SuperuserFactory(username="oncall")
    assert (
        attempt(Client(), url, PASSWORD, username="oncall", ip="198.51.100.99").status_code == 302
    )


@pytest.mark.parametrize("url", LOGIN_FORMS)
def test_the_owners_browser_still_signs_in_while_the_account_is_under_attack(url):
    SuperuserFactory(username="admin")
    owner = Client()
    assert attempt(owner, url, PASSWORD, ip="192.0.2.10").status_code == 302
    owner.post("/accounts/logout/")
    assert "gerion_signin" in owner.cookies

    for n in range(8):
        attempt(Client(), url, "wrong", ip=f"198.51.100.{n + 1}")
    assert attempt(Client(), url, PASSWORD, ip="198.51.100.99").status_code == 429
    # The owner's browser signed in as admin before: other people's failures do not lock it out.
    assert attempt(owner, url, PASSWORD, ip="192.0.2.10").status_code == 302


def test_a_sign_in_cookie_of_one_account_does_not_unlock_another():
    SuperuserFactory(username="admin")
    UserFactory(username="mallory", is_staff=True)
    attacker = Client()
    assert attempt(attacker, "/accounts/login/", PASSWORD, username="mallory").status_code == 302
    for n in range(8):
        attempt(Client(), "/accounts/login/", "wrong", ip=f"198.51.100.{n + 1}")
    # mallory's own sign-in cookie is no pass for guessing admin's password.
    assert attempt(attacker, "/accounts/login/", PASSWORD, ip="198.51.100.50").status_code == 429


def test_a_trusted_browser_has_its_own_failure_window():
    SuperuserFactory(username="admin")
    owner = Client()
    assert attempt(owner, "/accounts/login/", PASSWORD).status_code == 302
    statuses = [attempt(owner, "/accounts/login/", "wrong").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_failure_windows_end(settings):
    """No permanent lockout: once the window has passed, the owner signs in."""
    settings.GERION_LOGIN_FAILURE_RATE = "3/4s"
    settings.GERION_LOGIN_USERNAME_FAILURE_RATE = "3/4s"
    SuperuserFactory(username="admin")
    client = Client()
    # Windows are fixed: failures may straddle the end of one, so fail until refused.
    for _ in range(7):
        refused = attempt(client, "/accounts/login/", "wrong")
        if refused.status_code == 429:
            break
    assert refused.status_code == 429
    assert attempt(client, "/accounts/login/", PASSWORD).status_code == 429
    time.sleep(int(refused["Retry-After"]) + 0.2)
    assert attempt(client, "/accounts/login/", PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_count():
    SuperuserFactory(username="admin")
    for _ in range(12):
        assert attempt(Client(), "/accounts/login/", PASSWORD, ip="203.0.113.6").status_code == 302


def test_the_admin_password_change_form_is_no_oracle_for_a_stolen_session():
    """A stolen staff session must not be able to learn the account's password by trying
    old passwords on the admin's password change form."""
    admin = SuperuserFactory(username="admin")
    thief = Client()
    thief.force_login(admin)

    NEW = "n3w-Pass-phrase!"

    def change(old):
        return thief.post(
            "/admin/password_change/",
            {"old_password": old, "new_password1": NEW, "new_password2": NEW},
            REMOTE_ADDR="203.0.113.9",
        )

    assert [change(f"guess-{n}").status_code for n in range(5)] == [200] * 5
    assert change(PASSWORD).status_code == 429
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD)


@pytest.mark.parametrize(
    "variant",
    [" admin", "admin ", "\tadmin\n", "\uff41\uff44\uff4d\uff49\uff4e"],
    ids=["lead", "trail", "tabs", "fullwidth"],
)
def test_spellings_that_sign_in_as_the_same_user_share_its_window(variant):
    """The form strips and NFKC-normalises the username before authenticating: every
    spelling it turns into `admin` counts against, and is refused by, admin's window."""
    SuperuserFactory(username="admin")
    for n in range(8):
        attempt(Client(), "/accounts/login/", "wrong", username=variant, ip=f"198.51.100.{n}")
    assert attempt(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.77").status_code == 429
    refused = attempt(Client(), "/accounts/login/", PASSWORD, username=variant, ip="198.51.100.78")
    assert refused.status_code == 429


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.999])
def test_waiting_retry_after_is_enough_and_not_a_second_more(monkeypatch, rf, offset):
    """A client that waits Retry-After is not refused again, and Retry-After is not a second
    longer than needed (whole seconds; fixed windows, on django-ratelimit's clock)."""
    import django_ratelimit.core

    from gerion.failures import failure_window

    clock = {"now": 1_800_000_000 + offset}
    monkeypatch.setattr(django_ratelimit.core.time, "time", lambda: clock["now"])
    request = rf.post("/accounts/login/")

    def window(count: bool):
        return failure_window(request, group="t", rate="3/10s", key="k", count_this_one=count)

    for _ in range(3):
        window(True)
    full = window(False)
    assert full.full
    started = clock["now"]
    clock["now"] = started + int(full.retry_after) - 1
    assert window(False).full
    clock["now"] = started + int(full.retry_after)
    assert not window(False).full
