"""What session_key is for, over real HTTP: the dev server and a fake WeChat on 127.0.0.1."""

import httpx

from local.wechat_sim import openid_for


def call(server, method, path, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=15, **kwargs)


def test_one_tap_phone_login_legacy_binding_decrypt_and_session_check(dev_server, fake_wechat):
    simulator = fake_wechat.simulator
    body = {"code": "tapper.1", "phoneCode": "phone.13800138000.e2e"}
    first = call(dev_server, "POST", "/auth/wx-login", json=body)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert data["phone_masked"] == "138****8000"
    retry = call(dev_server, "POST", "/auth/wx-login", json=body)  # the client retries the same tap
    assert retry.status_code == 200 and retry.json()["data"]["user"]["id"] == data["user"]["id"]
    token = data["access_token"]

    info = {"phoneNumber": "13900139000", "purePhoneNumber": "13900139000", "countryCode": "86"}
    encrypted, iv = simulator.encrypt_for(openid_for("tapper"), info)
    legacy = call(dev_server, "POST", "/auth/phone", token, json={"encryptedData": encrypted, "iv": iv})
    assert legacy.status_code == 200 and legacy.json()["data"]["masked"] == "139****9000"

    encrypted, iv = simulator.encrypt_for(openid_for("tapper"), {"stepInfoList": [{"step": 1}]})
    decrypted = call(
        dev_server, "POST", "/wechat/decrypt", token, json={"encryptedData": encrypted, "iv": iv}
    )
    assert decrypted.json()["data"]["stepInfoList"] == [{"step": 1}]
    check = call(dev_server, "GET", "/auth/session-check", token)
    assert check.json()["data"] == {"valid": True}

    logs = dev_server.logs()
    session_key = simulator.session_keys[openid_for("tapper")]
    for secret in (
        session_key,
        simulator.access_token,
        "13800138000",
        "13900139000",
        "phone.13800138000.e2e",
    ):
        assert secret and secret not in logs
