"""Structured JSON logs: the formatter, the scrubbing, the request context, configure_logging."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter

from shared import logs
from shared.api.app import create_app
from shared.api.handler import lambda_handler
from shared.logs import JsonFormatter, configure_logging, hash_openid, request_context, scrub
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
