"""The WeChat simulator served on a real socket on 127.0.0.1, with answers that can be made slow per API:
held back before the headers (`delay_s`), or trickled a byte at a time (`trickle_s`).

WeChat handles a request before its answer is slow on the way back, so the simulator answers first
(a code is spent then, as on WeChat) and the answer is delayed after.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from local.wechat_sim import WeChatSimulator

JSCODE2SESSION = "/sns/jscode2session"
STABLE_TOKEN = "/cgi-bin/stable_token"
MSG_SEC_CHECK = "/wxa/msg_sec_check"
PHONE_NUMBER = "/wxa/business/getuserphonenumber"
CHECK_SESSION = "/wxa/checksession"


@dataclass(frozen=True)
class Slowness:
    """How one API's answers are slowed: held `delay_s` before the headers, then each body byte
    `trickle_s` apart (a trickle never trips a read timeout)."""

    delay_s: float = 0.0
    trickle_s: float = 0.0


def _read_request(connection: socket.socket) -> tuple[str, str, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        body += chunk
    return method, target, body


class SlowWeChat:
    """A WeChat on 127.0.0.1 (ephemeral port): the simulator's answers, slowed per path as set by `slow`.

    `requests` counts the requests each path received (attempts, retries included).
    """

    def __init__(self, simulator: WeChatSimulator) -> None:
        self.simulator = simulator
        self.requests: Counter[str] = Counter()
        self._slowness: dict[str, Slowness] = {}
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def slow(self, *paths: str, delay_s: float = 0.0, trickle_s: float = 0.0) -> None:
        """Slow the answers of `paths` from now on."""
        for path in paths:
            self._slowness[path] = Slowness(delay_s, trickle_s)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._handle, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(5)
            request = _read_request(connection)
            if request is None:
                return
            method, target, body = request
            path = target.partition("?")[0]
            with self._lock:
                self.requests[path] += 1
            answer = self.simulator(httpx.Request(method, f"http://wechat.local{target}", content=body))
            slowness = self._slowness.get(path, Slowness())
            if self._stop.wait(slowness.delay_s):
                return
            content = answer.content
            head = (
                f"HTTP/1.1 {answer.status_code} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n"
            )
            connection.sendall(head.encode())
            if not slowness.trickle_s:
                connection.sendall(content)
                return
            for byte in content:
                if self._stop.wait(slowness.trickle_s):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            connection.close()

    @contextmanager
    def running(self) -> Iterator[SlowWeChat]:
        server = threading.Thread(target=self._serve, daemon=True)
        server.start()
        try:
            yield self
        finally:
            self._stop.set()
            server.join(timeout=5)
            for thread in self._threads:
                thread.join(timeout=5)
            self._server.close()
