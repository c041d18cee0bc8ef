import time

import httpx
import pytest

from shared.deadline import Deadline, request_deadline
from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.wechat import MAX_ATTEMPTS, MIN_ATTEMPT_S, STORAGE_RESERVE_S, WeChatClient

SETTINGS = load_settings({"STAGE": "local", "WX_APPID": "wx-app", "WX_SECRET": "very-secret-value"})
OK = {"openid": "o-1", "session_key": "c2Vzc2lvbmtleQ==", "unionid": "u-1"}


class Script:
    """A fake WeChat that answers a scripted sequence and records the requests it saw."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def exchange(script: Script, code: str = "code-1"):
    return WeChatClient(SETTINGS, transport=httpx.MockTransport(script)).code_to_session(code)


def failure(script: Script) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        exchange(script)
    return caught.value


def test_success_sends_the_documented_query_and_answers_identity():
    script = Script(OK)
    identity = exchange(script)
    assert (identity.openid, identity.session_key, identity.unionid) == ("o-1", "c2Vzc2lvbmtleQ==", "u-1")
    request = script.requests[0]
    assert request.url.path == "/sns/jscode2session"
    assert dict(request.url.params) == {
        "appid": "wx-app",
        "secret": "very-secret-value",
        "js_code": "code-1",
        "grant_type": "authorization_code",
    }
    assert "session_key" not in repr(identity)


def test_unionid_is_optional():
    assert exchange(Script({"openid": "o", "session_key": "k"})).unionid is None


@pytest.mark.parametrize("errcode", [40029, 40163, 41008, 40226])
def test_rejected_codes_are_code_invalid_with_the_errcode_and_no_retry(errcode):
    script = Script({"errcode": errcode, "errmsg": "x"})
    error = failure(script)
    assert error.reason is Reason.WECHAT_CODE_INVALID and error.status == 401
    assert f"(错误码: {errcode})" in error.message and error.message.startswith("微信登录失败: ")
    assert len(script.requests) == 1


def test_rate_limit_is_429():
    error = failure(Script({"errcode": 45011, "errmsg": "limit"}))
    assert error.reason is Reason.WECHAT_RATE_LIMITED and error.status == 429 and "45011" in error.message


@pytest.mark.parametrize(("errcode", "setting"), [(40013, "WX_APPID"), (40125, "WX_SECRET")])
def test_rejected_credentials_are_misconfiguration_naming_the_setting_not_its_value(errcode, setting):
    error = failure(Script({"errcode": errcode, "errmsg": "bad"}))
    assert error.reason is Reason.SERVER_MISCONFIGURED and setting in error.message
    assert "very-secret-value" not in error.message and "wx-app" not in error.message


def test_unknown_errcode_is_unavailable_and_keeps_the_errcode():
    error = failure(Script({"errcode": 40001, "errmsg": "?"}))
    assert error.reason is Reason.WECHAT_UNAVAILABLE and "40001" in error.message


def test_busy_then_success_is_retried():
    script = Script({"errcode": -1, "errmsg": "busy"}, OK)
    assert exchange(script).openid == "o-1"
    assert len(script.requests) == 2


def test_busy_forever_gives_up_after_three_attempts():
    script = Script({"errcode": -1, "errmsg": "busy"})
    error = failure(script)
    assert error.reason is Reason.WECHAT_UNAVAILABLE and "-1" in error.message
    assert len(script.requests) == MAX_ATTEMPTS == 3


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, html="<html>502 Bad Gateway</html>"),
        httpx.Response(500, text="oops"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("reset"),
    ],
    ids=["html-502", "500", "timeout", "connect-error", "reset"],
)
def test_transport_faults_are_retried_then_unavailable(answer):
    script = Script(answer)
    assert failure(script).reason is Reason.WECHAT_UNAVAILABLE
    assert len(script.requests) == 3


def test_non_json_body_is_unavailable_without_retry():
    script = Script(httpx.Response(200, text="<html>captive portal</html>"))
    assert failure(script).reason is Reason.WECHAT_UNAVAILABLE
    assert len(script.requests) == 1


def test_incomplete_answer_is_unavailable():
    assert failure(Script({"openid": "o-1"})).reason is Reason.WECHAT_UNAVAILABLE


def test_code_used_after_an_attempt_that_may_have_reached_wechat_is_not_the_users_fault():
    script = Script(httpx.ReadTimeout("lost answer"), {"errcode": 40163, "errmsg": "code been used"})
    error = failure(script)
    assert error.reason is Reason.WECHAT_UNAVAILABLE


def test_code_used_after_a_refused_connection_is_the_users_code():
    script = Script(httpx.ConnectError("refused"), {"errcode": 40163, "errmsg": "code been used"})
    assert failure(script).reason is Reason.WECHAT_CODE_INVALID


def test_total_time_is_bounded_even_when_every_attempt_times_out():
    slow_settings = load_settings({"STAGE": "local", "WX_TIMEOUT_S": "0.3"})

    def hang(request: httpx.Request) -> httpx.Response:
        time.sleep(float(request.extensions["timeout"]["read"]))
        raise httpx.ReadTimeout("slow")

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        WeChatClient(slow_settings, transport=httpx.MockTransport(hang)).code_to_session("c")
    elapsed = time.monotonic() - started
    assert caught.value.reason is Reason.WECHAT_UNAVAILABLE
    assert elapsed < 3 * 0.3 + 0.5 + 0.5


def test_client_secret_never_appears_in_errors():
    for answer in ({"errcode": -1}, httpx.Response(502, text="bad")):
        assert "very-secret-value" not in failure(Script(answer)).message


def test_each_attempt_waits_at_most_the_time_its_requests_deadline_leaves_wechat():
    script = Script(OK)
    with request_deadline(Deadline.after(1.5)):
        exchange(script)
    read_timeout = script.requests[0].extensions["timeout"]["read"]
    # WX_TIMEOUT_S is 3 s, but the request has 1.5 s left, less what the storage writes after it keep.
    assert 1.5 - STORAGE_RESERVE_S - 0.2 < read_timeout <= 1.5 - STORAGE_RESERVE_S


def test_no_attempt_starts_when_the_deadline_leaves_too_little_time_so_no_code_is_spent():
    script = Script(OK)
    with request_deadline(Deadline.after(STORAGE_RESERVE_S + MIN_ATTEMPT_S - 0.05)):
        error = failure(script)
    assert error.reason is Reason.WECHAT_UNAVAILABLE and script.requests == []


def test_retries_and_their_backoff_end_before_the_requests_deadline():
    slow_settings = load_settings({"STAGE": "local", "WX_TIMEOUT_S": "0.5"})
    seen: list[httpx.Request] = []

    def hang(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        time.sleep(float(request.extensions["timeout"]["read"]))
        raise httpx.ReadTimeout("slow")

    started = time.monotonic()
    with request_deadline(Deadline.after(2.0)), pytest.raises(ServiceError) as caught:
        WeChatClient(slow_settings, transport=httpx.MockTransport(hang)).code_to_session("c")
    elapsed = time.monotonic() - started
    assert caught.value.reason is Reason.WECHAT_UNAVAILABLE
    # 0.5 s, 0.1 s backoff, 0.5 s, 0.3 s backoff: 1.4 s of the 1.5 s WeChat may take; no third attempt.
    assert len(seen) == 2
    assert elapsed <= 2.0 - STORAGE_RESERVE_S + 0.2
