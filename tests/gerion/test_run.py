"""`make run` and `make demo` as a newcomer meets them: the Python make picks, the port, and
what Ctrl-C prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.checkout import (
    LineReader,
    end_group,
    fresh_copy,
    newcomer_env,
    sign_in,
    start,
    wait_for_health,
)
from tests.support.servers import REPO, free_port

MAKE = shutil.which("make") or "make"


def dry_run_install(tmp_path: Path, interpreters: dict[str, str | None], *args: str):
    """`make -n install` in a checkout without .venv, with only `interpreters` on PATH:
    name -> a real Python to link to, or None for one that fails to start (a pyenv shim of an
    inactive version exits 127) or answers as an unsupported version."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, checkout / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in interpreters.items():
        path = bin_dir / name
        if target is None:
            path.write_text("#!/bin/sh\nexit 127\n")
            path.chmod(0o755)
        else:
            path.symlink_to(target)
    return subprocess.run(
        [MAKE, "-n", "install", *args],
        cwd=checkout,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_creates_the_venv_with_the_supported_python_that_runs_skipping_broken_shims(
    tmp_path,
):
    assert sys.version_info[:2] in [(3, 11), (3, 12)]
    result = dry_run_install(
        tmp_path, {"python3.12": None, "python3.11": sys.executable, "python3": None}
    )
    assert result.returncode == 0, result.stderr
    assert "python3.11 -m venv .venv" in result.stdout


def test_make_prefers_python312_over_python311(tmp_path):
    result = dry_run_install(tmp_path, {"python3.12": sys.executable, "python3.11": sys.executable})
    assert "python3.12 -m venv .venv" in result.stdout


def test_make_without_a_supported_python_stops_with_one_line_naming_the_versions(tmp_path):
    result = dry_run_install(tmp_path, {"python3.12": None, "python3.11": None, "python3": None})
    assert result.returncode != 0
    assert "-m venv" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "Python 3.12 or 3.11 is needed" in line
    assert "PYTHON=" in line


def test_python_given_to_make_is_used_as_is(tmp_path):
    result = dry_run_install(tmp_path, {}, "PYTHON=/opt/python3.12/bin/python3")
    assert result.returncode == 0, result.stderr
    assert "/opt/python3.12/bin/python3 -m venv .venv" in result.stdout


def _messages(lines: list[str]) -> list[str]:
    """The message of each JSON log line; other lines as they are."""
    out = []
    for line in lines:
        try:
            out.append(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):
            out.append(line)
    return out


@pytest.mark.slow
def test_ctrl_c_stops_make_run_at_once_with_one_clear_line_while_clients_hold_connections(
    tmp_path,
):
    checkout = fresh_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Its own session and process group, like a terminal's foreground job.
    run = start([MAKE, "run", f"PORT={port}"], checkout, newcomer_env(home))
    output = LineReader(run)
    clients = []
    try:
        wait_for_health(url, run)
        # What a browser and a slow client leave open: a kept-alive connection after a
        # request, a connection opened ahead of use, and a request still arriving.
        kept_alive = socket.create_connection(("127.0.0.1", port))
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        idle = socket.create_connection(("127.0.0.1", port))
        arriving = socket.create_connection(("127.0.0.1", port))
        arriving.sendall(b"GET /findings/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        clients += [kept_alive, idle, arriving]
        time.sleep(1)  # until a worker thread is reading each of them

        # Ctrl-C: the terminal sends SIGINT to the whole foreground group (make, gunicorn's
        # master and its worker).
        output.drain()
        os.killpg(run.pid, signal.SIGINT)
        after = output.rest(timeout=60)
        run.wait(timeout=10)
    finally:
        for client in clients:
            client.close()
        end_group(run)

    transcript = "\n".join(output.lines)
    assert _messages(after) == ["Handling signal: int", "Shutting down: Master"], transcript
    assert "SIGKILL" not in transcript
    assert "out of memory" not in transcript
    assert "Traceback" not in transcript
    assert "make: ***" not in transcript
    # Nothing written outside the checkout (gunicorn >= 25.1 puts a control socket in $HOME).
    assert list(home.iterdir()) == []


@pytest.mark.slow
def test_make_demo_fills_make_runs_database_once_and_says_how_to_sign_in(tmp_path):
    checkout = fresh_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()

    def make_demo():
        return subprocess.run(
            [MAKE, "demo", f"PORT={port}"],
            cwd=checkout,
            env=newcomer_env(home),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    demo = make_demo()
    assert demo.returncode == 0, demo.stdout + demo.stderr
    sign_in_line = re.search(
        rf"Sign in at http://127\.0\.0\.1:{port}/accounts/login/ as demo with password (\S+)",
        demo.stdout,
    )
    assert sign_in_line, demo.stdout
    # make run's database: the embedded SQLite file under the checkout's var/.
    assert (checkout / "var" / "db.sqlite3").stat().st_size > 0

    again = make_demo()
    assert again.returncode != 0
    assert "already holds" in again.stderr
    assert "DEMO_ARGS=--force" in again.stderr

    # And make run serves it: the printed password signs in, the dashboard shows the demo.
    run = start([MAKE, "run", f"PORT={port}"], checkout, newcomer_env(home))
    LineReader(run)  # keeps the pipe flowing
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, run)
        browser = sign_in(url, "demo", sign_in_line.group(1))
        dashboard = browser.get(f"{url}/", timeout=10)
        for repository in ("acme/web-shop", "acme/payments-api", "acme/infra", "acme/mobile-app"):
            assert repository in dashboard.text
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=30)
        finally:
            end_group(run)
