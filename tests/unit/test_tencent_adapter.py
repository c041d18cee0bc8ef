"""The Tencent API Gateway adapter (shared/api/tencent.py) on a tiny app, not the real one."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from hypothesis import given, settings
from hypothesis import strategies as st
from mangum import Mangum

from shared.api.tencent import TencentAPIGateway

EVENTS = Path(__file__).resolve().parents[1] / "events"
RESPONSE_KEYS = {"isBase64Encoded", "statusCode", "headers", "body"}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def tencent_event(**overrides: Any) -> dict[str, Any]:
    event = load_event("tencent_apigw.json")
    event.update(overrides)
    return event


app = FastAPI()


@app.api_route("/api/v1/echo", methods=["GET", "POST", "PATCH"])
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {
        "method": request.method,
        "path": request.url.path,
        "query": [[k, v] for k, v in request.query_params.multi_items()],
        "headers": dict(request.headers),
        "body_b64": base64.b64encode(body).decode(),
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
    }


@app.get("/api/v1/image")
async def image() -> Response:
    return Response(content=PNG, media_type="image/png")


@app.get("/api/v1/cookies")
async def cookies() -> Response:
    response = Response(content="ok", media_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    response.headers.append("vary", "accept")
    response.headers.append("vary", "origin")
    return response


@app.get("/api/v1/empty", status_code=204)
async def empty() -> Response:
    return Response(status_code=204)


handler = Mangum(app, lifespan="off", custom_handlers=[TencentAPIGateway])


def call(event: dict[str, Any]) -> dict[str, Any]:
    response = handler(event, None)  # type: ignore[arg-type]
    assert set(response) == RESPONSE_KEYS, response
    return response


def echo_of(event: dict[str, Any]) -> dict[str, Any]:
    response = call(event)
    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    result: dict[str, Any] = json.loads(response["body"])
    return result


CONFIG: Any = {"api_gateway_base_path": "/", "text_mime_types": ["application/json"], "exclude_headers": []}


# --- inference -------------------------------------------------------------------------------------


def test_infers_the_tencent_example_event() -> None:
    assert TencentAPIGateway.infer(load_event("tencent_apigw.json"), None, CONFIG)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["apigw_v1.json", "apigw_v2_http.json"])
def test_never_claims_an_aws_api_gateway_event(name: str) -> None:
    assert not TencentAPIGateway.infer(load_event(name), None, CONFIG)  # type: ignore[arg-type]


def test_never_claims_an_alb_event() -> None:
    alb = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:..."}},
        "httpMethod": "GET",
        "path": "/api/v1/echo",
        "queryStringParameters": {},
        "headers": {"host": "example.com"},
        "body": "",
        "isBase64Encoded": False,
    }
    assert not TencentAPIGateway.infer(alb, None, CONFIG)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"requestContext": {}},
        {"requestContext": {"serviceId": "service-1"}, "path": "/"},
        {"requestContext": {"serviceId": "service-1"}, "httpMethod": "GET"},
        {"requestContext": "nope", "path": "/", "httpMethod": "GET"},
        {"Type": "Timer", "TriggerName": "EveryDay", "Time": "2026-01-01T00:00:00Z", "Message": ""},
        # a Tencent-looking event that also carries an AWS key is not claimed
        {"requestContext": {"serviceId": "s", "apiId": "x"}, "path": "/", "httpMethod": "GET"},
        {"requestContext": {"serviceId": "s"}, "path": "/", "httpMethod": "GET", "version": "2.0"},
    ],
)
def test_does_not_claim_other_events(event: dict[str, Any]) -> None:
    assert not TencentAPIGateway.infer(event, None, CONFIG)  # type: ignore[arg-type]


def test_mangum_alone_cannot_handle_a_tencent_event() -> None:
    with pytest.raises(RuntimeError, match="unable to infer"):
        Mangum(app, lifespan="off")(load_event("tencent_apigw.json"), None)  # type: ignore[arg-type]


def test_aws_events_still_go_to_mangums_own_handlers() -> None:
    v2 = load_event("apigw_v2_http.json")
    v2["rawPath"] = v2["requestContext"]["http"]["path"] = "/api/v1/echo"
    response = handler(v2, None)  # type: ignore[arg-type]
    assert json.loads(response["body"])["path"] == "/api/v1/echo"
    v1 = load_event("apigw_v1.json")
    v1["path"] = "/api/v1/echo"
    response = handler(v1, None)  # type: ignore[arg-type]
    assert "multiValueHeaders" in response  # answered in the REST v1 shape, not Tencent's


# --- request -----------------------------------------------------------------------------------------


def test_round_trip_of_the_example_event() -> None:
    event = tencent_event(path="/api/v1/echo")
    echoed = echo_of(event)
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/api/v1/echo"
    assert base64.b64decode(echoed["body_b64"]) == b'{"code":"alice"}'
    assert echoed["client"] == "203.0.113.7"
    assert echoed["scheme"] == "https"
    assert echoed["headers"]["host"] == "service-a1b2c3d4-1250000000.gz.apigw.tencentcs.com"
    assert echoed["headers"]["content-type"] == "application/json"


def test_method_comes_from_the_request_not_the_api_definition() -> None:
    event = tencent_event(path="/api/v1/echo", httpMethod="patch", body="")
    event["requestContext"]["httpMethod"] = "ANY"
    assert echo_of(event)["method"] == "PATCH"


def test_query_string_holds_every_parameter_including_repeated_ones() -> None:
    event = tencent_event(
        path="/api/v1/echo",
        httpMethod="GET",
        body="",
        queryString={"a": "1", "tag": ["x", "y"], "empty": "", "n": 5, "flag": None, "zh": "张三 & co"},
        queryStringParameters={"a": "1"},  # only the parameters declared on the API
    )
    assert echo_of(event)["query"] == [
        ["a", "1"],
        ["tag", "x"],
        ["tag", "y"],
        ["empty", ""],
        ["n", "5"],
        ["flag", ""],
        ["zh", "张三 & co"],
    ]


def test_query_string_parameters_are_the_fallback() -> None:
    event = tencent_event(path="/api/v1/echo", httpMethod="GET", body="", queryStringParameters={"q": "1"})
    del event["queryString"]
    assert echo_of(event)["query"] == [["q", "1"]]


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)


@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8),
        st.lists(_TEXT, max_size=3) | _TEXT,
        max_size=5,
    )
)
@settings(max_examples=60, deadline=None)
def test_any_query_string_round_trips(query: dict[str, Any]) -> None:
    event = tencent_event(path="/api/v1/echo", httpMethod="GET", body="", queryString=query)
    expected = [[k, v] for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
    assert echo_of(event)["query"] == expected


def test_header_names_are_lower_cased_and_lists_joined() -> None:
    event = tencent_event(
        path="/api/v1/echo",
        headers={"Host": "h.example", "Authorization": "Bearer abc", "X-Multi": ["1", "2"], "X-Zh": "张三"},
    )
    headers = echo_of(event)["headers"]
    assert headers["authorization"] == "Bearer abc"
    assert headers["x-multi"] == "1, 2"
    assert headers["host"] == "h.example"
    assert "Authorization" not in headers


def test_missing_headers_body_and_flag() -> None:
    event = tencent_event(path="/api/v1/echo", httpMethod="GET")
    for key in ("headers", "body", "isBase64Encoded", "queryString", "queryStringParameters"):
        del event[key]
    echoed = echo_of(event)
    assert echoed["body_b64"] == ""
    assert echoed["query"] == []


@pytest.mark.parametrize("flag", [True, "true", "True"])
def test_base64_request_body_is_decoded(flag: Any) -> None:
    raw = PNG
    event = tencent_event(path="/api/v1/echo", body=base64.b64encode(raw).decode(), isBase64Encoded=flag)
    assert base64.b64decode(echo_of(event)["body_b64"]) == raw


@pytest.mark.parametrize("flag", [False, "false", None])
def test_text_body_is_passed_as_utf8(flag: Any) -> None:
    event = tencent_event(path="/api/v1/echo", body='{"nickName":"张三"}', isBase64Encoded=flag)
    assert base64.b64decode(echo_of(event)["body_b64"]) == '{"nickName":"张三"}'.encode()


def test_json_object_body_from_a_hand_written_event() -> None:
    event = tencent_event(path="/api/v1/echo", body={"code": "alice"})
    assert json.loads(base64.b64decode(echo_of(event)["body_b64"])) == {"code": "alice"}


# --- path prefixes -----------------------------------------------------------------------------------


def test_stage_prefix_is_removed_when_present() -> None:
    event = tencent_event(path="/release/api/v1/echo")
    assert echo_of(event)["path"] == "/api/v1/echo"


def test_a_path_that_merely_starts_like_the_stage_is_kept() -> None:
    event = tencent_event(path="/releases/api/v1/echo")
    assert call(event)["statusCode"] == 404


def test_mangum_base_path_is_honoured() -> None:
    based = Mangum(app, lifespan="off", api_gateway_base_path="/wx", custom_handlers=[TencentAPIGateway])
    response = based(tencent_event(path="/wx/api/v1/echo"), None)  # type: ignore[arg-type]
    assert json.loads(response["body"])["path"] == "/api/v1/echo"


def test_percent_encoded_path_is_decoded() -> None:
    assert echo_of(tencent_event(path="/api/v1/%65cho"))["path"] == "/api/v1/echo"


# --- response ----------------------------------------------------------------------------------------


def test_binary_response_is_base64() -> None:
    response = call(tencent_event(path="/api/v1/image", httpMethod="GET", body=""))
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "image/png"
    assert base64.b64decode(response["body"]) == PNG


def test_repeated_headers_and_cookies() -> None:
    response = call(tencent_event(path="/api/v1/cookies", httpMethod="GET", body=""))
    assert response["body"] == "ok"
    headers = response["headers"]
    assert all(isinstance(v, str) for v in headers.values())
    assert headers["vary"] == "accept, origin"
    cookies = sorted(v for k, v in headers.items() if k.lower() == "set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("a=1") and cookies[1].startswith("b=2")


def test_empty_response_body() -> None:
    response = call(tencent_event(path="/api/v1/empty", httpMethod="GET", body=""))
    assert response["statusCode"] == 204
    assert response["body"] == ""
    assert response["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("path", "method", "status"), [("/nope", "GET", 404), ("/api/v1/image", "POST", 405)]
)
def test_errors_have_the_same_exact_keys(path: str, method: str, status: int) -> None:
    response = call(tencent_event(path=path, httpMethod=method))
    assert response["statusCode"] == status
    assert isinstance(response["body"], str)


def test_the_event_is_not_modified() -> None:
    event = tencent_event(path="/api/v1/echo")
    before = copy.deepcopy(event)
    call(event)
    assert event == before
