"""Shared fixtures. The environment is fixed here, before any `shared` module reads settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEST_ENV = {
    "STAGE": "local",
    "WX_APPID": "wx-test-appid",
    "WX_SECRET": "wx-test-secret-value-0123456789",
    "WX_API_BASE": "https://api.weixin.qq.com",
    "JWT_SECRET": "test-jwt-secret-that-is-long-enough-0123456789",
    "SESSION_KEY_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Tests log one user in many times a second: the login limits (tests/integration/test_rate_limits.py
    # sets its own) must not get in their way.
    "LOGIN_LIMIT_PER_OPENID": "10000",
    "LOGIN_FAILURE_LIMIT_PER_IP": "100000",
    # Tests run many requests at once on a shared machine (50 concurrent logins in one dev server):
    # their requests get a generous deadline, except where the deadline is what is tested
    # (tests/integration/test_request_deadline.py sets the deployed budget itself).
    "REQUEST_BUDGET_S": "30",
}
os.environ.update(TEST_ENV)
os.environ.pop("DYNAMODB_ENDPOINT", None)

from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from moto import mock_aws  # noqa: E402

from local.wechat_sim import WeChatSimulator  # noqa: E402
from shared import clock  # noqa: E402
from shared.settings import Settings, get_settings  # noqa: E402
from shared.wechat import WeChatClient  # noqa: E402


@pytest.fixture
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def aws() -> Iterator[None]:
    """Moto's in-memory DynamoDB with the service's tables, fresh for each test."""
    from local.moto_atomic import make_moto_atomic
    from shared.models import create_tables

    make_moto_atomic()  # each request atomic, as on DynamoDB (concurrency tests rely on it)
    with mock_aws():
        create_tables()
        yield


@pytest.fixture
def simulator(settings: Settings) -> WeChatSimulator:
    return WeChatSimulator(appid=settings.wx_appid, secret=settings.wx_secret)


@pytest.fixture
def wechat(settings: Settings, simulator: WeChatSimulator) -> WeChatClient:
    """A real WeChatClient whose transport is the in-process simulator."""
    return WeChatClient(settings, transport=httpx.MockTransport(simulator))


@pytest.fixture
def app(aws: None, wechat: WeChatClient) -> FastAPI:
    """Every route in one app, as `make dev` serves them."""
    from local.devserver import build_app
    from shared.api.routes.login import wechat_client

    application = build_app()
    application.dependency_overrides[wechat_client] = lambda: wechat
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def login(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Log a simulator user in; answers the envelope's data."""
    counter = iter(range(1_000_000))

    def do_login(name: str = "alice", **fields: Any) -> dict[str, Any]:
        response = client.post("/api/v1/auth/wx-login", json={"code": f"{name}.{next(counter)}", **fields})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    return do_login


class Clock:
    """Moves the service's clock (shared.clock.now) forward in tests."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock()
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + moving.offset)
    return moving


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ROOT = Path(__file__).resolve().parents[1]


def run_python(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter with only `env` on top of the machine's environment."""
    clean = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result
