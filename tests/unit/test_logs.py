"""Structured JSON logs: the formatter, the scrubbing, the request context, configure_logging."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import logs
from shared.api.app import create_app
from shared.api.handler import lambda_handler
from shared.logs import JsonFormatter, configure_logging, hash_openid, request_context, scrub
from tests.forked import measured
from tests.lambda_events import apigw_v2, lambda_context


def formatted(message: str, *args: Any, **extra: Any) -> dict[str, Any]:
    record = logging.LogRecord("shared.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_line_is_one_json_object_with_the_request_context_and_extra_fields():
    assert set(formatted("hello %s", "world")) == {"ts", "level", "logger", "message"}
    with request_context("req-1"):
        logs.bind_openid("oABC-openid")
        entry = formatted("步骤 %d", 2, route="/api/v1/user/profile", status=200)
    assert entry["message"] == "步骤 2" and entry["level"] == "INFO" and entry["logger"] == "shared.test"
    assert entry["request_id"] == "req-1" and entry["openid_hash"] == hash_openid("oABC-openid")
    assert (entry["route"], entry["status"]) == ("/api/v1/user/profile", 200)
    assert entry["ts"].endswith("Z") and "oABC-openid" not in json.dumps(entry)
    assert "request_id" not in formatted("after the request")


def test_uvicorns_colour_copy_of_a_message_is_dropped_and_no_terminal_escape_is_kept():
    """uvicorn logs `extra={"color_message": ...}` (ANSI escapes): a JSON line holds neither."""
    entry = formatted(
        "Uvicorn running on %s (Press CTRL+C to quit)",
        "http://127.0.0.1:8000",
        color_message="Uvicorn running on \x1b[1m%s\x1b[0m (Press CTRL+C to quit)",
        status="\x1b[32m200 OK\x1b[0m",
    )
    assert "color_message" not in entry
    assert entry["message"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
    assert entry["status"] == "200 OK"
    assert "\x1b" not in json.dumps(entry) and "\\u001b" not in json.dumps(entry)


def test_the_openid_hash_is_short_stable_and_not_the_openid():
    assert hash_openid("o6_bmjrPTlm6_2sgVt7hMZOPfL2M") == hash_openid("o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
    assert len(hash_openid("x")) == 16 and hash_openid("a") != hash_openid("b")


def test_what_a_route_binds_in_a_worker_thread_reaches_the_requests_later_lines():
    # FastAPI runs sync routes in a worker thread with a copy of the context.
    with request_context("req-2") as state:
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(logs.bind_openid, "o-worker"))
        worker.start()
        worker.join()
        assert state.openid_hash == hash_openid("o-worker")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "GET /sns/jscode2session?appid=wx1&secret=s3cr3t-value&js_code=081abcDEF&grant_type=x",
            "s3cr3t-value",
        ),
        ("GET /sns/jscode2session?appid=wx1&secret=s3cr3t-value&js_code=081abcDEF&grant_type=x", "081abcDEF"),
        ('{"openid": "o1", "session_key": "tiihtNczf5v6AKRyjwEUhQ=="}', "tiihtNczf5v6AKRyjwEUhQ=="),
        ("{'code': 'alice.17', 'nickName': 'x'}", "alice.17"),
        ("headers: Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl in a message", "eyJzdWIiOiIxIn0"),
        (
            "refresh with s1mQx0e6mVb3rG1zIuWkqw.Vh0Zb1nX0oQbEJ8gq8i4c3F1jX3fW6mP2xkQYyq9l0E failed",
            "Vh0Zb1nX0",
        ),
        ("key tiihtNczf5v6AKRyjwEUhQ== rotated", "tiihtNczf5v6AKRyjwEUhQ=="),
        ("bound 13800138000 to the user", "13800138000"),
        ("bound +86 13800138000", "13800138000"),
        ("phoneNumber=13800138000&x=1", "13800138000"),
        (
            '{"encryptedData": "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZM", "iv": "r7BXXKkLb8qrSNn05n0qiA=="}',
            "CiyLU1Aw2K",
        ),
        ('{"encryptedData": "x", "iv": "r7BXXKkLb8qrSNn05n0qiA=="}', "r7BXXKkLb8qrSNn05n0qiA=="),
    ],
)
def test_anything_shaped_like_a_secret_is_scrubbed(text, secret):
    assert secret not in scrub(text)
    assert secret not in json.dumps(formatted("%s", text))


@pytest.mark.parametrize(
    "text",
    [
        "wechat attempt 1 at /sns/jscode2session failed: 错误码: 40029",
        'errcode=40029 {"code": 200, "message": "success"}',
        "request 5f0d3c1e9a2b4c7d8e6f1a2b3c4d5e6f took 12.5ms at 1767225600",
        "user 1767225600123 created_at_us 1767225600123456",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert scrub(text) == text


def test_exceptions_are_logged_scrubbed_with_their_type():
    try:
        raise ValueError("bad answer for js_code=081zzz")
    except ValueError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), (type(exc), exc, exc.__traceback__)
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["exc_type"] == "ValueError" and "Traceback" in entry["exc"] and "081zzz" not in entry["exc"]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger without any handler (as a fresh process has it), restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_wire = {
        name: logging.getLogger(name).level for name in (*logs.WIRE_LOGGERS, *logs.DUPLICATE_LOGGERS)
    }
    root.handlers = []
    yield root
    root.handlers = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_wire.items():
        logging.getLogger(name).setLevel(level)


def ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "_wx_login_json", False)]


def test_configure_logging_is_idempotent_and_reads_log_level(root_logger, monkeypatch, capsys):
    root_logger.handlers = []  # pytest's capturing handlers arrive after fixtures
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "debug")
    configure_logging()
    configure_logging()
    assert len(ours(root_logger)) == 1 and root_logger.level == logging.DEBUG
    logging.getLogger("shared.anything").debug("visible at DEBUG")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["message"] == "visible at DEBUG"

    monkeypatch.setenv("LOG_LEVEL", "")
    configure_logging()
    assert root_logger.level == logging.INFO

    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    configure_logging()
    assert root_logger.level == logging.INFO
    assert "LOG_LEVEL is not a log level" in capsys.readouterr().err


def test_libraries_that_log_urls_headers_or_bodies_stay_at_warning_even_at_debug(root_logger, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    configure_logging("DEBUG")
    for name in (
        "httpx",
        "httpcore",
        "httpcore.http11",
        "botocore",
        "botocore.endpoint",
        "pynamodb",
        "urllib3",
    ):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_on_lambda_the_runtimes_handler_formats_our_json_instead_of_a_second_writer(root_logger, monkeypatch):
    runtime = logging.StreamHandler()
    root_logger.handlers = [runtime]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "wx-login-prod-login")
    configure_logging()
    assert ours(root_logger) == [runtime] and isinstance(runtime.formatter, JsonFormatter)


def test_one_request_writes_one_line_not_mangums_too(root_logger, monkeypatch, capsys):
    """Mangum logs each request at INFO (`mangum.http`); the access log already has it: held at WARNING."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    for name in logs.DUPLICATE_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)  # as a fresh process has it
    router = APIRouter()

    @router.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    root_logger.handlers = []  # pytest's capturing handlers arrive after fixtures
    handler = lambda_handler(create_app(router), storage=False)
    response = handler(apigw_v2("GET", "/api/v1/ping"), lambda_context("req-ping"))
    assert response["statusCode"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("shared.api.access_log", lines[0]["message"])
    ], lines
    assert lines[0]["route"] == "/api/v1/ping" and lines[0]["request_id"] == "req-ping"
    assert not logging.getLogger("mangum.http").isEnabledFor(logging.INFO)
    assert logging.getLogger("mangum.http").isEnabledFor(logging.WARNING)


