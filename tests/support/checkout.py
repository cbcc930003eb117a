"""A newcomer's checkout: a fresh copy of the repository in a temporary folder, run with a
bare environment, as someone who just cloned it would."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.servers import REPO


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them (tracked, plus new files not ignored: no
    var/, staticfiles/ or .venv/), modification times kept.

    .venv/ is the suite's own, linked rather than installed again: with pyproject.toml's time
    kept, make finds it up to date, exactly as on a second `make run`. Everything else (the
    database, generated keys, static files) starts from nothing.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    copy = destination / "gerion"
    for name in filter(None, listed):
        source = REPO / os.fsdecode(name)
        if not source.is_file():  # deleted in the working tree but not yet in the index
            continue
        target = copy / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    venv = Path(sys.prefix)
    if not (venv / ".runtime").exists():
        pytest.fail(f"{venv} is not the .venv that make installs: run the suite with `make test`.")
    (copy / ".venv").symlink_to(venv)
    return copy


def newcomer_env(home: Path, **extra: str) -> dict[str, str]:
    """A login shell's environment and nothing of the suite's: no DATABASE_URL, REDIS_URL,
    signing key or make flags. HOME is an empty folder the test can inspect afterwards."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy in {timeout} s")


class LineReader:
    """Reads a process's output on a thread, so that a test can wait for a line with a deadline
    instead of blocking on a pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            return self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"no {waiting_for} in time; output so far:\n" + "\n".join(self.lines)
            ) from None

    def until(self, marker: str, timeout: float) -> list[str]:
        """Lines up to the one equal to `marker` (excluded)."""
        start = len(self.lines)
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline, repr(marker))) != marker:
            if line is None:
                raise AssertionError(
                    f"the output ended before {marker!r}:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
        return self.lines[start:]

    def drain(self) -> list[str]:
        """The lines written so far, without waiting for more."""
        start = len(self.lines)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines[start:]
            if line is None:
                self._queue.put(None)
                return self.lines[start:]
            self.lines.append(line)

    def rest(self, timeout: float) -> list[str]:
        """Every line until the output ends."""
        start = len(self.lines)
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline, "end of the output")) is not None:
            self.lines.append(line)
        return self.lines[start:]


def start(
    command: list[str], checkout: Path, env: dict[str, str], *, stdin: bool = False
) -> subprocess.Popen[str]:
    """`command` in its own session and process group, like a terminal's foreground job,
    stdout and stderr in one text pipe."""
    return subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def sign_in(url: str, username: str, password: str) -> requests.Session:
    """A browser-like session signed in on the staff login page."""
    session = requests.Session()
    session.get(f"{url}/accounts/login/", timeout=10)
    signed_in = session.post(
        f"{url}/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    assert signed_in.url == f"{url}/", signed_in.text[:500]
    return session


def end_group(process: subprocess.Popen[str]) -> None:
    """Whatever the test left running in the process's group (started with
    start_new_session=True) is ended: the group id is the process's own id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
