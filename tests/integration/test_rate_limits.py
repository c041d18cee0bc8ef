"""Login abuse limits: per openid (taken in the user's own login write) and per IP (WeChat-rejected
codes), answered 429 RATE_LIMITED with Retry-After, shared through storage, and costing a returning
user's login no storage round trip."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared import ratelimit
from shared.api.app import create_app
from shared.api.client_ip import ClientIp
from shared.api.handler import lambda_handler
from shared.settings import Settings, get_settings, load_settings
from shared.storage.base import Storage
from tests.conftest import TEST_ENV, dynamodb_only
from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context, tencent
from tests.storage_faults import THROTTLED, dynamo_faults

IP = "203.0.113.7"
codes = (str(n) for n in itertools.count())


@pytest.fixture(autouse=True)
def forget_blocked_ips() -> Iterator[None]:
    ratelimit.forget_blocked_ips()
    yield
    ratelimit.forget_blocked_ips()


@pytest.fixture
def limits(app: FastAPI, settings: Settings) -> Callable[..., Settings]:
    """Serve the app with other login limits."""

    def set_limits(**changes: Any) -> Settings:
        limited = dataclasses.replace(settings, **changes)
        app.dependency_overrides[get_settings] = lambda: limited
        return limited

    return set_limits


@pytest.fixture
def from_ip(app: FastAPI) -> Iterator[Callable[[str], TestClient]]:
    clients: list[TestClient] = []

    def make(ip: str) -> TestClient:
        client = TestClient(app, raise_server_exceptions=False, client=(ip, 50000))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def log_in(client: TestClient, code: str) -> Any:
    return client.post("/api/v1/auth/wx-login", json={"code": code})


def sessions_of(storage: Storage, openid: str) -> int:
    return sum(1 for session in storage.all_users_and_sessions()[1] if session.openid == openid)


def test_an_openid_over_its_limit_gets_429_with_retry_after_and_nothing_is_written(
    client, storage, limits, frozen_clock
):
    limits(login_limit_per_openid=3, rate_limit_window_s=60)
    for _ in range(3):
        assert log_in(client, f"rita.{next(codes)}").status_code == 200
    refused = log_in(client, f"rita.{next(codes)}")
    assert refused.status_code == 429
    body = refused.json()
    assert (body["code"], body["reason"], body["error"]) == (429, "RATE_LIMITED", "Too Many Requests")
    assert refused.headers["Retry-After"] == "20"  # one login per 60/3 s once the burst is spent
    assert "access_token" not in refused.text
    assert sessions_of(storage, "sim-rita") == 3
    # Other users are not affected; after Retry-After seconds one more login is allowed, not two.
    assert log_in(client, f"other.{next(codes)}").status_code == 200
    frozen_clock.advance(20)
    assert log_in(client, f"rita.{next(codes)}").status_code == 200
    assert log_in(client, f"rita.{next(codes)}").status_code == 429
    frozen_clock.advance(60)
    assert all(log_in(client, f"rita.{next(codes)}").status_code == 200 for _ in range(3))


def test_concurrent_logins_of_one_openid_never_exceed_its_limit(client, storage, limits):
    limits(login_limit_per_openid=5, rate_limit_window_s=60)

    def attempt(i: int) -> int:
        return int(log_in(client, f"swarm.{i}").status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert sorted(statuses) == [200] * 5 + [429] * 15
    assert sessions_of(storage, "sim-swarm") == 5


def test_the_openid_limit_costs_a_returning_users_login_no_storage_round_trip(
    client, limits, frozen_clock, round_trips
):
    def calls_of_a_returning_login(limit: int) -> dict[str, int]:
        limits(login_limit_per_openid=limit, rate_limit_window_s=60)
        frozen_clock.advance(3600)  # a returning user: the last login is long past
        with round_trips() as calls:
            assert log_in(client, f"regular.{next(codes)}").status_code == 200
        return dict(calls)

    assert log_in(client, f"regular.{next(codes)}").status_code == 200
    without, with_limit = calls_of_a_returning_login(0), calls_of_a_returning_login(10)
    assert with_limit == without


@dynamodb_only
def test_on_dynamodb_the_openid_limit_rides_in_the_users_one_update(client, storage, limits, frozen_clock):
    limits(login_limit_per_openid=10, rate_limit_window_s=60)
    assert log_in(client, f"regular.{next(codes)}").status_code == 200
    frozen_clock.advance(3600)
    with dynamo_faults(storage) as recorder:
        assert log_in(client, f"regular.{next(codes)}").status_code == 200
    assert [operation for operation, table in recorder.calls if "users" in table] == ["UpdateItem"]


def test_rejected_codes_from_one_ip_are_limited_before_wechat_or_storage(
    app, from_ip, limits, simulator, settings, frozen_clock, round_trips
):
    limits(login_failures_per_ip=3, rate_limit_window_s=60)
    attacker, neighbour = from_ip(IP), from_ip("198.51.100.20")
    for _ in range(3):
        assert log_in(attacker, "fail.40029").json()["reason"] == "WECHAT_CODE_INVALID"
    exchanges = simulator.calls["/sns/jscode2session"]
    with round_trips() as calls:
        refused = log_in(attacker, f"valid.{next(codes)}")
    assert sum(calls.values()) == 0
    assert refused.status_code == 429 and refused.json()["reason"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert simulator.calls["/sns/jscode2session"] == exchanges
    # Another address is not affected; the attacker's next window is.
    assert log_in(neighbour, f"valid.{next(codes)}").status_code == 200
    frozen_clock.advance(60)
    assert log_in(attacker, f"valid.{next(codes)}").status_code == 200


def test_successful_logins_and_wechats_own_failures_do_not_count_against_an_ip(from_ip, limits, frozen_clock):
    limits(login_failures_per_ip=2, rate_limit_window_s=60)
    campus = from_ip(IP)  # a NAT: thousands of users behind one address
    for i in range(12):
        assert log_in(campus, f"student{i}.{next(codes)}").status_code == 200
    for code in ("fail.45011", "fail.-1", "fail.http500", "fail.40029"):
        assert log_in(campus, code).status_code in {401, 429, 503}
    assert log_in(campus, f"student.{next(codes)}").status_code == 200  # one rejected code so far


def test_an_ipv6_address_is_limited_by_its_64_prefix(from_ip, limits):
    limits(login_failures_per_ip=2, rate_limit_window_s=60)
    assert log_in(from_ip("2001:db8:1:2::1"), "fail.40029").status_code == 401
    assert log_in(from_ip("2001:db8:1:2:ffff::9"), "fail.40029").status_code == 401
    assert log_in(from_ip("2001:db8:1:2::3"), f"v6.{next(codes)}").status_code == 429
    assert log_in(from_ip("2001:db8:1:3::1"), f"v6.{next(codes)}").status_code == 200


@dynamodb_only
def test_an_ip_count_that_cannot_be_stored_leaves_wechats_answer(from_ip, storage, limits):
    limits(login_failures_per_ip=1, rate_limit_window_s=60)
    with dynamo_faults(storage) as faults:
        faults.retried_operation, faults.retried_table, faults.code = "UpdateItem", "cache", THROTTLED
        response = log_in(from_ip(IP), "fail.40029")
    assert response.status_code == 401 and response.json()["reason"] == "WECHAT_CODE_INVALID"
    assert log_in(from_ip(IP), f"after.{next(codes)}").status_code == 200  # nothing learned, nothing blocked


def test_ip_bucket():
    assert ratelimit.ip_bucket("203.0.113.7") == "203.0.113.7"
    assert ratelimit.ip_bucket(" 2001:db8::1 ") == "2001:db8::/64"
    assert ratelimit.ip_bucket("::ffff:203.0.113.7") == "203.0.113.7"
    assert ratelimit.ip_bucket("testclient") is None and ratelimit.ip_bucket(None) is None


@pytest.mark.parametrize("build", [apigw_v1, apigw_v2, tencent], ids=["v1", "v2", "tencent"])
def test_the_source_ip_is_the_gateways_never_x_forwarded_for(build):
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/whoami")
    def whoami(ip: ClientIp) -> dict[str, str | None]:
        return {"ip": ip}

    handler = lambda_handler(create_app(router), storage=False)
    spoofed = build("GET", "/api/v1/whoami", headers={"X-Forwarded-For": "10.9.9.9", "X-Real-IP": "10.8.8.8"})
    status, body = answer(handler(spoofed, lambda_context()))
    assert status == 200 and body == {"ip": IP}


def test_limits_are_settings():
    defaults = load_settings(dict(TEST_ENV, LOGIN_LIMIT_PER_OPENID="", LOGIN_FAILURE_LIMIT_PER_IP=""))
    limits = (defaults.login_limit_per_openid, defaults.login_failures_per_ip, defaults.rate_limit_window_s)
    assert limits == (10, 30, 60)
    off = load_settings(dict(TEST_ENV, LOGIN_LIMIT_PER_OPENID="0", LOGIN_FAILURE_LIMIT_PER_IP="0"))
    assert ratelimit.openid_login_rate(off) is None and off.problems == ()
    bad = load_settings(dict(TEST_ENV, LOGIN_LIMIT_PER_OPENID="-1", RATE_LIMIT_WINDOW_S="0"))
    assert {"LOGIN_LIMIT_PER_OPENID", "RATE_LIMIT_WINDOW_S"} <= set(bad.problems)


def test_replays_of_one_code_take_from_the_same_per_openid_budget(client, storage, limits, simulator):
    limits(login_limit_per_openid=3, rate_limit_window_s=60)
    code = f"replayer.{next(codes)}"
    answers = [log_in(client, code).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]  # one login, two replays, then the budget is spent
    assert simulator.calls["/sns/jscode2session"] == 1
    assert sessions_of(storage, "sim-replayer") == 3
