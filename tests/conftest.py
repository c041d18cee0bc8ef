"""Shared fixtures. The environment is fixed here, before any `shared` module reads settings (settings
are read when a fixture or a request first asks for them, never at import)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto import mock_aws

from local.wechat_sim import WeChatSimulator
from shared import clock
from shared.api.deps import storage as storage_dependency
from shared.settings import Settings, get_settings
from shared.storage.base import Storage
from shared.wechat import WeChatClient
from tests.backends import BACKEND_NAMES, open_backend

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
os.environ.pop("STORAGE", None)

# Tests that only make sense on DynamoDB (its item layout, moto's fault injection): the `storage`
# fixture, and so the app, on that backend alone.
dynamodb_only = pytest.mark.parametrize("storage", ["dynamodb"], indirect=True)


@pytest.fixture
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def aws() -> Iterator[None]:
    """Moto's in-memory AWS (S3, SSM), fresh for each test; DynamoDB is the `storage` fixture's."""
    with mock_aws():
        yield


@pytest.fixture(params=BACKEND_NAMES)
def storage(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Storage]:
    """A fresh, empty store of each backend in turn (tests/backends.py): every test that touches
    storage runs against every backend. A backend this checkout lacks is skipped."""
    name = str(request.param)
    try:
        importlib.import_module(f"tests.backend_{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"tests.backend_{name}":
            raise
        pytest.skip(f"tests/backend_{name}.py not present")
    with open_backend(name, settings) as store:
        yield store


@pytest.fixture
def round_trips(request: pytest.FixtureRequest, storage: Storage) -> Callable[[], Any]:
    """`with round_trips() as calls:` counts the storage round trips of the block by operation
    (the backend module's `round_trips(storage)` hook)."""
    name = str(request.node.callspec.params["storage"])
    hook = importlib.import_module(f"tests.backend_{name}").round_trips
    return lambda: hook(storage)


def serve_storage(app: FastAPI, store: Storage) -> None:
    """Make `app` talk to `store` (as the process's storage is overridden in every test)."""
    app.dependency_overrides[storage_dependency] = lambda: store


@pytest.fixture
def simulator(settings: Settings) -> WeChatSimulator:
    return WeChatSimulator(appid=settings.wx_appid, secret=settings.wx_secret)


@pytest.fixture
def wechat(settings: Settings, simulator: WeChatSimulator) -> WeChatClient:
    """A real WeChatClient whose transport is the in-process simulator."""
    return WeChatClient(settings, transport=httpx.MockTransport(simulator))


@pytest.fixture
def app(aws: None, storage: Storage, wechat: WeChatClient) -> FastAPI:
    """Every route in one app, as `make dev` serves them, on this test's storage."""
    from local.devserver import build_app
    from shared.api.routes.login import wechat_client

    application = build_app()
    application.dependency_overrides[wechat_client] = lambda: wechat
    serve_storage(application, storage)
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


@pytest.fixture
def stopped_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The service's clock standing still, moved only by `advance`: the edges of time windows are
    tested exactly, however slowly a loaded machine runs the requests in between."""
    moving = Clock()
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start + moving.offset)
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
