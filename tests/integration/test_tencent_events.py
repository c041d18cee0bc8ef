"""The real functions' `handler(event, context)` with Tencent API Gateway trigger events, on moto.

The same handlers that Lambda runs serve SCF: shared/api/tencent.py turns Tencent's event into an
ASGI request and the answer into the integrated response (exactly isBase64Encoded, statusCode,
headers, body).
"""

import base64
import copy
import json

import pytest

from tests.lambda_events import answer, lambda_context, tencent

INTEGRATED_RESPONSE_KEYS = {"isBase64Encoded", "statusCode", "headers", "body"}


def call(function, event):
    response = function.handler(event, lambda_context())
    assert set(response) == INTEGRATED_RESPONSE_KEYS, response
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"].startswith("application/json")
    assert all(isinstance(value, str) for value in response["headers"].values())
    return answer(response)


def test_login_profile_refresh_logout_with_tencent_events(functions):
    status, body = call(functions["login"], tencent("POST", "/api/v1/auth/wx-login", {"code": "alice.scf"}))
    assert status == 200 and body["data"]["user"]["openid"] == "sim-alice"
    tokens = body["data"]
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}  # Tencent keeps the client's case

    status, body = call(functions["profile"], tencent("GET", "/api/v1/user/profile", headers=auth))
    assert status == 200 and body["data"]["openid"] == "sim-alice"

    status, body = call(
        functions["profile"], tencent("PATCH", "/api/v1/user/profile", {"bio": "来自腾讯云"}, headers=auth)
    )
    assert status == 200 and body["data"]["bio"] == "来自腾讯云"

    refresh = {"refresh_token": tokens["refresh_token"]}
    status, body = call(functions["refresh"], tencent("POST", "/api/v1/auth/refresh", refresh))
    assert status == 200 and body["data"]["refresh_token"] != tokens["refresh_token"]

    status, body = call(functions["logout"], tencent("POST", "/api/v1/auth/logout", headers=auth))
    assert status == 200 and body["message"] == "退出成功"

    status, body = call(functions["profile"], tencent("GET", "/api/v1/user/profile", headers=auth))
    assert (status, body["reason"]) == (401, "SESSION_REVOKED")


def test_the_example_event_file_logs_in(functions):
    """tests/events/tencent_apigw.json as it is (code "alice")."""
    status, body = call(functions["login"], tencent("POST", "/api/v1/auth/wx-login", {"code": "alice"}))
    assert status == 200 and body["data"]["is_new_user"] is True


def test_environment_prefix_in_the_path_still_routes(functions):
    event = tencent("POST", "/release/api/v1/auth/wx-login", {"code": "bob.scf"})
    status, body = call(functions["login"], event)
    assert status == 200 and body["data"]["user"]["openid"] == "sim-bob"


@pytest.mark.parametrize("flag", [True, "true"])
def test_base64_encoded_request_body(functions, flag):
    event = tencent("POST", "/api/v1/auth/wx-login", {"code": "carol.b64"})
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = flag
    status, body = call(functions["login"], event)
    assert status == 200 and body["data"]["user"]["openid"] == "sim-carol"


def test_missing_base64_flag_and_string_false(functions):
    event = tencent("POST", "/api/v1/auth/wx-login", {"code": "dave.flag"})
    del event["isBase64Encoded"]
    assert call(functions["login"], event)[0] == 200
    event = tencent("POST", "/api/v1/auth/wx-login", {"code": "erin.flag"})
    event["isBase64Encoded"] = "false"
    assert call(functions["login"], event)[0] == 200


def test_errors_are_envelopes_in_the_integrated_response(functions):
    status, body = call(functions["profile"], tencent("GET", "/api/v1/user/profile"))
    assert (status, body["reason"]) == (401, "TOKEN_MISSING")
    status, body = call(functions["login"], tencent("POST", "/api/v1/auth/wx-login", "not json"))
    assert (status, body["reason"]) == (400, "INVALID_REQUEST")
    status, body = call(functions["profile"], tencent("GET", "/api/v1/nope"))
    assert (status, body["reason"]) == (404, "NOT_FOUND")
    status, body = call(functions["profile"], tencent("DELETE", "/api/v1/user/profile"))
    assert (status, body["reason"]) == (405, "METHOD_NOT_ALLOWED")


def test_the_handler_leaves_the_event_alone(functions):
    event = tencent("POST", "/api/v1/auth/wx-login", {"code": "frank.same"})
    before = copy.deepcopy(event)
    call(functions["login"], event)
    assert event == before
    assert json.loads(event["body"]) == {"code": "frank.same"}
