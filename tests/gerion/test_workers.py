"""gerion.workers.ThreadWorker, the gunicorn worker of gunicorn.conf.py: a keep-alive
connection's requests are all answered, in order, however they arrive (at once, pipelined,
after a pause that sends the connection back to the poller)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from gerion.workers import NEXT_REQUEST_WAIT
from tests.support.servers import gunicorn

pytestmark = pytest.mark.slow


class KeepAliveClient:
    """HTTP/1.1 on one connection, read by Content-Length (what a CI client or a proxy's
    upstream connection does)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host = f"{host}:{port}"
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.pending = b""

    def send(self, *paths: str) -> None:
        self.sock.sendall(
            b"".join(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode() for path in paths)
        )

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        head = self._until(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        if "content-length" in headers:
            return int(status_line.split()[1]), headers, self._take(int(headers["content-length"]))
        assert headers["transfer-encoding"] == "chunked"
        body = b""
        while size := int(self._until(b"\r\n"), 16):
            body += self._take(size)
            self._until(b"\r\n")
        self._until(b"\r\n")  # the last chunk's end
        return int(status_line.split()[1]), headers, body

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.pending:
            self._receive()
        part, _, self.pending = self.pending.partition(marker)
        return part

    def _take(self, size: int) -> bytes:
        while len(self.pending) < size:
            self._receive()
        part, self.pending = self.pending[:size], self.pending[size:]
        return part

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.pending += chunk


def test_a_keep_alive_connection_is_answered_request_after_request(tmp_path):
    with gunicorn(tmp_path, workers=1, env={"GERION_THREADS": "2"}) as server:
        client = KeepAliveClient(server.url)
        request_ids = set()
        # Back to back: each next request is served by the thread that answered the last.
        for _ in range(50):
            client.send("/api/v1/auth/jwks")
            status, headers, body = client.answer()
            assert status == 200
            assert json.loads(body)["keys"]
            request_ids.add(headers["x-request-id"])
        # Quiet for longer than the thread waits: the connection goes back to the poller,
        # and its next request is answered all the same.
        time.sleep(NEXT_REQUEST_WAIT * 50)
        client.send("/api/v1/auth/jwks")
        status, _, body = client.answer()
        assert status == 200
        assert json.loads(body)["keys"]
        # Pipelined: three requests in one write, three answers in order.
        client.send("/api/v1/nope", "/api/v1/auth/jwks", "/api/v1/nope")
        assert [client.answer()[0] for _ in range(3)] == [404, 200, 404]
        assert len(request_ids) == 50  # 50 requests, not one answer repeated
        assert "Using worker: gerion.workers.ThreadWorker" in server.log()
