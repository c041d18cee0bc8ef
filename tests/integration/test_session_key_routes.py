"""What session_key is for, over HTTP on moto and the WeChat simulator: /auth/phone (both flows),
/wechat/decrypt, /auth/session-check and wx-login's phoneCode; no secret in any response or log."""

from __future__ import annotations

import dataclasses
import json
import logging

import httpx
import pytest

from local.wechat_sim import openid_for
from shared.errors import Reason, ServiceError
from shared.phone import phone_from_code, stored_phone
from shared.wechat import new_http_client
from shared.wechat_token import AccessTokenManager
from shared.wxcrypto import encrypt_open_data
from tests.conftest import bearer

PHONE = "/api/v1/auth/phone"
DECRYPT = "/api/v1/wechat/decrypt"
CHECK = "/api/v1/auth/session-check"
PROFILE = "/api/v1/user/profile"
PHONE_ANSWER = {
    "phone_number": "13800138000",
    "pure_phone_number": "13800138000",
    "country_code": "86",
    "masked": "138****8000",
}


def legacy_phone_data(simulator, name: str, number: str = "13800138000") -> dict[str, str]:
    """What an old base library hands the page: the number encrypted under the current session_key."""
    info = {"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86"}
    encrypted, iv = simulator.encrypt_for(openid_for(name), info)
    return {"encryptedData": encrypted, "iv": iv}


