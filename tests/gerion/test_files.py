"""Secrets created on first use are created once, whole, whoever races for them."""

import threading
from pathlib import Path

from gerion.files import create_once


def _race(path: Path, contenders: int) -> tuple[list[bytes], list[BaseException]]:
    results: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(contenders)

    def contend(n: int) -> None:
        barrier.wait()
        try:
            results.append(create_once(path, str(n).encode() * 50_000))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_threads_racing_to_create_a_secret_all_get_the_same_complete_content(tmp_path):
    for trial in range(30):
        path = tmp_path / f"secret-{trial}"
        results, errors = _race(path, 8)
        assert errors == []
        assert len(set(results)) == 1
        assert results[0] == path.read_bytes()
        assert len(results[0]) == 50_000
        assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
