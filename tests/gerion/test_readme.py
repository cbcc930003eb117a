"""The README and docs stand alone, and the README's Quickstart works as written: the suite
pastes it into a shell on a fresh copy of the repository, as a newcomer would."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.support.checkout import LineReader, end_group, fresh_copy, newcomer_env, sign_in, start
from tests.support.servers import REPO, free_port


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "examples/README.md"]


_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINKS = [
    re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"),  # [text](target)
    re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M),  # [ref]: target
    re.compile(r"<((?:https?|ftp|mailto|file):[^>\s]+)>"),  # <https://...>
    re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']"""),  # raw HTML
]
# The service a reader runs on their own machine is not "outside the repository".
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def link_problems(text: str, document: Path) -> list[str]:
    """Each link of a Markdown text that leads outside the repository or to a missing file."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    problems = []
    for pattern in _LINKS:
        for target in pattern.findall(prose):
            parsed = urlparse(target)
            if parsed.scheme or target.startswith("//"):
                if parsed.scheme not in {"http", "https"} or parsed.hostname not in _LOCAL_HOSTS:
                    problems.append(f"{target}: a link outside the repository")
                continue
            if not parsed.path:  # "#section" within the same page
                continue
            resolved = (document.parent / parsed.path).resolve()
            if not resolved.is_relative_to(REPO.resolve()):
                problems.append(f"{target}: a path outside the repository")
            elif not resolved.exists():
                problems.append(f"{target}: no such file in the repository")
    return problems


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_readme_and_docs_link_only_to_files_inside_the_repository(document):
    assert link_problems(document.read_text(), document) == []


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        ("[the contract](../shared/SPEC.md)", "a path outside the repository"),
        ("[guide](docs/no-such-guide.md)", "no such file in the repository"),
        ("![shot](docs/missing.png)", "no such file in the repository"),
        ("see <https://example.com/spec>", "a link outside the repository"),
        ("[spec](https://example.com/spec.md)", "a link outside the repository"),
        ('<a href="../../etc/passwd">x</a>', "a path outside the repository"),
        ("[ref]: ../outside.md", "a path outside the repository"),
    ],
    ids=["parent-folder", "missing-page", "missing-image", "autolink", "web-link", "html", "ref"],
)
def test_the_link_check_refuses_links_outside_the_repository_or_to_missing_files(markdown, problem):
    (found,) = link_problems(markdown, REPO / "README.md")
    assert found.endswith(problem)


def test_the_link_check_accepts_files_of_the_repository_local_urls_and_code():
    text = (
        "[api](docs/api.md) [top](#quickstart) ![d](docs/dashboard.png) "
        "<http://127.0.0.1:8000/api/v1/docs> `../not/a/link.md`\n"
        "```sh\ncurl https://example.com/in/a/code/block\n```\n"
    )
    assert link_problems(text, REPO / "README.md") == []


def quickstart_blocks() -> list[str]:
    """The shell blocks of the README's Quickstart section (its subsections excluded)."""
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Quickstart\n(.*?)^##", readme, re.M | re.S)
    assert section, "README.md has no '## Quickstart' section"
    return re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)


def findings_in(example: str) -> int:
    """How many findings an example upload carries (each envelope the block may send)."""
    body = json.loads((REPO / "examples" / example).read_text())
    if "runs" in body:  # SARIF: one finding per result
        return sum(len(run.get("results", [])) for run in body["runs"])
    return len(body["findings"] if "findings" in body else body["findings_data"]["findings"])


PAUSE = "--- the newcomer opens the dashboard now ---"


@pytest.mark.slow
def test_the_quickstart_runs_as_written_on_a_fresh_copy_and_fills_the_dashboard(tmp_path):
    blocks = quickstart_blocks()
    assert len(blocks) == 2, "the Quickstart is one block to paste, then one to stop the server"
    first_block, stop_block = blocks
    uploaded = re.findall(r"--data-binary @examples/([\w.-]+)", first_block)
    assert {"upload.json", "upload-cli.json"} <= set(uploaded)
    checkout = fresh_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Pasted into one shell, as a reader does; -e and pipefail only make a failing step stop
    # the test instead of scrolling by. PORT is the variable the block documents.
    shell = start(
        ["bash", "-e", "-o", "pipefail", "-s"],
        checkout,
        newcomer_env(home, PORT=str(port)),
        stdin=True,
    )
    assert shell.stdin is not None
    output = LineReader(shell)
    try:
        shell.stdin.write(f"{first_block}\necho '{PAUSE}'\n")
        shell.stdin.flush()
        lines = output.until(PAUSE, timeout=300)
        transcript = "\n".join(lines)

        # Every example upload was stored with a 201, each of its findings created.
        answers = [json.loads(line) for line in lines if line.startswith('{"upload_id"')]
        expected = [findings_in(example) for example in uploaded]
        assert [a["created"] for a in answers] == expected, transcript
        log = (checkout / "run.log").read_text()
        assert log.count('"POST /api/v1/findings 201"') == len(uploaded), log
        # The query answered with findings of both scans, all CRITICAL or HIGH and open.
        (listing,) = [json.loads(line) for line in lines if line.startswith("[")]
        assert {f["repository_name"] for f in listing} == {"acme/web-shop", "acme/payments-api"}
        assert {f["severity"] for f in listing} <= {"CRITICAL", "HIGH"}
        assert {f["status"] for f in listing} == {"Active"}
        assert f"Dashboard: {url}/" in transcript

        # The dashboard, signed in with the staff user the block created.
        username = re.search(r"--username (\S+)", first_block).group(1)
        password = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", first_block).group(1)
        browser = sign_in(url, username, password)
        dashboard = browser.get(f"{url}/", timeout=10)
        assert dashboard.status_code == 200
        for repository in ("acme/web-shop", "acme/payments-api"):
            assert repository in dashboard.text

        shell.stdin.write(stop_block)
        shell.stdin.close()
        output.rest(timeout=60)
        assert shell.wait(timeout=10) == 0
        # The server stops, cleanly, and left nothing outside the checkout (gunicorn's
        # control socket would sit in $HOME/.gunicorn/).
        for _ in range(100):
            if "Shutting down: Master" in (checkout / "run.log").read_text():
                break
            time.sleep(0.1)
        log = (checkout / "run.log").read_text()
        assert "Shutting down: Master" in log
        assert "SIGKILL" not in log
        assert '"level": "ERROR"' not in log
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", timeout=2)
        assert list(home.iterdir()) == []
    finally:
        end_group(shell)