def test_phone_code_flow_binds_the_number_encrypted_at_rest(client, login, settings, simulator, storage):
    auth = bearer(login("alice")["access_token"])
    assert client.get(PROFILE, headers=auth).json()["data"]["phone_masked"] == ""
    response = client.post(PHONE, json={"code": "phone.13800138000"}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == PHONE_ANSWER
    assert simulator.calls["/wxa/business/getuserphonenumber"] == 1
    profile = client.get(PROFILE, headers=auth).json()["data"]
    assert profile["phone_masked"] == "138****8000"
    assert "13800138000" not in json.dumps(profile)
    # At rest: ciphertext and the masked form only, and it decrypts back for the owner.
    user = storage.get_user(openid_for("alice"))
    assert "13800138000" not in json.dumps(dataclasses.asdict(user))
    stored = stored_phone(settings, user)
    assert stored is not None and stored.pure_phone_number == "13800138000"


@pytest.mark.parametrize("code", ["fail.40029", "fail.40163", "whatever", "phone.13800138000.used"])
def test_a_phone_code_wechat_rejects_is_phone_code_invalid(client, login, code):
    auth = bearer(login("bob")["access_token"])
    if code.endswith(".used"):
        assert client.post(PHONE, json={"code": code}, headers=auth).status_code == 200
    response = client.post(PHONE, json={"code": code}, headers=auth)
    body = response.json()
    assert (response.status_code, body["reason"]) == (400, "PHONE_CODE_INVALID"), body
    assert "错误码: 40" in body["message"] and code not in body["message"]


def test_other_wechat_failures_keep_their_reasons(client, login):
    auth = bearer(login("bob")["access_token"])
    busy = client.post(PHONE, json={"code": "fail.45011"}, headers=auth).json()
    assert (busy["code"], busy["reason"]) == (429, "WECHAT_RATE_LIMITED")
    down = client.post(PHONE, json={"code": "fail.-1"}, headers=auth).json()
    assert (down["code"], down["reason"]) == (503, "WECHAT_UNAVAILABLE")
    assert client.get(PROFILE, headers=auth).json()["data"]["phone_masked"] == ""


def test_legacy_encrypted_flow_binds_the_number(client, login, simulator):
    auth = bearer(login("carol")["access_token"])
    response = client.post(PHONE, json=legacy_phone_data(simulator, "carol"), headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == PHONE_ANSWER
    assert client.get(PROFILE, headers=auth).json()["data"]["phone_masked"] == "138****8000"
    assert simulator.calls["/cgi-bin/stable_token"] == 0  # the legacy flow needs no WeChat call


def test_legacy_data_under_a_stale_session_key_is_decrypt_failed(client, login, simulator):
    login("dave")
    stale = legacy_phone_data(simulator, "dave")
    # wx.login again: WeChat issued a new session_key, the data above is under the old one.
    auth = bearer(login("dave")["access_token"])
    body = client.post(PHONE, json=stale, headers=auth).json()
    assert (body["code"], body["reason"]) == (400, "DECRYPT_FAILED")
    assert "wx.login" in body["message"]


def test_legacy_data_of_another_user_is_decrypt_failed(client, login, simulator):
    login("mallory")
    auth = bearer(login("erin")["access_token"])
    body = client.post(PHONE, json=legacy_phone_data(simulator, "mallory"), headers=auth).json()
    assert body["reason"] == "DECRYPT_FAILED"


def test_legacy_data_that_is_not_a_phone_number_is_decrypt_failed(client, login, simulator):
    auth = bearer(login("erin")["access_token"])
    encrypted, iv = simulator.encrypt_for(openid_for("erin"), {"stepInfoList": []})
    body = client.post(PHONE, json={"encryptedData": encrypted, "iv": iv}, headers=auth).json()
    assert body["reason"] == "DECRYPT_FAILED"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"code": ""},
        {"code": "phone.1", "iv": "r7BXXKkLb8qrSNn05n0qiA=="},
        {"encryptedData": "AAAA"},
        {"encryptedData": "AAAA", "iv": "short"},
        {"encryptedData": "not base64!", "iv": "r7BXXKkLb8qrSNn05n0qiA=="},
        {"encryptedData": "A" * 12_004, "iv": "r7BXXKkLb8qrSNn05n0qiA=="},
        {"code": "phone.1", "extra": 1},
        {"code": 13800138000},
    ],
)
def test_malformed_phone_requests_are_invalid_request(client, login, payload):
    auth = bearer(login("frank")["access_token"])
    response = client.post(PHONE, json=payload, headers=auth)
    assert (response.status_code, response.json()["reason"]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(("method", "path"), [("POST", PHONE), ("POST", DECRYPT), ("GET", CHECK)])
def test_every_route_needs_a_live_session(client, login, method, path):
    assert client.request(method, path, json={"code": "phone.1"}).json()["reason"] == "TOKEN_MISSING"
    data = login("grace")
    client.post("/api/v1/auth/logout", headers=bearer(data["access_token"]))
    response = client.request(method, path, json={"code": "phone.1"}, headers=bearer(data["access_token"]))
    assert response.json()["reason"] == "SESSION_REVOKED"


def test_decrypt_answers_the_users_open_data_after_the_watermark_check(client, login, simulator, settings):
    auth = bearer(login("heidi")["access_token"])
    werun = {"stepInfoList": [{"timestamp": 1700000000, "step": 8888}]}
    encrypted, iv = simulator.encrypt_for(openid_for("heidi"), werun)
    response = client.post(DECRYPT, json={"encryptedData": encrypted, "iv": iv}, headers=auth)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["stepInfoList"] == werun["stepInfoList"]
    assert data["watermark"]["appid"] == settings.wx_appid


def test_decrypt_rejects_a_stale_key_a_foreign_watermark_and_garbage(client, login, simulator):
    login("ivan")
    stale = simulator.encrypt_for(openid_for("ivan"), {"x": 1})
    auth = bearer(login("ivan")["access_token"])
    session_key = simulator.session_keys[openid_for("ivan")]
    foreign = encrypt_open_data(
        session_key, {"x": 1, "watermark": {"appid": "wx-someone-else", "timestamp": 1}}
    )
    garbage = ("A" * 64, "r7BXXKkLb8qrSNn05n0qiA==")
    for encrypted, iv in (stale, foreign, garbage):
        response = client.post(DECRYPT, json={"encryptedData": encrypted, "iv": iv}, headers=auth)
        assert (response.status_code, response.json()["reason"]) == (400, "DECRYPT_FAILED")


def test_decrypt_needs_both_fields(client, login):
    auth = bearer(login("judy")["access_token"])
    response = client.post(DECRYPT, json={"encryptedData": "AAAA"}, headers=auth)
    assert response.json()["reason"] == "INVALID_REQUEST"


def test_session_check_asks_wechat_about_the_stored_key(client, login, simulator):
    auth = bearer(login("ken")["access_token"])
    assert client.get(CHECK, headers=auth).json()["data"] == {"valid": True}
    # The phone ran wx.login again without telling us: WeChat replaced the key we hold.
    simulator.session_keys[openid_for("ken")] = "c29tZS1vdGhlci1rZXkhIQ=="
    assert client.get(CHECK, headers=auth).json()["data"] == {"valid": False}
    assert simulator.calls["/wxa/checksession"] == 2


def test_session_check_survives_a_revoked_access_token(client, login, simulator):
    auth = bearer(login("leo")["access_token"])
    assert client.get(CHECK, headers=auth).json()["data"] == {"valid": True}
    simulator.revoke_access_token()
    assert client.get(CHECK, headers=auth).json()["data"] == {"valid": True}
    assert simulator.calls["/cgi-bin/stable_token"] == 2


def test_wx_login_with_a_phone_code_binds_the_phone_in_one_tap(client, simulator):
    response = client.post("/api/v1/auth/wx-login", json={"code": "mia.1", "phoneCode": "phone.13912345678"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["phone_masked"] == "139****5678" and "phone_error" not in data
    assert "13912345678" not in response.text
    profile = client.get(PROFILE, headers=bearer(data["access_token"])).json()["data"]
    assert profile["phone_masked"] == "139****5678"


def test_wx_login_with_a_rejected_phone_code_still_logs_in(client):
    response = client.post("/api/v1/auth/wx-login", json={"code": "nick.1", "phoneCode": "fail.40029"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["phone_error"] == "PHONE_CODE_INVALID" and "phone_masked" not in data
    assert data["user"]["openid"] == openid_for("nick")
    profile = client.get(PROFILE, headers=bearer(data["access_token"])).json()["data"]
    assert profile["phone_masked"] == ""


def test_wx_login_phone_code_is_validated_like_a_code(client):
    response = client.post("/api/v1/auth/wx-login", json={"code": "olga.1", "phoneCode": "has space"})
    assert response.json()["reason"] == "INVALID_REQUEST"


def test_no_secret_in_any_response_or_log_line(client, simulator, settings, caplog):
    caplog.set_level(logging.DEBUG)
    codes = ["pat.secret-login-code-1", "phone.13700137000.secret-phone-code", "phone.13600136000.other"]
    responses = [client.post("/api/v1/auth/wx-login", json={"code": codes[0], "phoneCode": codes[1]})]
    auth = bearer(responses[0].json()["data"]["access_token"])
    responses.append(client.post("/api/v1/auth/wx-login", json={"code": codes[0]}))  # a retry
    responses.append(client.post(PHONE, json={"code": codes[2]}, headers=auth))
    session_key = simulator.session_keys[openid_for("pat")]
    responses.append(
        client.post(PHONE, json=legacy_phone_data(simulator, "pat", "13500135000"), headers=auth)
    )
    encrypted, iv = simulator.encrypt_for(openid_for("pat"), {"shareTicket": "t"})
    responses.append(client.post(DECRYPT, json={"encryptedData": encrypted, "iv": iv}, headers=auth))
    responses.append(client.post(DECRYPT, json={"encryptedData": "A" * 64, "iv": iv}, headers=auth))
    responses.append(client.get(CHECK, headers=auth))
    responses.append(client.get(PROFILE, headers=auth))
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 400, 200, 200]
    wechat_token = simulator.access_token
    assert wechat_token
    secrets = [session_key, wechat_token, settings.wx_secret, *codes, "13700137000", "13600136000"]
    logs = caplog.text
    for secret in [*secrets, "13500135000"]:
        assert secret not in logs, secret
    # The full number is only in the /auth/phone answer to its owner; nothing else carries any secret.
    for index, response in enumerate(responses):
        for secret in secrets:
            if index == 2 and secret == "13600136000":
                continue
            assert secret not in response.text, (index, secret)
    assert "13500135000" in responses[3].text


def test_a_phone_code_rejected_after_a_lost_answer_is_not_blamed_on_the_user(storage, settings):
    phone_answers = iter([httpx.ReadTimeout("lost"), {"errcode": 40029, "errmsg": "invalid code"}])

    def wechat(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 7200})
        answer = next(phone_answers)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(200, json=answer)

    tokens = AccessTokenManager(settings, new_http_client(settings, httpx.MockTransport(wechat)), storage)
    with pytest.raises(ServiceError) as caught:
        phone_from_code(tokens, "phone.13800138000")
    # The first attempt may have spent the code: WeChat's "invalid" on the retry is not PHONE_CODE_INVALID.
    assert caught.value.reason is Reason.WECHAT_UNAVAILABLE
