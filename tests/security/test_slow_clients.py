"""Slow clients against gunicorn, bare and behind the repository's nginx configuration
(deploy/nginx/gerion.conf.template, as compose.yaml runs it).

Bare, a few connections that send their headers or body a byte at a time hold every worker
thread, and /healthz stops answering: gunicorn alone cannot bound them (gunicorn.conf.py says
why). Behind nginx, the same connections cost nginx a socket each and gunicorn nothing.

One worker of four threads: with several, the kernel hands connections to the workers so
unevenly (16 to one and none to the other, at times) that the control below would pass or fail
by chance; the attacker only needs a few more connections."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from deploy.selfsigned_cert import write_self_signed
from tests.support.servers import REPO, Nginx, gunicorn, live_database_url, nginx

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Twice the worker's threads.
SLOW_CONNECTIONS = 8

SLOW_HEAD = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = (
    "POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n"
)


class SlowClients:
    """Connections that send a request's start at once and then one byte a second."""

    def __init__(self, port: int, count: int) -> None:
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.closed_by_server = 0
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall((SLOW_HEAD if n % 2 else SLOW_BODY).encode())
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for sock in list(self.sockets):
                try:
                    sock.sendall(b"a")
                except OSError:
                    self.sockets.remove(sock)
                    self.closed_by_server += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


@contextlib.contextmanager
def slow_clients(port: int, count: int = SLOW_CONNECTIONS) -> Iterator[SlowClients]:
    clients = SlowClients(port, count)
    try:
        time.sleep(1.5)  # every connection has started its request and holds what it can
        yield clients
    finally:
        clients.close()


def healthy(url: str, timeout: float = 3.0) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def app(tmp_path):
    env = {
        "DATABASE_URL": live_database_url(),
        "GERION_THREADS": "4",
        "GERION_TRUSTED_PROXY_COUNT": "1",
    }
    with gunicorn(tmp_path, workers=1, env=env) as server:
        yield server


@pytest.fixture
def proxy(tmp_path, app) -> Iterator[Nginx]:
    with nginx(tmp_path, app.url.removeprefix("http://")) as running:
        yield running


def test_health_checks_answer_through_nginx_while_slow_clients_hang(app, proxy):
    app_port = int(app.url.rsplit(":", 1)[1])
    # Control: bare gunicorn is stuck, so the slow clients below do hold what they can.
    with slow_clients(app_port):
        assert not healthy(app.url, timeout=3)
    assert healthy(app.url, timeout=10)  # they are gone, it recovers

    # The same slow clients, eight times as many, through nginx.
    with slow_clients(proxy.port, count=8 * SLOW_CONNECTIONS) as clients:
        for _ in range(5):
            started = time.monotonic()
            assert healthy(proxy.url, timeout=3)
            assert time.monotonic() - started < 1.5
            assert healthy(app.url, timeout=3)  # nginx has passed none of them on
        assert clients.closed_by_server == 0  # still hanging: it is nginx that waits


