"""A misbehaving HTTP server on 127.0.0.1, for faults that need a real socket (httpx's MockTransport
cannot trickle a body or reset a connection)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BUSY = json.dumps({"errcode": -1, "errmsg": "system error"}).encode()


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    connection.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class FaultyPeer:
    """Answers every connection the way `mode` says and counts the requests it saw.

    `trickle`: the headers at once, then the body a byte every `trickle_s` (never a read timeout);
    `reset`: reads the request, then aborts the connection with a TCP RST.
    """

    def __init__(self, mode: str, trickle_s: float = 0.2) -> None:
        assert mode in ("trickle", "reset")
        self.mode = mode
        self.trickle_s = trickle_s
        self.requests = 0
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(32)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

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
            if not _read_request(connection):
                return
            with self._lock:
                self.requests += 1
            if self.mode == "reset":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            body = BUSY + b" " * 200
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            connection.sendall(head.encode())
            for byte in body:
                if self._stop.wait(self.trickle_s):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            connection.close()

    @contextmanager
    def running(self) -> Iterator[FaultyPeer]:
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
