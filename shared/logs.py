"""Structured logs: one JSON object per line, tagged with the request id and a hashed openid.

Every line is a JSON object with `ts`, `level`, `logger`, `message`, and, inside a request,
`request_id` and (once the caller's user is known) `openid_hash`; fields passed with `extra=` follow.

What may appear in a log line, by decision:
- the openid only as `openid_hash`, the first 16 hex digits of sha256(openid): enough to follow one
  user across lines (an operator who has an openid can compute its hash and search for it), while
  a log reader learns no identifier WeChat would accept. Openids are long random strings, so the
  hash cannot be reversed by guessing.
- never a session_key, token, login or phone code, phone number, app secret or key. Our code does not
  log them, libraries that log URLs, headers or bodies (WeChat URLs carry `secret=` and `js_code=`)
  are held at WARNING whatever `LOG_LEVEL` says, and as a last line of defence every line is scrubbed
  of anything shaped like a secret (`secret=...`, `"session_key": "..."`, bearer tokens, JWTs, refresh
  tokens, 16-byte base64 keys, mainland mobile numbers).

`configure_logging()` is idempotent and cheap: the app factory calls it for every function.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from shared.clock import iso_ms

LOG_LEVEL_ENV = "LOG_LEVEL"
DEFAULT_LEVEL = logging.INFO
# Libraries that log request URLs, headers or bodies below WARNING: httpx logs every URL at INFO (WeChat's
# carry the app secret and the user's code), botocore logs headers (the session token on Lambda) and items.
WIRE_LOGGERS = ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3", "pynamodb")
WIRE_LEVEL = logging.WARNING
# Mangum logs every request at INFO (`mangum.http`: "GET /path 200"), which our access log already does
# with more (shared/api/access_log.py): held at WARNING too, one line per request instead of two.
DUPLICATE_LOGGERS = ("mangum",)
# Set by the runtimes whose root logger already has a handler of their own (Lambda's writes each record
# as one CloudWatch event): we format through it instead of adding a second writer of every line.
_RUNTIME_ENV = ("AWS_LAMBDA_FUNCTION_NAME", "SCF_FUNCTIONNAME")
_MAX_FIELD_CHARS = 8000

_SECRET_NAMES = (
    r"secret|js_code|code|session_?key|access_?token|refresh_?token|token|phone_?code|phone_?number"
    r"|pure_?phone_?number|encrypted_?data|iv|signature|password|authorization|key"
)
# A name's first letter, looked ahead for first: most characters are refused by one class test instead of
# one test per name (measured: 8x faster over a run of quotes or colons).
_NAME_START = "[" + "".join(sorted({name[0] for name in _SECRET_NAMES.split("|")})) + "]"
# Every pattern runs in time linear in the text, whatever the text (a request path or body can be anything):
# no two ways through a pattern may match the same characters, or the engine tries them all. Checked
# against adversarial inputs in tests/unit/test_logs.py.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # `"session_key": "..."`, `'code': '...'` (JSON, dict reprs): a quoted value under a secret's name.
    # A character of the value is either an escape pair (starts with a backslash) or a plain character
    # (is not one): never both, so each is read once. (`(?:\\.|(?!q).)*` read a backslash both ways:
    # `code="` and 40 backslashes took minutes.) A value still open at the end of its line is redacted
    # to there: a line cut inside a value must not show its first part.
    (
        re.compile(
            rf"""(?im)(?=["']|{_NAME_START})(?<![\w-])(["']?)(?={_NAME_START})({_SECRET_NAMES})\1(\s*[:=]\s*)(["'])(?:\\.|(?!\4)[^\\\n])*(?:\4|\\?$)"""
        ),
        r"\1\2\1\3\4***\4",
    ),
    # `secret=...&js_code=...` in URLs and messages.
    (re.compile(rf"(?i)(?={_NAME_START})(?<![\w-])({_SECRET_NAMES})=([^&\s\"',;)\]}}]+)"), r"\1=***"),
    (re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+"), "Bearer ***"),
)
# (JWTs: `_redact_jwts`, between the patterns above and below, as `\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*` would.)
_LATER_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Our refresh tokens: `<session id>.<43 base64url characters>`.
    (re.compile(r"(?<![\w-])[\w-]{16,64}\.[\w-]{43}(?![\w-])"), "[refresh-token]"),
    # 16 bytes in base64 (a session_key, an AES IV).
    (re.compile(r"(?<![\w+/=])[A-Za-z0-9+/]{22}==(?![\w+/=])"), "[b64-16]"),
    # A mainland mobile number, with or without +86.
    (re.compile(r"(?<![\w+])(?:\+?86[- ]?)?1[3-9]\d{9}(?!\w)"), "[phone]"),
)
_JWT_START = "eyJ"
_WORD_CHARACTER = re.compile(r"\w")
_SEGMENT = re.compile(r"[\w-]*")
_TOKEN = re.compile(r"\S*")
CLIPPED = "\u2026"


def _redact_jwts(text: str) -> str:
    """`text` with every JWT (`eyJ<4+ chars>.<4+ chars>.<signature>`, base64url) replaced by `[jwt]`.

    Scanned by hand: as a regex, every `eyJ` in a long run like `eyJ-eyJ-eyJ-...` read the run to its
    end again (quadratic). Here a run is read once: all the `eyJ` of one run share its end and what
    follows it, so if the first of them starts no JWT, none does.
    """
    pieces: list[str] = []
    settled = 0
    start = text.find(_JWT_START)
    while start >= 0:
        if start > 0 and _WORD_CHARACTER.match(text, start - 1):
            start = text.find(_JWT_START, start + 1)  # inside a word, not at its start
            continue
        end = header_end = _segment_end(text, start + len(_JWT_START))
        if header_end - start >= len(_JWT_START) + 4 and text.startswith(".", header_end):
            payload_end = _segment_end(text, header_end + 1)
            if payload_end - header_end > 4 and text.startswith(".", payload_end):
                end = _segment_end(text, payload_end + 1)
                pieces += (text[settled:start], "[jwt]")
                settled = end
        start = text.find(_JWT_START, end)
    return "".join(pieces) + text[settled:] if pieces else text


def _segment_end(text: str, start: int) -> int:
    found = _SEGMENT.match(text, start)
    return found.end() if found else start


def scrub(text: str) -> str:
    """`text` with anything shaped like a secret replaced. Linear time in `len(text)`."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    text = _redact_jwts(text)
    for pattern, replacement in _LATER_REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (then marked `…`), cut before the word it would split.

    Clip before scrubbing, never after (a cut after scrubbing could undo a redaction); and a cut inside a
    token would leave a secret's first part, which no pattern recognises (21 characters of a base64 key,
    10 digits of a phone number), so the whole split token goes.
    """
    if len(text) <= limit:
        return text
    kept = text[: max(limit - len(CLIPPED), 0)]
    split_token = _TOKEN.match(kept[::-1])
    return kept[: len(kept) - (split_token.end() if split_token else 0)] + CLIPPED


def hash_openid(openid: str) -> str:
    """How an openid appears in logs: the first 16 hex digits of its sha256."""
    return hashlib.sha256(openid.encode()).hexdigest()[:16]


@dataclass
class RequestLog:
    """What every log line of one request carries. Mutable on purpose: FastAPI runs sync routes in a
    worker thread with a copy of the context, and the access log must see what the route bound."""

    request_id: str
    openid_hash: str | None = None


_current: ContextVar[RequestLog | None] = ContextVar("wx_login_request_log", default=None)


@contextmanager
def request_context(request_id: str) -> Iterator[RequestLog]:
    """Tag every log line written inside the block with `request_id`."""
    state = RequestLog(request_id)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


def bind_openid(openid: str) -> None:
    """Tag the current request's further log lines (and its access log line) with the openid's hash."""
    state = _current.get()
    if state is not None and openid:
        state.openid_hash = hash_openid(openid)


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_RESERVED = frozenset({"ts", "level", "logger", "message", "request_id", "openid_hash", "exc_type", "exc"})
# uvicorn adds its message again with terminal colours (`extra={"color_message": ...}`): not for JSON.
_DROPPED = frozenset({"color_message"})
_NOT_EXTRA = _RECORD_ATTRIBUTES | _RESERVED | _DROPPED
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _field(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = clip(str(value), _MAX_FIELD_CHARS)
    return scrub(_ANSI.sub("", text) if "\x1b" in text else text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one scrubbed JSON object (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _field(record.getMessage()),
        }
        state = _current.get()
        if state is not None:
            entry["request_id"] = state.request_id
            if state.openid_hash:
                entry["openid_hash"] = state.openid_hash
        for name, value in record.__dict__.items():
            if name not in _NOT_EXTRA and not name.startswith("_"):
                entry[name] = _field(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = _field("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it), like logging's lastResort."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


_OURS = "_wx_login_json"


def _level_from_env() -> tuple[int, str | None]:
    raw = os.environ.get(LOG_LEVEL_ENV, "").strip().upper()
    if not raw:
        return DEFAULT_LEVEL, None
    level = logging.getLevelName(raw)
    if isinstance(level, int):
        return level, None
    return DEFAULT_LEVEL, raw


def configure_logging(level: int | str | None = None) -> None:
    """JSON lines on the root logger at `level` (default: the `LOG_LEVEL` variable, else INFO).

    Idempotent: a second call only re-applies the levels. Libraries that log wire data, and Mangum
    (its request line repeats the access log), stay at WARNING.
    """
    bad_name = None
    if level is None:
        level, bad_name = _level_from_env()
    root = logging.getLogger()
    if not any(getattr(handler, _OURS, False) for handler in root.handlers):
        formatter = JsonFormatter()
        runtime_handlers = root.handlers if any(os.environ.get(name) for name in _RUNTIME_ENV) else []
        for handler in runtime_handlers:
            handler.setFormatter(formatter)
            setattr(handler, _OURS, True)
        if not runtime_handlers:
            handler = _StderrHandler()
            handler.setFormatter(formatter)
            setattr(handler, _OURS, True)
            root.addHandler(handler)
    root.setLevel(level)
    for name in (*WIRE_LOGGERS, *DUPLICATE_LOGGERS):
        wire = logging.getLogger(name)
        wire.setLevel(max(WIRE_LEVEL, wire.level))
    if bad_name is not None:
        logging.getLogger(__name__).warning("%s is not a log level; using INFO", LOG_LEVEL_ENV)
