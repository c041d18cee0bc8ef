"""A WeChat server API simulator for `make dev` and the tests.

Codes it understands (documented in the README):
- `NAME` or `NAME.ANYTHING`: logs in user NAME (openid `sim-NAME`, unionid `sim-union-NAME`).
  Each code works once, as on WeChat; a second exchange answers 40163.
- `fail.ERRCODE`: answers that errcode (e.g. `fail.40029`, `fail.45011`, `fail.-1`).
- `fail.http500`, `fail.html` (an HTML 502 page), `fail.timeout` (answers after 30 s).
- `flaky.N.NAME`: answers -1 for the first N exchanges of this code, then logs in NAME.

Use it in-process as an httpx transport (`httpx.MockTransport(simulator)`) or serve it on a port:
`python -m local.wechat_sim --port 9000`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from typing import Any

import anyio.to_thread
import httpx

_ERRMSG = {
    0: "ok",
    -1: "system error",
    40029: "invalid code",
    40163: "code been used",
    41008: "missing code",
    40226: "high risk user",
    45011: "api minute-quota reach limit",
    40013: "invalid appid",
    40125: "invalid appsecret",
}
SLOW_ANSWER_S = 30.0


def openid_for(name: str) -> str:
    """The openid the simulator gives user NAME."""
    return f"sim-{name}"


class WeChatSimulator:
    """Answers WeChat's server API like WeChat does, from in-memory state. Thread-safe."""

    def __init__(self, appid: str = "", secret: str = "") -> None:
        self.appid = appid
        self.secret = secret
        self._lock = threading.Lock()
        self._used_codes: set[str] = set()
        self._flaky_attempts: Counter[str] = Counter()
        self.session_keys: dict[str, str] = {}
        self.calls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls[path] += 1
        if path == "/sns/jscode2session":
            return self._jscode2session(request)
        return _json({"errcode": 40066, "errmsg": "invalid url"})

    def _credentials_error(self, request: httpx.Request) -> int:
        if self.appid and request.url.params.get("appid") != self.appid:
            return 40013
        if self.secret and request.url.params.get("secret") != self.secret:
            return 40125
        return 0

    def _jscode2session(self, request: httpx.Request) -> httpx.Response:
        code = request.url.params.get("js_code", "")
        credentials = self._credentials_error(request)
        if credentials:
            return _error(credentials)
        if not code:
            return _error(41008)
        if code.startswith("fail."):
            return _failure(code.removeprefix("fail."))
        name = code.partition(".")[0]
        if code.startswith("flaky."):
            _, count, name = code.split(".", 2)
            with self._lock:
                self._flaky_attempts[code] += 1
                if self._flaky_attempts[code] <= int(count or 0):
                    return _error(-1)
        with self._lock:
            if code in self._used_codes:
                return _error(40163)
            self._used_codes.add(code)
            session_key = base64.b64encode(secrets.token_bytes(16)).decode()
            self.session_keys[openid_for(name)] = session_key
        return _json({"openid": openid_for(name), "session_key": session_key, "unionid": f"sim-union-{name}"})


def _json(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def _error(errcode: int) -> httpx.Response:
    return _json({"errcode": errcode, "errmsg": f"{_ERRMSG.get(errcode, 'error')}, rid: {_rid()}"})


def _rid() -> str:
    return hashlib.sha256(secrets.token_bytes(8)).hexdigest()[:24]


def _failure(kind: str) -> httpx.Response:
    if kind == "http500":
        return httpx.Response(500, text="Internal Server Error")
    if kind == "html":
        return httpx.Response(502, html="<html><body><h1>502 Bad Gateway</h1></body></html>")
    if kind == "timeout":
        time.sleep(SLOW_ANSWER_S)
        return _error(-1)
    try:
        return _error(int(kind))
    except ValueError:
        return _error(40029)


class SimulatorASGI:
    """Serves a WeChatSimulator over HTTP (uvicorn), for tests that need a real socket."""

    def __init__(self, simulator: WeChatSimulator) -> None:
        self.simulator = simulator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope.get("query_string", b"").decode()
        url = f"http://wechat.local{scope['path']}" + (f"?{query}" if query else "")
        request = httpx.Request(scope["method"], url, content=body)
        # The simulator may sleep (fail.timeout): keep the event loop free for other requests.
        response = await anyio.to_thread.run_sync(self.simulator, request)
        headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.content})


def main() -> None:
    """Serve the simulator on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--appid", default="")
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    print(json.dumps({"wechat_simulator": f"http://127.0.0.1:{args.port}"}), flush=True)
    uvicorn.run(SimulatorASGI(WeChatSimulator(args.appid, args.secret)), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
