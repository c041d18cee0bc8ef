"""DynamoDB failing at every single call of every flow: throttling (after the SDK's retries) and
conditional-check failures.

For each flow the calls of a clean run are recorded, then the flow is run again once per call with that
call failing. Whatever fails, the answer is never a 500 and never carries a token unless everything it
stands for was stored; and the same operation retried at once with storage healthy succeeds, so nothing
was left half-written.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.crypto import sha256_hex
from shared.storage.base import Session, Storage
from shared.storage.dynamodb import DynamoDBStorage
from tests.conftest import bearer, dynamodb_only
from tests.storage_faults import CONDITION_FAILED, THROTTLED, DynamoFaults, dynamo_faults

pytestmark = dynamodb_only

names = (f"fault{n}" for n in itertools.count())
codes = (f"{n}" for n in itertools.count())


@pytest.fixture
def faults(storage: Storage) -> Iterator[DynamoFaults]:
    with dynamo_faults(storage) as injected:
        yield injected


def fresh_login(client: TestClient, name: str | None = None) -> dict[str, Any]:
    response = client.post("/api/v1/auth/wx-login", json={"code": f"{name or next(names)}.{next(codes)}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def no_token_unless_ok(response: Any) -> None:
    assert response.status_code != 500, response.text
    if response.status_code != 200:
        body = response.json()
        assert body["reason"] in {
            "STORAGE_UNAVAILABLE",
            "REFRESH_TOKEN_INVALID",
            "SESSION_REVOKED",
            "RATE_LIMITED",
        }, body
        assert "access_token" not in response.text and "refresh_token" not in response.text


def sessions_of(storage: Storage, openid: str) -> list[Session]:
    return [session for session in storage.all_users_and_sessions()[1] if session.openid == openid]


# Each flow: (setup with storage healthy) -> the faulted call -> (check after a healthy retry).


def login_new(client: TestClient, storage: Storage) -> Callable[[], Any]:
    name = next(names)

    def call() -> Any:
        return client.post("/api/v1/auth/wx-login", json={"code": f"{name}.{next(codes)}"})

    return call


def login_new_first_of_instance(client: TestClient, storage: Storage) -> Callable[[], Any]:
    """A new user's login in an instance that has no user ids reserved yet (it reserves a block)."""
    assert isinstance(storage, DynamoDBStorage)
    storage._ids = type(storage._ids)()
    return login_new(client, storage)


def login_returning(client: TestClient, storage: Storage) -> Callable[[], Any]:
    name = next(names)
    fresh_login(client, name)
    return login_new_for(client, name)


def login_new_for(client: TestClient, name: str) -> Callable[[], Any]:
    def call() -> Any:
        return client.post("/api/v1/auth/wx-login", json={"code": f"{name}.{next(codes)}"})

    return call


def refresh_rotating(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["refresh_token"]
    return lambda: client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def refresh_bearer(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["access_token"]
    return lambda: client.post("/api/v1/auth/refresh", headers=bearer(token))


def patch_profile(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["access_token"]
    return lambda: client.patch("/api/v1/user/profile", headers=bearer(token), json={"bio": "patched"})


def get_profile(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["access_token"]
    return lambda: client.get("/api/v1/user/profile", headers=bearer(token))


def logout(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["access_token"]
    return lambda: client.post("/api/v1/auth/logout", headers=bearer(token))


def logout_all(client: TestClient, _: Storage) -> Callable[[], Any]:
    token = fresh_login(client)["access_token"]
    return lambda: client.post("/api/v1/auth/logout", headers=bearer(token), json={"all": True})


FLOWS = [
    login_new,
    login_new_first_of_instance,
    login_returning,
    refresh_rotating,
    refresh_bearer,
    patch_profile,
    get_profile,
    logout,
    logout_all,
]


def check_consistent(
    client: TestClient, storage: Storage, flow: Callable[..., Any], first: Any, retry: Any
) -> None:
    """What the healthy retry's answer says must hold in storage too."""
    assert retry.status_code == 200, (flow.__name__, first.text, retry.text)
    data = retry.json()["data"]
    if flow in (login_new, login_new_first_of_instance, login_returning):
        # Every login answered 200 stored its session, and only those did.
        openid = data["user"]["openid"]
        logins_ok = [r for r in (first, retry) if r.status_code == 200]
        stored = {s.refresh_hash for s in sessions_of(storage, openid)}
        for answer in logins_ok:
            tokens = answer.json()["data"]
            assert sha256_hex(tokens["refresh_token"]) in stored
            profile = client.get("/api/v1/user/profile", headers=bearer(tokens["access_token"]))
            assert profile.status_code == 200 and profile.json()["data"]["id"] == data["user"]["id"] > 0
        expected = len(logins_ok) + (1 if flow is login_returning else 0)
        assert len(sessions_of(storage, openid)) == expected
    if flow in (refresh_rotating, refresh_bearer):
        assert client.get("/api/v1/user/profile", headers=bearer(data["access_token"])).status_code == 200
    if flow is patch_profile:
        assert data["bio"] == "patched"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda flow: flow.__name__)
@pytest.mark.parametrize("code", [THROTTLED, CONDITION_FAILED])
def test_a_failure_at_any_call_is_never_a_500_and_a_healthy_retry_succeeds(
    client, storage, faults, flow, code
):
    faults.fail(None)
    clean = flow(client, storage)()
    assert clean.status_code == 200, clean.text
    calls = len(faults.calls)
    assert calls >= 1
    for index in range(calls):
        operation = flow(client, storage)
        faults.fail(index, code)
        started = time.monotonic()
        first = operation()
        assert time.monotonic() - started < 5
        failed_call = faults.calls[index] if index < len(faults.calls) else None
        faults.fail(None)
        no_token_unless_ok(first)
        if code == THROTTLED and failed_call is not None and first.status_code != 200:
            assert first.json()["reason"] == "STORAGE_UNAVAILABLE", (flow.__name__, failed_call, first.text)
        check_consistent(client, storage, flow, first, operation())


@pytest.mark.parametrize(
    ("operation", "table", "code"),
    [("TransactWriteItems", "sessions", THROTTLED), ("TransactGetItems", "sessions", "ThrottlingException")],
)
def test_throttling_through_the_sdks_retries_is_storage_unavailable_within_ten_seconds(
    client, storage, faults, settings, operation, table, code
):
    name = next(names)
    token = fresh_login(client, name)["access_token"]
    faults.retried_operation, faults.retried_table, faults.code = operation, table, code
    started = time.monotonic()
    if operation == "TransactWriteItems":
        response = client.post("/api/v1/auth/wx-login", json={"code": f"{name}.{next(codes)}"})
    else:
        response = client.get("/api/v1/user/profile", headers=bearer(token))
    elapsed = time.monotonic() - started
    faults.retried_operation = None
    assert response.status_code == 503 and response.json()["reason"] == "STORAGE_UNAVAILABLE"
    assert "access_token" not in response.text
    # The SDK's own retries (shared/storage/dynamodb.py: max_retry_attempts=2).
    assert faults.sends == [operation] * 3
    assert elapsed < 10
    if operation == "TransactWriteItems":
        assert len(sessions_of(storage, f"sim-{name}")) == 1  # the first login's only
