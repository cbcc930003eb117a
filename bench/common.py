"""What the benchmarks share: their own database, and requests through the WSGI application."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


BENCH_REDIS_URL = "redis://127.0.0.1:6379/14"


def configure(*, redis: bool = False, **defaults: str) -> None:
    """Settings for a benchmark process: its own database (BENCH_DATABASE_URL, default
    gerion_bench), with `redis` its own Redis db (BENCH_REDIS_URL, default db 14: never the
    tests' or a server's), quiet logs, and any further defaults. Call before Django is
    imported."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gerion.settings")
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/gerion_bench"
    )
    if redis:
        os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", BENCH_REDIS_URL)
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("GERION_LOG_LEVEL", "WARNING")


def ensure_database() -> None:
    """Create the benchmark database if needed, set Django up and migrate."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def wsgi_request(
    application: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request through the WSGI application, in process: (status, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()},
    }
    status: list[str] = []
    content = b"".join(application(environ, lambda s, h: status.append(s)))
    return int(status[0].split()[0]), content


@dataclass
class Gunicorn:
    """gunicorn serving the repository's configuration on a free loopback port."""

    url: str
    process: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        """The worker processes (children of the master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def reset_peaks(self) -> None:
        """Start each worker's peak-RSS count afresh (Linux: clear_refs 5 resets VmHWM)."""
        for pid in self.workers():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def worker_peak_rss(server: Gunicorn) -> int:
    """The highest peak RSS (bytes) among the workers since their peaks were reset: that of
    the worker that served the request in between."""
    peaks = []
    for pid in server.workers():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
    return max(peaks, default=0)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the process name: [0] state, [1] parent PID,
    [11] user and [12] system time, [13] and [14] those of its children it has reaped (clock
    ticks). OSError once the process has ended."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_pid(pid: int) -> int:
    return int(_stat(pid)[1])


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system, seconds) each process has used so far (Linux /proc); a
    process that has ended is left out."""
    out = {}
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def tree_cpu_seconds(server: int) -> float:
    """CPU seconds a server and its children have used so far: the children running, and
    those that have ended (in the server's children's time once reaped), so that a child that
    starts and ends between two readings counts too."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
        except OSError:
            continue
        if entry.name == str(server):
            total += sum(int(value) for value in fields[11:15])
        elif fields[1] == str(server):
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes used between two cpu_seconds readings (a process first seen
    in `after` counts whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gunicorn(workers: int, key_path: Path, log: Path, **env: str) -> Gunicorn:
    """`gunicorn gerion.wsgi` with the repository's gunicorn.conf.py, this process's
    DATABASE_URL and REDIS_URL, the given signing key and `workers` workers."""
    import requests

    port = free_port()
    environment = dict(
        os.environ,
        GERION_JWT_SIGNING_KEY=str(key_path),
        GERION_WORKERS=str(workers),
        GERION_BIND=f"127.0.0.1:{port}",
        **env,
    )
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "gerion.wsgi"],
        cwd=REPO,
        env=environment,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Gunicorn(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url + "/healthz", timeout=1).status_code == 200:
                # Every worker up, so that none is still booting while being measured.
                while len(server.workers()) < workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                return server
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")