# --- Scrubbing time: linear in the text, whatever the text -----------------------------------------------
# A request can carry a 16 KiB body and a URL of tens of KiB; any of it can reach a log line. The old
# quoted-value pattern backtracked exponentially: `code="` and 40 backslashes in an unknown path held a
# CPU for minutes after the 404 had been sent.

# CPU seconds (time.process_time in a forked child, which runs nothing else): wall time on a shared
# machine swings with everyone else's work. A linear scrub of 64 KiB takes a few ms to a few tens.
SCRUB_SECONDS = 0.2
# Shaped like secrets, and one only its name gives away.
SECRETS = (
    "tiihtNczf5v6AKRyjwEUhQ==",
    "13800138000",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl",
)
NAMED_SECRET = "s3cr3t-value"
# Each repeated to the size under test: what makes a backtracking engine try many ways, or start over
# at every position.
ADVERSARIAL_UNITS = {
    "backslashes": "\\",
    "escaped-quotes": '\\"',
    "escape-then-newline": 'code="a\\\n',
    "open-double-quote-values": 'code="',
    "open-single-quote-values": "code='",
    "json-keys": '"code":"',
    "quoted-keys": '"key"="',
    "mixed-quotes": "code=\"x code='y ",
    "names-and-spaces": "session_key   ",
    "colon-spaces": "code:     ",
    "secret=": "secret=",
    "quotes": '"',
    "quote-pairs": "'\"",
    "colons": ":",
    "equals": "=",
    "jwt-starts-joined": "eyJ-",
    "jwt-one-dot": "eyJaaaa.",
    "jwt-no-signature-dot": "eyJaaaa.bbbb-",
    "refresh-token-like": "a" * 64 + ".",
    "dots": "a.",
    "base64": "A",
    "base64-almost-keys": "A" * 22 + "=",
    "digits": "1",
    "country-codes": "+86 ",
    "bearers": "bearer ",
    "bearer-spaces": "Bearer" + " " * 100,
    "words": "a",
    "dashes": "-",
}
SIZES = {"body-16KiB": 16 * 1024, "url-64KiB": 64 * 1024}


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def timed_scrubs(*texts: str) -> list[tuple[str, float]]:
    """`scrub()` of each text and the CPU seconds it took, in a forked child (which runs nothing else):
    a regression fails here, it cannot hang the test run."""

    def scrub_and_time() -> list[tuple[str, float]]:
        results = []
        for text in texts:
            started = time.process_time()
            results.append((scrub(text), time.process_time() - started))
        return results

    value: list[tuple[str, float]] = measured(scrub_and_time, timeout=10).value
    return value


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("unit", ADVERSARIAL_UNITS.values(), ids=ADVERSARIAL_UNITS.keys())
def test_scrubbing_is_fast_on_adversarial_text_and_still_redacts(unit, size):
    trap = repeated(unit, size)
    # Secrets after the trap, on a line of their own and on the same line, are still found (the trap
    # cut to leave room for them: a body is 16 KiB at most).
    trap_before = trap[: min(size, 16 * 1024) - 200]
    tails = ["\n" + " ".join(SECRETS), " " + " ".join(SECRETS)]
    results = timed_scrubs(trap, *(f"{trap_before}{tail} /x?secret={NAMED_SECRET}" for tail in tails))
    for _, seconds in results:
        assert seconds < SCRUB_SECONDS, seconds
    for scrubbed, _ in results[1:]:
        for secret in (*SECRETS, NAMED_SECRET):
            assert secret not in scrubbed, (secret, scrubbed[-200:])


