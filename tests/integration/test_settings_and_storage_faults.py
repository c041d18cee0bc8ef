"""Misconfiguration and DynamoDB failures, each in a fresh interpreter (settings are read once)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_ENV, run_python

ROOT = Path(__file__).resolve().parents[2]

INVOKE = """
import json, sys, time
from tests.lambda_events import apigw_v2, lambda_context
import functions.{function} as fn
event = apigw_v2({method!r}, {path!r}, {body!r}, headers={headers!r})
started = time.monotonic()
response = fn.handler(event, lambda_context())
print(json.dumps({{"status": response["statusCode"], "body": json.loads(response["body"]),
                  "elapsed": time.monotonic() - started}}))
"""


def invoke(env: dict[str, str], function: str, method: str, path: str, body=None, headers=None):
    script = INVOKE.format(function=function, method=method, path=path, body=body, headers=headers or {})
    result = run_python(script, env)
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


PROD_ENV = {
    "STAGE": "prod",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.mark.parametrize(
    ("function", "method", "path"),
    [
        ("login", "POST", "/api/v1/auth/wx-login"),
        ("refresh", "POST", "/api/v1/auth/refresh"),
        ("logout", "POST", "/api/v1/auth/logout"),
        ("profile", "GET", "/api/v1/user/profile"),
    ],
)
def test_outside_local_a_missing_setting_answers_every_request_server_misconfigured(function, method, path):
    env = {**PROD_ENV, "WX_APPID": "wx-prod", "WX_SECRET": "prod-secret-value", "JWT_SECRET": "short"}
    result, logs = invoke(env, function, method, path, {"code": "abc"})
    assert result["status"] == 500 and result["body"]["reason"] == "SERVER_MISCONFIGURED"
    message = result["body"]["message"]
    assert "JWT_SECRET" in message and "SESSION_KEY_ENCRYPTION_KEY" in message
    assert "short" not in message and "prod-secret-value" not in message and "prod-secret-value" not in logs
    assert logs.count("server misconfigured") == 1


def test_dev_server_refuses_to_start_with_unsafe_settings():
    env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
    env.update(STAGE="local", JWT_SECRET="too-short", PORT="1")
    result = subprocess.run(
        [sys.executable, "-m", "local.devserver"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr and "too-short" not in result.stderr


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never answers: a hung DynamoDB."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def valid_token_env(endpoint: str) -> tuple[dict[str, str], str]:
    env = {**TEST_ENV, "DYNAMODB_ENDPOINT": endpoint}
    script = (
        "import time; from shared.settings import get_settings; from shared.keys import jwt_keys;"
        "from shared.tokens import issue_access_token; s = get_settings();"
        "print(issue_access_token(s, jwt_keys(s), user_id=1, openid='o', nickname='',"
        " sid='sid', now=time.time()))"
    )
    token = run_python(script, env).stdout.strip()
    return env, token


@pytest.mark.parametrize("kind", ["refused", "hung"])
def test_dynamodb_failure_is_storage_unavailable_within_ten_seconds(kind, request):
    port = closed_port() if kind == "refused" else request.getfixturevalue("silent_port")
    env, token = valid_token_env(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result, logs = invoke(
        env, "profile", "GET", "/api/v1/user/profile", headers={"authorization": f"Bearer {token}"}
    )
    assert result["status"] == 503 and result["body"]["reason"] == "STORAGE_UNAVAILABLE"
    assert result["elapsed"] < 10 and time.monotonic() - started < 15
    assert token not in logs