def test_nginx_cuts_off_a_client_that_takes_too_long_over_its_headers(proxy):
    """client_header_timeout (10 s) bounds the whole request head, not each read."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        sock.sendall(SLOW_HEAD.encode())
        started = time.monotonic()
        answer = b""
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 20:
                sock.sendall(b"a")
                sock.settimeout(1.0)
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(1024)
                    if not chunk:
                        break
                    answer += chunk
        elapsed = time.monotonic() - started
    assert 9 <= elapsed < 14, elapsed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_every_legitimate_request_fits_through_nginx(app, proxy):
    """SPEC "Errors": limits set so that every legitimate token and body fits."""
    # A bearer token far larger than ours (~1 KiB) reaches the application (its 401).
    response = requests.get(
        proxy.url + "/api/v1/findings",
        headers={"Authorization": "Bearer " + "a" * 8000},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    # An upload of 256 MiB, the application's limit, reaches the application (no token here:
    # its 401, not nginx's 413).
    body = b'{"findings": [' + b" " * (256 * 1024 * 1024 - 16) + b"]}"
    response = requests.post(
        proxy.url + "/api/v1/findings",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 401
    assert "request_id" in response.json()
    # A sign-in form just within the application's limit reaches the form (a wrong password).
    browser = requests.Session()
    browser.get(proxy.url + "/accounts/login/", timeout=10)
    form = {
        "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        "username": "nobody",
        "password": "y" * 60_000,
    }
    response = browser.post(proxy.url + "/accounts/login/", data=form, timeout=10)
    assert response.status_code == 200
    assert "didn&#x27;t match" in response.text or "didn't match" in response.text


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/accounts/login/", 64 * 1024 + 1),
        ("/accounts/login/", 2 * 1024 * 1024),
        ("/api/v1/findings", 256 * 1024 * 1024 + 1),
        ("/api/v1/findings", 300 * 1024 * 1024),
    ],
    ids=["form-over-64k", "form-over-1m", "upload-over-256m", "upload-over-300m"],
)
def test_bodies_over_the_limits_are_413_problems_from_nginx(proxy, path, size):
    """nginx's limits are the application's: it refuses, in the application's shape, before
    gunicorn sees a byte (so gunicorn never has to refuse a body nginx is still sending)."""
    response = requests.post(
        proxy.url + path,
        data=b"x" * size,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    assert "request_id" not in response.json()  # nginx's, not the application's


@pytest.mark.parametrize("size_mib", [1, 20, 90])
def test_an_upload_refused_before_it_is_read_gets_its_answer_not_a_502(app, proxy, size_mib):
    """The application answers 401 before reading the body; nginx is still sending it. The
    answer must reach the client (gunicorn alone drops 64 KiB of an unread body and resets the
    connection, which nginx turns into a 502)."""
    body = b'{"findings": [' + b" " * (size_mib * 1024 * 1024) + b"]}"
    for url in (proxy.url, app.url):
        for _ in range(3):
            response = requests.post(
                url + "/api/v1/findings",
                data=body,
                headers={"Content-Type": "application/json", "Authorization": "Bearer x.y.z"},
                timeout=60,
            )
            assert response.status_code == 401, (url, response.status_code)
            assert response.headers["Content-Type"] == "application/problem+json"


def test_compose_shape_tls_in_front_of_the_production_settings(tmp_path):
    """nginx terminates TLS with deploy/nginx/tls.conf and the self-signed certificate that
    compose makes; the application, told it is behind a TLS proxy, sees HTTPS."""
    tls = tmp_path / "tls"
    assert write_self_signed(tls, ["localhost"])
    assert not write_self_signed(tls, ["localhost"])  # never replaces a certificate
    assert oct((tls / "key.pem").stat().st_mode & 0o777) == "0o600"
    tls_conf = (REPO / "deploy" / "nginx" / "tls.conf").read_text()
    tls_conf = tls_conf.replace("/etc/nginx/tls/", f"{tls}/")
    env = {
        "DATABASE_URL": live_database_url(),
        "GERION_BEHIND_TLS_PROXY": "1",
        "GERION_TRUSTED_PROXY_COUNT": "1",
        "DJANGO_SECURE_SSL_REDIRECT": "1",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
    }
    with (
        gunicorn(tmp_path, workers=1, env=env) as server,
        nginx(
            tmp_path, server.url.removeprefix("http://"), listen_ssl=True, tls_conf=tls_conf
        ) as front,
    ):
        response = requests.get(
            front.url + "/accounts/login/", verify=str(tls / "cert.pem"), timeout=10
        )
        # No redirect to HTTPS: the application knows it is HTTPS; HSTS and secure cookies.
        assert response.status_code == 200
        assert response.history == []
        assert "max-age=" in response.headers["Strict-Transport-Security"]
        assert "Secure" in response.headers["Set-Cookie"]  # the CSRF cookie
        # Plain HTTP straight to gunicorn is sent to HTTPS.
        plain = requests.get(server.url + "/accounts/login/", allow_redirects=False, timeout=10)
        assert plain.status_code == 301


def test_one_address_holds_at_most_64_requests_open_at_nginx(proxy):
    """limit_conn: past 64 requests in flight from one address, nginx answers 429 at once
    (slow bodies from a single address cannot take every connection nginx has)."""
    sockets = []
    try:
        for _ in range(70):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            sock.sendall(SLOW_BODY.encode())
            sockets.append(sock)
        time.sleep(1)
        refused = 0
        for sock in sockets:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                if sock.recv(64).startswith(b"HTTP/1.1 429"):
                    refused += 1
        assert refused == 6
    finally:
        for sock in sockets:
            sock.close()
