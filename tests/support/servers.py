"""Real servers for tests: gunicorn with several workers, and nginx in front of it, started and
stopped by the test."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def django_env(drop: tuple[str, ...] = (), **overrides: str) -> dict[str, str]:
    """The test process's environment (DATABASE_URL, REDIS_URL...) without `drop`, plus
    overrides."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(overrides)
    return env


@contextlib.contextmanager
def gunicorn(
    tmp_path: Path,
    *,
    workers: int = 3,
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> Iterator[Server]:
    port = free_port()
    log_path = tmp_path / f"gunicorn-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "gerion.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env=django_env(drop, GERION_WORKERS=str(workers), **(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log_path, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{server.log()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process, signal.SIGTERM)


def token_over_http(base_url: str, plaintext: str, client_id: str) -> str:
    """A token from the running server's authenticate endpoint, as a CI pipeline gets one."""
    response = requests.post(
        base_url + "/api/v1/auth/m2m/authenticate",
        json={"client_id": client_id},
        headers={"X-API-Key": plaintext},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Ask a server to stop; kill it if it has not within 20 s."""
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def live_database_url() -> str:
    """DATABASE_URL of the test database pytest-django created, for servers the test starts
    (their data must be committed: use the transactional_db fixture)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "gerion.conf.template"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "The reverse-proxy tests need Debian's nginx: apt-get install nginx (make test does)."
        )
    return found


def render_nginx_template(values: dict[str, str]) -> str:
    """deploy/nginx/gerion.conf.template with ${GERION_...} filled in, as the official nginx
    image's envsubst does (nginx's own $variables are left alone)."""
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    left = re.findall(r"\$\{GERION_\w+\}", text)
    assert not left, f"unfilled template variables: {left}"
    return text


@dataclass
class Nginx:
    url: str
    port: int
    error_log: Path


@contextlib.contextmanager
def nginx(
    tmp_path: Path, upstream: str, *, listen_ssl: bool = False, tls_conf: str = ""
) -> Iterator[Nginx]:
    """The repository's nginx configuration in front of `upstream` (host:port): its own prefix,
    ports and temporary files, in the foreground; never the system's nginx service."""
    root = tmp_path / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / "temp" / sub).mkdir(parents=True, exist_ok=True)
    (root / "tls.conf").write_text(tls_conf)
    port = free_port()
    (root / "gerion.conf").write_text(
        render_nginx_template(
            {
                "GERION_UPSTREAM": upstream,
                "GERION_LISTEN": f"127.0.0.1:{port}" + (" ssl" if listen_ssl else ""),
                "GERION_TLS_CONF": str(root / "tls.conf"),
            }
        )
    )
    temp = root / "temp"
    # The main and events contexts of a stock nginx.conf; the http context is the shipped file.
    (root / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
        + f"error_log {root / 'error.log'} info;\n"
        + "events { worker_connections 1024; }\n"
        + "http {\n  access_log off;\n"
        + f"  client_body_temp_path {temp / 'body'};\n  proxy_temp_path {temp / 'proxy'};\n"
        + f"  fastcgi_temp_path {temp / 'fastcgi'};\n  uwsgi_temp_path {temp / 'uwsgi'};\n"
        + f"  scgi_temp_path {temp / 'scgi'};\n"
        + f"  include {root / 'gerion.conf'};\n}}\n"
    )
    command = [nginx_binary(), "-p", str(root), "-e", str(root / "error.log"), "-c"]
    command.append(str(root / "nginx.conf"))
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{(root / 'error.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start")
            time.sleep(0.05)
        scheme = "https" if listen_ssl else "http"
        yield Nginx(f"{scheme}://127.0.0.1:{port}", port, root / "error.log")
    finally:
        stop(process, signal.SIGQUIT)  # graceful: finish what is in flight
