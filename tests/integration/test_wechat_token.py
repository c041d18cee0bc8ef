"""The WeChat server access_token manager on every storage backend and the WeChat simulator: shared,
collapsed, refreshed."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from local.wechat_sim import WeChatSimulator
from shared.errors import Reason, ServiceError
from shared.wechat import new_http_client
from shared.wechat_token import LEASE_S, AccessTokenManager
from shared.wechat_token_store import acquire_lease

STABLE = "/cgi-bin/stable_token"
_codes = itertools.count()  # each phone code works once
PHONE = "/wxa/business/getuserphonenumber"


@pytest.fixture
def instances(settings, simulator, storage) -> Iterator[list[AccessTokenManager]]:
    """Four 'function instances': each its own manager (own memory) and HTTP client, one storage."""
    clients = [new_http_client(settings, httpx.MockTransport(simulator)) for _ in range(4)]
    yield [AccessTokenManager(settings, client, storage) for client in clients]
    for client in clients:
        client.close()


def phone_call(manager: AccessTokenManager, number: str) -> dict[str, Any]:
    return manager.call("POST", PHONE, json={"code": f"phone.{number}.{next(_codes)}"})


def test_token_is_fetched_once_for_many_concurrent_callers_across_instances(
    instances, simulator: WeChatSimulator
):
    barrier = threading.Barrier(32)

    def caller(index: int) -> str:
        barrier.wait()
        return str(instances[index % 4].token())

    with ThreadPoolExecutor(32) as pool:
        tokens = list(pool.map(caller, range(32)))
    assert simulator.calls[STABLE] == 1
    assert set(tokens) == {simulator.access_token}


def test_the_token_is_shared_through_storage_and_encrypted_at_rest(instances, simulator, storage, settings):
    first = instances[0].token()
    assert instances[1].token() == first  # a new instance reads it, does not fetch it
    assert simulator.calls[STABLE] == 1
    cached = storage.read_wechat_token(settings.wx_appid)
    assert cached.token_enc and first not in cached.token_enc
    assert cached.expires_at > time.time() + 7000 and cached.version == 1


def test_calls_carry_the_token_and_answer_wechats_body(instances, simulator):
    body = phone_call(instances[0], "13800138000")
    assert body["errcode"] == 0 and body["phone_info"]["purePhoneNumber"] == "13800138000"
    assert simulator.calls[STABLE] == 1
    # A non-zero errcode is the caller's to map, not an exception.
    assert instances[0].call("POST", PHONE, json={"code": "fail.40029"})["errcode"] == 40029


def test_a_rejected_token_is_refreshed_once_and_the_call_retried(instances, simulator):
    instances[0].token()
    simulator.revoke_access_token()  # e.g. another server forced a refresh: our token now reads 40001
    assert phone_call(instances[0], "13800138000")["errcode"] == 0
    assert simulator.calls[STABLE] == 2
    assert simulator.calls[PHONE] == 2  # the rejected call and its one retry


def test_instances_that_see_the_same_40001_refresh_it_once(instances, simulator):
    for manager in instances:
        manager.token()  # every instance holds the same token in memory
    simulator.revoke_access_token()
    barrier = threading.Barrier(16)

    def caller(index: int) -> int:
        barrier.wait()
        return int(phone_call(instances[index % 4], "13800138000")["errcode"])

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(caller, range(16))) == {0}
    assert simulator.calls[STABLE] == 2  # the first fetch and one refresh, not one per instance


def test_a_token_wechat_keeps_rejecting_is_retried_only_once(instances, simulator, monkeypatch):
    monkeypatch.setattr(simulator, "access_token_error", lambda request: 40001)
    assert phone_call(instances[0], "13800138000")["errcode"] == 40001
    assert simulator.calls[PHONE] == 2


def test_the_token_is_refreshed_ahead_of_its_expiry(instances, simulator, frozen_clock):
    first = instances[0].token()
    frozen_clock.advance(7200 - 200)  # inside the refresh window, not yet expired
    simulator.revoke_access_token()  # so WeChat's normal mode hands out a new one, as it does then
    second = instances[0].token()
    assert second != first and simulator.calls[STABLE] == 2
    assert instances[1].token() == second  # shared with the other instances


def test_a_failed_refresh_ahead_of_expiry_keeps_the_current_token(storage, settings, frozen_clock):
    answers = iter([{"access_token": "tok-1", "expires_in": 7200}])

    def wechat(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        return httpx.Response(200, json=answer) if answer else httpx.Response(503)

    manager = AccessTokenManager(settings, new_http_client(settings, httpx.MockTransport(wechat)), storage)
    assert manager.token() == "tok-1"
    frozen_clock.advance(7200 - 200)
    assert manager.token() == "tok-1"  # WeChat is down, the token has 200 s to live: keep using it
    frozen_clock.advance(190)
    with pytest.raises(ServiceError) as caught:
        manager.token()  # 10 s left: too close to expiry to hand out
    assert caught.value.reason is Reason.WECHAT_UNAVAILABLE


def test_a_dead_lease_holder_delays_others_only_until_its_lease_lapses(
    instances, simulator, frozen_clock, storage, settings
):
    acquire_lease(storage, settings.wx_appid, now=time.time(), lease_s=LEASE_S)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(instances[0].token)
        time.sleep(0.3)
        assert not waiting.done() and simulator.calls[STABLE] == 0  # waits for the holder's token
        frozen_clock.advance(LEASE_S + 2)  # the holder never came back
        assert waiting.result(timeout=5) == simulator.access_token
    assert simulator.calls[STABLE] == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"errcode": 40013, "errmsg": "invalid appid"}, Reason.SERVER_MISCONFIGURED),
        ({"errcode": 40125, "errmsg": "invalid appsecret"}, Reason.SERVER_MISCONFIGURED),
        ({"errcode": 45011, "errmsg": "api minute-quota reach limit"}, Reason.WECHAT_RATE_LIMITED),
        ({"errcode": 45009, "errmsg": "reach max api daily quota limit"}, Reason.WECHAT_UNAVAILABLE),
        ({"access_token": "", "expires_in": 7200}, Reason.WECHAT_UNAVAILABLE),
    ],
)
def test_stable_token_failures_map_to_the_contract_reasons(storage, settings, answer, reason):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    manager = AccessTokenManager(settings, new_http_client(settings, transport), storage)
    with pytest.raises(ServiceError) as caught:
        manager.token()
    assert caught.value.reason is reason
    assert settings.wx_secret not in caught.value.message


def test_stable_token_request_is_the_documented_one(storage, settings):
    seen: list[httpx.Request] = []

    def wechat(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "tok", "expires_in": 7200})

    AccessTokenManager(settings, new_http_client(settings, httpx.MockTransport(wechat)), storage).token()
    request = seen[0]
    assert (request.method, request.url.path, request.url.query) == ("POST", STABLE, b"")
    assert json.loads(request.content) == {
        "grant_type": "client_credential",
        "appid": settings.wx_appid,
        "secret": settings.wx_secret,
        "force_refresh": False,
    }


def test_the_token_never_reaches_a_log_line(instances, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    first = instances[0].token()
    simulator.revoke_access_token()
    phone_call(instances[1], "13800138000")  # reads the stale token from storage, refreshes it
    assert "wechat rejected the access_token (errcode 40001)" in caplog.text
    assert simulator.access_token and simulator.access_token != first
    for secret in (first, simulator.access_token, instances[0]._settings.wx_secret):
        assert secret not in caplog.text