def test_the_path_from_the_issue_is_scrubbed_at_once_through_the_formatter():
    path = '/api/v1/unknown/code="' + "\\" * 40

    def log_it() -> tuple[dict[str, Any], float]:
        started = time.process_time()
        entry = formatted("%s %s %d", "GET", path, 404, path=path)
        return entry, time.process_time() - started

    entry, seconds = measured(log_it, timeout=10).value
    assert seconds < SCRUB_SECONDS
    assert entry["path"] == '/api/v1/unknown/code="***"'
    # The same trap with more backslashes, at the size of a long URL or a body: still at once.
    for _, seconds in timed_scrubs(*('GET /x?code="' + "\\" * size for size in SIZES.values())):
        assert seconds < SCRUB_SECONDS, seconds


@pytest.mark.parametrize(
    "text",
    [
        '{"session_key": "tiihtNczf5v6AKRyjwEU',  # a line cut inside a quoted secret
        "{'code': 'alice.17\\",
        '"password": "hunter2\nnext line',
    ],
)
def test_a_quoted_secret_left_open_is_redacted_to_the_end_of_its_line(text):
    scrubbed = scrub(text)
    for part in ("tiihtNczf5v6AKRyjwEU", "alice.17", "hunter2"):
        assert part not in scrubbed
    assert scrubbed.endswith("next line") == text.endswith("next line")


