"""A WeChat server API simulator for `make dev` and the tests.

Codes it understands (documented in the README):
- `NAME` or `NAME.ANYTHING`: logs in user NAME (openid `sim-NAME`, unionid `sim-union-NAME`).
  Each code works once, as on WeChat; a second exchange answers 40163 (the server answers a retry of
  a code that succeeded within 5 minutes itself, without asking WeChat: shared/login_replay.py).
- `fail.ERRCODE`: answers that errcode (e.g. `fail.40029`, `fail.45011`, `fail.-1`).
- `fail.http500`, `fail.html` (an HTML 502 page), `fail.timeout` (answers after 30 s: in-process, a
  `httpx.ReadTimeout` once the request's read timeout is up, as a socket would, so the client's
  WX_TIMEOUT_S and retry budget apply; over a socket, the client's own timeout does).
- `flaky.N.NAME`: answers -1 for the first N exchanges of this code, then logs in NAME.

The server access_token and what session_key is for:
- `POST /cgi-bin/stable_token` answers `simulator.access_token` (made on first use, 7200 s), a new one
  with `force_refresh: true`; `simulator.revoke_access_token()` invalidates it, as another server's
  forced refresh would. APIs below answer 41001/40001 to a missing/stale `access_token`.
- `POST /wxa/business/getuserphonenumber` (phone codes from the getPhoneNumber button):
  `phone.DIGITS` or `phone.DIGITS.ANYTHING` binds number DIGITS (country code 86), once per code;
  `fail.ERRCODE` answers that errcode (e.g. `fail.40029`, `fail.45011`); anything else answers 40029.
- `GET /wxa/checksession`: errcode 0 iff `signature` is hmac_sha256(session_key, "") of the latest
  session_key issued for `openid`, else 87009.
- `simulator.encrypt_for(openid, data)`: (encryptedData, iv) as the phone would get them (legacy
  getPhoneNumber, WeRun, share info): `data` plus our watermark under that user's latest session_key.

Content security (`POST /wxa/msg_sec_check`, v2, needs the access_token and an openid):
- text containing `违禁词` is `risky` (label 20006), `待审核` is `review` (label 21000), `系统繁忙` answers
  -1 (system busy, every time: WeChat unavailable); anything else is `pass`.
- every checked text is recorded in `simulator.checked_texts` as (openid, scene, content).

Use it in-process as an httpx transport (`httpx.MockTransport(simulator)`) or serve it on a port:
`python -m local.wechat_sim --port 9000`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from typing import Any

import anyio.to_thread
import httpx

from shared.wxcrypto import encrypt_open_data, session_signature

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
    40001: "invalid credential, access_token is invalid or not latest",
    42001: "access_token expired",
    41001: "access_token missing",
    87009: "invalid signature",
}
ACCESS_TOKEN_TTL_S = 7200
SLOW_ANSWER_S = 30.0
# A response's extension: seconds the simulator waits before giving it (fail.timeout).
DELAY_EXTENSION = "wx_sim.delay_s"
# msg_sec_check: the words that make the simulator reject, hold for review, or fail.
RISKY_WORD = "违禁词"
REVIEW_WORD = "待审核"
BUSY_WORD = "系统繁忙"


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
        self.checked_texts: list[tuple[str, int, str]] = []
        # The app's current server access_token (stable_token); None until first asked for.
        self.access_token: str | None = None
        self.token_expires_in = ACCESS_TOKEN_TTL_S
        self._used_phone_codes: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """WeChat's answer to `request`, after the delay it simulates (see `_wait`)."""
        response = self._answer(request)
        delay = response.extensions.get(DELAY_EXTENSION)
        if isinstance(delay, float):
            _wait(request, delay)
        return response

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls[path] += 1
        if path == "/sns/jscode2session":
            return self._jscode2session(request)
        if path == "/cgi-bin/stable_token":
            return self._stable_token(request)
        if path == "/wxa/business/getuserphonenumber":
            return self._get_user_phone_number(request)
        if path == "/wxa/checksession":
            return self._check_session(request)
        if path == "/wxa/msg_sec_check":
            return self._msg_sec_check(request)
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
            _, count, name = code.split(".", 2) if code.count(".") >= 2 else ("", "", "")
            if not (count.isascii() and count.isdigit() and name):
                return _error(40029)  # a malformed control code is an invalid code, never a crash
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

    # Server access_token and what session_key is for (issue 5).

    def revoke_access_token(self) -> None:
        """Invalidate the current access_token, as another server's forced refresh would (-> 40001)."""
        with self._lock:
            self.access_token = None

    def access_token_error(self, request: httpx.Request) -> int:
        """0 when `?access_token=` is the current one, else 41001 (missing) or 40001 (invalid)."""
        given = request.url.params.get("access_token", "")
        if not given:
            return 41001
        with self._lock:
            current = self.access_token
        return 0 if current is not None and hmac.compare_digest(given, current) else 40001

    def encrypt_for(self, openid: str, data: dict[str, Any]) -> tuple[str, str]:
        """(encryptedData, iv) as the phone gets them: `data` + watermark under the latest session_key."""
        watermark = {"timestamp": int(time.time()), "appid": self.appid}
        return encrypt_open_data(self.session_keys[openid], {**data, "watermark": watermark})

    def _stable_token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return _error(43002)
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return _error(47001)
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return _error(40002)
        if self.appid and body.get("appid") != self.appid:
            return _error(40013)
        if self.secret and body.get("secret") != self.secret:
            return _error(40125)
        with self._lock:
            if self.access_token is None or body.get("force_refresh") is True:
                self.access_token = "sim-token-" + secrets.token_urlsafe(24)
            token = self.access_token
        return _json({"access_token": token, "expires_in": self.token_expires_in})

    def _get_user_phone_number(self, request: httpx.Request) -> httpx.Response:
        token_error = self.access_token_error(request)
        if token_error:
            return _error(token_error)
        try:
            code = json.loads(request.content or b"{}").get("code", "")
        except (ValueError, AttributeError):
            return _error(47001)
        if not isinstance(code, str) or not code:
            return _error(41008)
        if code.startswith("fail."):
            return _failure(code.removeprefix("fail."))
        number = code.removeprefix("phone.").partition(".")[0]
        if not code.startswith("phone.") or not number.isdigit():
            return _error(40029)
        with self._lock:
            if code in self._used_phone_codes:
                return _error(40029)
            self._used_phone_codes.add(code)
        watermark = {"timestamp": int(time.time()), "appid": self.appid}
        phone_info = {
            "phoneNumber": number,
            "purePhoneNumber": number,
            "countryCode": "86",
            "watermark": watermark,
        }
        return _json({"errcode": 0, "errmsg": "ok", "phone_info": phone_info})

    def _check_session(self, request: httpx.Request) -> httpx.Response:
        token_error = self.access_token_error(request)
        if token_error:
            return _error(token_error)
        params = request.url.params
        if params.get("sig_method") != "hmac_sha256":
            return _error(87009)
        with self._lock:
            session_key = self.session_keys.get(params.get("openid", ""))
        expected = session_signature(session_key) if session_key else ""
        if not expected or not hmac.compare_digest(params.get("signature", ""), expected):
            return _error(87009)
        return _json({"errcode": 0, "errmsg": "ok"})

    def _msg_sec_check(self, request: httpx.Request) -> httpx.Response:
        token_error = self.access_token_error(request)
        if token_error:
            return _error(token_error)
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return _error(47001)
        content, openid, scene = body.get("content"), body.get("openid"), body.get("scene")
        if body.get("version") != 2 or scene not in (1, 2, 3, 4) or not isinstance(content, str):
            return _error(40097)  # invalid args
        if not isinstance(openid, str) or not openid:
            return _error(40003)  # invalid openid
        with self._lock:
            self.checked_texts.append((openid, scene, content))
        if BUSY_WORD in content:
            return _error(-1)
        suggest, label = "pass", 100
        if RISKY_WORD in content:
            suggest, label = "risky", 20006
        elif REVIEW_WORD in content:
            suggest, label = "review", 21000
        detail = [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label, "prob": 90}]
        return _json(
            {
                "errcode": 0,
                "errmsg": "ok",
                "result": {"suggest": suggest, "label": label},
                "detail": detail,
                "trace_id": _rid(),
            }
        )


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
        response = _error(-1)
        response.extensions[DELAY_EXTENSION] = SLOW_ANSWER_S
        return response
    try:
        return _error(int(kind))
    except ValueError:
        return _error(40029)


def _wait(request: httpx.Request, delay: float) -> None:
    """Sleep `delay` seconds before answering, or raise ReadTimeout when the request's read timeout
    (httpx passes it to the transport) is shorter, after that timeout: what a socket read does."""
    timeout = (request.extensions.get("timeout") or {}).get("read")
    if isinstance(timeout, int | float) and timeout < delay:
        time.sleep(timeout)
        raise httpx.ReadTimeout("the simulated WeChat did not answer in time", request=request)
    time.sleep(delay)


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
