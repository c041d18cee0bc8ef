"""A retried login code: answered for the same user within 5 minutes without asking WeChat again."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from local.wechat_sim import openid_for
from shared.crypto import sha256_hex
from shared.login_replay import CLAIM_S, claim_code
from shared.storage.base import LoginRecord
from tests.conftest import bearer, dynamodb_only

LOGIN = "/api/v1/auth/wx-login"
EXCHANGE = "/sns/jscode2session"


def test_a_retried_code_is_answered_for_the_same_user_without_wechat(client, simulator):
    first = client.post(LOGIN, json={"code": "amy.1", "nickName": "Amy"}).json()["data"]
    again = client.post(LOGIN, json={"code": "amy.1", "nickName": "Impostor", "avatarUrl": "https://x.y/z"})
    assert again.status_code == 200, again.text
    second = again.json()["data"]
    assert simulator.calls[EXCHANGE] == 1
    assert second["user"] == first["user"] and second["user"]["nickname"] == "Amy"  # replay's fields ignored
    assert first["is_new_user"] is True and second["is_new_user"] is True  # as the first answer said
    assert second["refresh_token"] != first["refresh_token"]  # a new session
    for data in (first, second):
        profile = client.get("/api/v1/user/profile", headers=bearer(data["access_token"]))
        assert profile.json()["data"]["openid"] == openid_for("amy")


def test_a_replay_of_a_returning_users_code_says_not_new(client, simulator):
    client.post(LOGIN, json={"code": "ben.1"})
    first = client.post(LOGIN, json={"code": "ben.2"}).json()["data"]
    second = client.post(LOGIN, json={"code": "ben.2"}).json()["data"]
    assert (first["is_new_user"], second["is_new_user"]) == (False, False)
    assert simulator.calls[EXCHANGE] == 2


def test_the_replay_window_is_five_minutes(client, simulator, frozen_clock):
    client.post(LOGIN, json={"code": "cat.1"})
    frozen_clock.advance(299)
    assert client.post(LOGIN, json={"code": "cat.1"}).status_code == 200
    frozen_clock.advance(2)
    late = client.post(LOGIN, json={"code": "cat.1"}).json()
    assert (late["code"], late["reason"]) == (401, "WECHAT_CODE_INVALID") and "40163" in late["message"]
    assert simulator.calls[EXCHANGE] == 2  # the late one went to WeChat, which said "used"


def test_a_failed_code_is_not_remembered_and_answers_at_once(client, simulator, storage):
    for _ in range(2):
        started = time.monotonic()
        body = client.post(LOGIN, json={"code": "fail.40163"}).json()
        # A claim left behind would hold the retry for CLAIM_S (12 s); a busy machine takes a second or two.
        assert body["reason"] == "WECHAT_CODE_INVALID" and time.monotonic() - started < CLAIM_S / 3
    assert simulator.calls[EXCHANGE] == 2
    # Neither remembered nor left claimed: the next request owns the code at once.
    now = int(time.time())
    assert storage.claim_login_code(sha256_hex("fail.40163"), now=now, claim_until=now + 1) is None


def test_the_record_is_kept_under_a_hash_of_the_code_for_five_minutes(client, storage):
    first = client.post(LOGIN, json={"code": "dan.secret-code-value"}).json()["data"]
    now = int(time.time())
    record = storage.claim_login_code(sha256_hex("dan.secret-code-value"), now=now, claim_until=now + 1)
    assert isinstance(record, LoginRecord)
    assert (record.openid, record.is_new_user) == (first["user"]["openid"], True)
    assert now + 295 <= record.expires_at <= now + 301


def test_concurrent_requests_with_one_fresh_code_both_succeed_with_one_exchange(client, simulator):
    barrier = threading.Barrier(4)

    def attempt(_: int):
        barrier.wait()
        return client.post(LOGIN, json={"code": "eve.1"})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(attempt, range(4)))
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    data = [r.json()["data"] for r in responses]
    assert simulator.calls[EXCHANGE] == 1
    assert {d["user"]["id"] for d in data} == {data[0]["user"]["id"]}
    assert [d["is_new_user"] for d in data] == [True] * 4
    assert len({d["refresh_token"] for d in data}) == 4


def test_a_crashed_owner_holds_a_retry_up_only_until_its_claim_lapses(
    client, simulator, frozen_clock, storage
):
    assert claim_code(storage, "fay.1") is None  # an owner that claimed the code and died
    frozen_clock.advance(CLAIM_S + 1)
    response = client.post(LOGIN, json={"code": "fay.1"})
    assert response.status_code == 200 and simulator.calls[EXCHANGE] == 1


def test_a_replay_with_a_phone_code_does_not_rebind_a_bound_phone(client, simulator):
    body = {"code": "gus.1", "phoneCode": "phone.13800138000.a"}
    first = client.post(LOGIN, json=body).json()["data"]
    again = client.post(LOGIN, json=body).json()["data"]
    assert first["phone_masked"] == "138****8000" and "phone_error" not in again
    assert simulator.calls["/wxa/business/getuserphonenumber"] == 1


def test_a_replay_retries_a_phone_binding_the_first_answer_failed(client, simulator):
    first = client.post(LOGIN, json={"code": "hal.1", "phoneCode": "fail.-1"}).json()["data"]
    assert first["phone_error"] == "WECHAT_UNAVAILABLE"
    again = client.post(LOGIN, json={"code": "hal.1", "phoneCode": "phone.13800138000.b"}).json()["data"]
    assert again["phone_masked"] == "138****8000"
    assert simulator.calls[EXCHANGE] == 1


@dynamodb_only
def test_a_retry_after_the_session_write_failed_is_answered_as_a_replay(client, simulator, storage):
    from tests.storage_faults import dynamo_faults

    with dynamo_faults(storage) as faults:
        # The session and the replay record are written together; make that one write fail.
        faults.retried_operation, faults.retried_table = "TransactWriteItems", None
        failed = client.post(LOGIN, json={"code": "zoe.1"})
        faults.retried_operation = None
    assert failed.status_code == 503 and failed.json()["reason"] == "STORAGE_UNAVAILABLE"
    # The code is spent at WeChat; the retry of it still logs the user in, without asking again.
    retried = client.post(LOGIN, json={"code": "zoe.1"})
    assert retried.status_code == 200, retried.text
    assert simulator.calls[EXCHANGE] == 1
    assert retried.json()["data"]["user"]["openid"] == openid_for("zoe")