def test_escaped_quotes_stay_inside_the_value():
    assert scrub('{"code": "a\\"b", "x": 1}') == '{"code": "***", "x": 1}'
    assert scrub("{'code': 'it\\'s', 'x': 1}") == "{'code': '***', 'x': 1}"


# The JWT scan by hand must find exactly what `\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*` found.
OLD_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")


@given(st.lists(st.sampled_from(["eyJ", "a", "Z9", "_", "-", ".", " ", "é", "=", "eyJabcd", "xeyJ"])))
@settings(max_examples=200, deadline=None)
def test_jwts_are_found_exactly_where_the_regex_found_them(parts):
    text = "".join(parts)
    assert logs._redact_jwts(text) == OLD_JWT.sub("[jwt]", text)


# --- Clipping: cut before scrubbing, never inside a token -------------------------------------------------


@pytest.mark.parametrize(
    "secret", ["tiihtNczf5v6AKRyjwEUhQ==", "13800138000", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"]
)
def test_a_long_field_is_clipped_before_the_token_the_cut_would_split(secret):
    limit = logs._MAX_FIELD_CHARS
    for cut_at in range(3, len(secret) - 2, 3):
        text = "x " * ((limit - cut_at) // 2) + secret + " and more"
        entry = formatted("%s", text, body=text)
        for field in ("message", "body"):
            value = entry[field]
            assert len(value) <= limit and value.endswith(logs.CLIPPED)
            assert secret[:cut_at] not in value, (cut_at, value[-40:])
    assert logs.clip("short", 10) == "short"
    assert logs.clip("one two three", 10) == "one two " + logs.CLIPPED


class Collected(logging.Handler):
    """Keeps every record, as the JSON object our formatter makes of it."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(JsonFormatter().format(record)))


def test_the_request_from_the_issue_is_answered_and_logged_at_once(root_logger, monkeypatch):
    """An unauthenticated GET of an unknown path ending in `code="` and 40 backslashes (issue 14)."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    handler = lambda_handler(create_app(APIRouter()))
    secret = "tiihtNczf5v6AKRyjwEUhQ=="
    trap = '/api/v1/x/code="' + "\\" * 40
    long_path = "/api/v1/" + "a/" * 50 + secret  # the access log's 128-character cut splits the key

    def requests() -> list[tuple[int, list[dict[str, Any]], float]]:
        answers = []
        for path in (trap, long_path):
            capture = Collected()
            root_logger.addHandler(capture)
            started = time.process_time()
            response = handler(apigw_v2("GET", path), lambda_context("req-trap"))
            answers.append((response["statusCode"], capture.entries, time.process_time() - started))
            root_logger.removeHandler(capture)
        return answers

    (status, lines, seconds), (long_status, long_lines, _) = measured(requests, timeout=10).value
    assert status == 404 and seconds < SCRUB_SECONDS
    assert [line["path"] for line in lines] == ['/api/v1/x/code="***"']
    assert long_status == 404 and long_lines[0]["path"].endswith(logs.CLIPPED)
    assert secret[:10] not in json.dumps(long_lines)
