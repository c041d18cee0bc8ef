"""The phone, decrypt and session-check functions' `handler(event, context)` with real API Gateway
v1/v2 and Tencent events, on moto and the WeChat simulator."""

import importlib

import pytest

from local.wechat_sim import openid_for
from shared.api.wechat_deps import wechat_client
from tests.conftest import serve_storage
from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context, tencent

FUNCTIONS = ("login", "phone", "decrypt", "session_check")


@pytest.fixture
def functions(aws, storage, wechat):
    modules = {name: importlib.import_module(f"functions.{name}") for name in FUNCTIONS}
    for module in modules.values():
        module.app.dependency_overrides[wechat_client] = lambda: wechat
        serve_storage(module.app, storage)
    yield modules
    for module in modules.values():
        module.app.dependency_overrides.clear()


@pytest.mark.parametrize("build", [apigw_v1, apigw_v2, tencent], ids=["v1", "v2", "tencent"])
def test_phone_decrypt_and_session_check_through_their_handlers(functions, simulator, build):
    ctx = lambda_context()
    login = build("POST", "/api/v1/auth/wx-login", {"code": "zoe.1", "phoneCode": "fail.40029"})
    status, body = answer(functions["login"].handler(login, ctx))
    assert status == 200 and body["data"]["phone_error"] == "PHONE_CODE_INVALID"
    auth = {"authorization": f"Bearer {body['data']['access_token']}"}

    phone = build("POST", "/api/v1/auth/phone", {"code": "phone.13800138000"}, headers=auth)
    status, body = answer(functions["phone"].handler(phone, ctx))
    assert (status, body["data"]["masked"]) == (200, "138****8000")

    encrypted, iv = simulator.encrypt_for(openid_for("zoe"), {"shareInfo": {"openGId": "g-1"}})
    decrypt = build("POST", "/api/v1/wechat/decrypt", {"encryptedData": encrypted, "iv": iv}, headers=auth)
    status, body = answer(functions["decrypt"].handler(decrypt, ctx))
    assert status == 200 and body["data"]["shareInfo"] == {"openGId": "g-1"}

    check = build("GET", "/api/v1/auth/session-check", headers=auth)
    status, body = answer(functions["session_check"].handler(check, ctx))
    assert (status, body["data"]) == (200, {"valid": True})


@pytest.mark.parametrize(
    ("name", "method", "path"),
    [
        ("phone", "GET", "/api/v1/auth/phone"),
        ("decrypt", "GET", "/api/v1/wechat/decrypt"),
        ("session_check", "POST", "/api/v1/auth/session-check"),
        ("phone", "POST", "/api/v1/wechat/decrypt"),
    ],
)
def test_each_function_serves_only_its_route(functions, name, method, path):
    status, body = answer(functions[name].handler(apigw_v2(method, path, {}), lambda_context()))
    assert (status, body["reason"]) in {(405, "METHOD_NOT_ALLOWED"), (404, "NOT_FOUND")}
    if path.endswith("decrypt") and name == "phone":
        assert status == 404
