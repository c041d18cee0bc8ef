"""Schemathesis against the app's own OpenAPI schema: every operation, without and with a valid
bearer token, answers in the envelope (status == `code`), as documented, and never with a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.devserver import build_app
from local.wechat_sim import WeChatSimulator
from shared.api.routes.login import wechat_client
from shared.settings import get_settings
from shared.storage.base import Storage
from shared.wechat import WeChatClient
from tests.conftest import serve_storage

SUCCESS_KEYS = {"code", "message", "data", "timestamp"}
ERROR_KEYS = {"code", "message", "error", "reason", "timestamp"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
LOGIN = "/api/v1/auth/wx-login"

# Loading the schema needs no storage; every call runs on the test's own (the `storage` fixture).
APP = build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
_codes = count()


def plain_simulator(simulator: WeChatSimulator) -> httpx.MockTransport:
    """The simulator without its outage control codes (`fail.`, `flaky.`): their 503s are on purpose."""

    def handle(request: httpx.Request) -> httpx.Response:
        code = request.url.params.get("js_code", "")
        if code.startswith(("fail.", "flaky.")):
            url = request.url.copy_set_param("js_code", "x" + code)
            request = httpx.Request(request.method, url, headers=request.headers, content=request.content)
        return simulator(request)

    return httpx.MockTransport(handle)


@pytest.fixture
def api(aws: None, storage: Storage) -> Iterator[TestClient]:
    """The schema's app on this test's storage, WeChat answered by the plain simulator."""
    config = get_settings()
    simulator = WeChatSimulator(config.wx_appid, config.wx_secret)
    client = WeChatClient(config, transport=plain_simulator(simulator))
    APP.dependency_overrides[wechat_client] = lambda: client
    serve_storage(APP, storage)
    with TestClient(APP, raise_server_exceptions=False) as test_client:
        yield test_client
    APP.dependency_overrides.clear()


class Bearer:
    """A valid access token, reused across examples until an example logs its session out."""

    def __init__(self, api: TestClient) -> None:
        self.api = api
        self.token: str | None = None

    def header(self) -> dict[str, str]:
        if self.token is None:
            login = self.api.post(LOGIN, json={"code": f"schemathesis.{next(_codes)}"})
            self.token = str(login.json()["data"]["access_token"])
        return {"Authorization": f"Bearer {self.token}"}

    def after(self, case: Any, response: Any) -> None:
        if response.status_code == 401 or case.path.endswith("/auth/logout"):
            self.token = None  # logged out (or revoked): the next example logs in again


@pytest.fixture
def bearer(api: TestClient) -> Bearer:
    return Bearer(api)


def in_the_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every answer is JSON in the contract's envelope, with HTTP status == `code`."""
    body = response.json()
    assert isinstance(body, dict), body
    keys = set(body) - ({"keys"} if case.path == "/.well-known/jwks.json" else set())
    assert keys == (SUCCESS_KEYS if response.status_code == 200 else ERROR_KEYS), body
    assert body["code"] == response.status_code, body
    assert "session_key" not in response.text
    return None


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_in_the_envelope_without_5xx(case, bearer):
    case.call_and_validate(checks=CHECKS, additional_checks=[in_the_envelope])
    with_token = case.call_and_validate(
        headers=bearer.header(), checks=CHECKS, additional_checks=[in_the_envelope]
    )
    bearer.after(case, with_token)


def test_the_plain_simulator_has_no_outage_codes(api):
    # Otherwise a generated code like "fail.-1" would be a (correct) 503 failing the no-5xx check.
    for code in ("fail.-1", "fail.45011", "flaky.9.x"):
        assert api.post(LOGIN, json={"code": code}).status_code == 200, code
