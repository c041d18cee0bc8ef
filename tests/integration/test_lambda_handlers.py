"""Each function's `handler(event, context)` with real API Gateway v1 and v2 payloads, on moto."""

import pytest

from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context

EVENT_BUILDERS = [apigw_v1, apigw_v2]


@pytest.mark.parametrize("build", EVENT_BUILDERS, ids=["v1", "v2"])
def test_login_profile_refresh_logout_through_the_lambda_handlers(functions, build):
    ctx = lambda_context()
    status, body = answer(
        functions["login"].handler(build("POST", "/api/v1/auth/wx-login", {"code": "alice.1"}), ctx)
    )
    assert status == 200 and body["data"]["is_new_user"] is True
    tokens = body["data"]
    auth = {"authorization": f"Bearer {tokens['access_token']}"}

    status, body = answer(
        functions["profile"].handler(build("GET", "/api/v1/user/profile", headers=auth), ctx)
    )
    assert status == 200 and body["data"]["openid"] == "sim-alice"

    patch = build("PATCH", "/api/v1/user/profile", {"bio": "hello"}, headers=auth)
    status, body = answer(functions["profile"].handler(patch, ctx))
    assert status == 200 and body["data"]["bio"] == "hello"

    refresh = build("POST", "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    status, body = answer(functions["refresh"].handler(refresh, ctx))
    assert status == 200 and body["data"]["refresh_token"] != tokens["refresh_token"]

    status, body = answer(
        functions["logout"].handler(build("POST", "/api/v1/auth/logout", headers=auth), ctx)
    )
    assert status == 200 and body["message"] == "退出成功"

    status, body = answer(
        functions["profile"].handler(build("GET", "/api/v1/user/profile", headers=auth), ctx)
    )
    assert (status, body["reason"]) == (401, "SESSION_REVOKED")


@pytest.mark.parametrize("build", EVENT_BUILDERS, ids=["v1", "v2"])
def test_each_function_serves_only_its_own_routes(functions, build):
    response = functions["profile"].handler(
        build("POST", "/api/v1/auth/wx-login", {"code": "x"}), lambda_context()
    )
    status, body = answer(response)
    assert (status, body["reason"]) == (404, "NOT_FOUND")
    assert response["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("build", EVENT_BUILDERS, ids=["v1", "v2"])
def test_errors_carry_the_lambda_request_id(functions, build):
    response = functions["login"].handler(
        build("POST", "/api/v1/auth/wx-login", "{oops"), lambda_context("req-42")
    )
    status, body = answer(response)
    assert (status, body["reason"]) == (400, "INVALID_REQUEST")
    assert response["headers"]["x-request-id"] == "req-42"


def test_functions_do_not_import_the_wechat_client_unless_they_log_in():
    import subprocess
    import sys

    code = (
        "import sys, functions.{name}; "
        "print(int('shared.wechat' in sys.modules), int('httpx' in sys.modules))"
    )
    for name, expected in (("refresh", "0 0"), ("logout", "0 0"), ("profile", "0 0"), ("login", "1 1")):
        out = subprocess.run(
            [sys.executable, "-c", code.format(name=name)], capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == expected.split(), (name, out.stdout, out.stderr)


def test_a_handler_still_answers_after_the_thread_lost_its_event_loop(functions):
    """Mangum sets a loop up once, when the handler is built; an asyncio.run() in the same thread since
    leaves none current, and the next invocation must not crash on that."""
    import asyncio

    async def nothing() -> None:
        return None

    asyncio.run(nothing())  # ends with set_event_loop(None)
    event = apigw_v2("GET", "/api/v1/user/profile")
    status, body = answer(functions["profile"].handler(event, lambda_context()))
    assert status == 401 and body["reason"] == "TOKEN_MISSING"
