"""Profile, request validation at the edge and the envelope at every status."""

import re

import pytest

from tests.conftest import bearer

PROFILE = "/api/v1/user/profile"
LOGIN = "/api/v1/auth/wx-login"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PROFILE_KEYS = {
    "id",
    "openid",
    "nickname",
    "avatar",
    "bio",
    "recipe_count",
    "follower_count",
    "following_count",
    "favorite_count",
    "created_at",
    "updated_at",
    "phone_masked",
}


def assert_error(response, status, reason):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "error", "reason", "timestamp"}
    assert (body["code"], body["reason"]) == (status, reason)
    assert TIMESTAMP.fullmatch(body["timestamp"])
    assert body["message"]
    return body


def test_profile_get_answers_the_contract_fields(client, login):
    data = login("alice", nickName="Alice")
    response = client.get(PROFILE, headers=bearer(data["access_token"]))
    body = response.json()
    assert response.status_code == 200 and TIMESTAMP.fullmatch(body["timestamp"])
    profile = body["data"]
    assert set(profile) == PROFILE_KEYS
    assert profile["id"] == data["user"]["id"] and profile["nickname"] == "Alice"
    assert profile["recipe_count"] == 0 and profile["phone_masked"] == ""
    assert TIMESTAMP.fullmatch(profile["created_at"]) and TIMESTAMP.fullmatch(profile["updated_at"])


def test_profile_patch_changes_only_what_is_given(client, login):
    token = login("alice", nickName="Alice", avatarUrl="https://a.example/1.png")["access_token"]
    before = client.get(PROFILE, headers=bearer(token)).json()["data"]
    response = client.patch(PROFILE, headers=bearer(token), json={"bio": "做饭的人", "nickname": " Al "})
    assert response.status_code == 200
    after = response.json()["data"]
    assert after["bio"] == "做饭的人" and after["nickname"] == "Al" and after["avatar"] == before["avatar"]
    assert after["updated_at"] >= before["updated_at"] and after["created_at"] == before["created_at"]
    assert client.get(PROFILE, headers=bearer(token)).json()["data"] == after


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"nickname": ""},
        {"nickname": "   "},
        {"nickname": "x" * 51},
        {"nickname": None},
        {"nickname": 5},
        {"avatar": "http://a.example/1.png"},
        {"avatar": "https://" + "a" * 250 + ".png"},
        {"avatar": "https://a.example/" + "p" * 238},
        {"avatar": "HTTPS://a.example/1.png"},
        {"avatar": "javascript:alert(1)"},
        {"bio": "b" * 201},
        {"bio": "ok", "admin": True},
        {"nickname": "a\x00b"},
        [],
    ],
)
def test_profile_patch_rejects_bad_input_and_changes_nothing(client, login, body):
    token = login("alice", nickName="Alice")["access_token"]
    before = client.get(PROFILE, headers=bearer(token)).json()["data"]
    assert_error(client.patch(PROFILE, headers=bearer(token), json=body), 400, "INVALID_REQUEST")
    assert client.get(PROFILE, headers=bearer(token)).json()["data"] == before


def test_profile_without_or_with_bad_token(client):
    assert_error(client.get(PROFILE), 401, "TOKEN_MISSING")
    assert_error(client.get(PROFILE, headers={"Authorization": "Bearer"}), 401, "TOKEN_MISSING")
    assert_error(client.get(PROFILE, headers=bearer("a.b.c")), 401, "TOKEN_INVALID")
    assert_error(client.patch(PROFILE, json={"bio": "x"}), 401, "TOKEN_MISSING")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": ""},
        {"code": "a" * 129},
        {"code": "has space"},
        {"code": "中文"},
        {"code": 123},
        {"code": None},
        {"code": "ok", "nickName": "n" * 51},
        {"code": "ok", "nickName": " " + "n" * 51 + " "},
        {"code": "ok", "nickName": 7},
        {"code": "ok", "avatarUrl": "http://insecure.example/a.png"},
        {"code": "ok", "avatarUrl": "https://" + "a" * 250},
        {"code": "ok", "avatarUrl": "https://a.example/" + "p" * 238},
        {"code": "ok", "avatarUrl": "HTTPS://a.example/1.png"},
        {"code": "ok", "unknown": 1},
        ["code"],
        "code",
    ],
)
def test_login_rejects_bad_input_before_asking_wechat(client, simulator, body):
    assert_error(client.post(LOGIN, json=body), 400, "INVALID_REQUEST")
    assert simulator.calls["/sns/jscode2session"] == 0


def test_login_accepts_the_edges_of_valid_input(client):
    body = {
        "code": "z" * 128,
        "nickName": "  " + "n" * 50 + " ",
        "avatarUrl": "https://a.example/" + "p" * 237,
    }
    response = client.post(LOGIN, json=body)
    assert response.status_code == 200
    assert response.json()["data"]["user"]["nickname"] == "n" * 50  # trimmed, then counted


def test_non_json_body_is_invalid_request(client):
    response = client.post(LOGIN, content=b"{not json", headers={"Content-Type": "application/json"})
    body = assert_error(response, 400, "INVALID_REQUEST")
    assert "JSON" in body["message"]
    assert_error(
        client.post(LOGIN, content=b"code=abc", headers={"Content-Type": "text/plain"}),
        400,
        "INVALID_REQUEST",
    )


def test_the_body_limit_is_exactly_16_kib(client):
    def body_of(size):
        head, tail = b'{"code": "edge.', b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    # 16384 bytes is let through (the code is then too long: a validation answer, not 413).
    assert_error(
        client.post(LOGIN, content=body_of(16 * 1024), headers={"Content-Type": "application/json"}),
        400,
        "INVALID_REQUEST",
    )
    assert_error(
        client.post(LOGIN, content=body_of(16 * 1024 + 1), headers={"Content-Type": "application/json"}),
        413,
        "PAYLOAD_TOO_LARGE",
    )


def test_body_over_16_kib_is_payload_too_large(client, simulator):
    huge = {"code": "ok", "nickName": "n" * (17 * 1024)}
    assert_error(client.post(LOGIN, json=huge), 413, "PAYLOAD_TOO_LARGE")
    assert simulator.calls["/sns/jscode2session"] == 0


def test_body_over_the_limit_without_content_length_is_refused_too(client):
    def chunks():
        yield b'{"code": "ok", "nickName": "'
        yield b"n" * (17 * 1024)
        yield b'"}'

    response = client.post(LOGIN, content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_unknown_route_and_wrong_method_are_in_the_envelope(client):
    assert_error(client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert_error(client.get("/"), 404, "NOT_FOUND")
    response = client.get(LOGIN)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["allow"]
    assert_error(client.delete(PROFILE), 405, "METHOD_NOT_ALLOWED")


def test_unexpected_errors_are_internal_error_without_details(client, login, monkeypatch):
    import shared.auth

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret detail from deep inside")

    token = login()["access_token"]
    monkeypatch.setattr(shared.auth, "load_session_and_user", explode)
    response = client.get(PROFILE, headers=bearer(token))
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] in body["message"]


def test_openapi_page_documents_every_route(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/auth/wx-login", "/api/v1/auth/refresh", "/api/v1/auth/logout", PROFILE} <= set(paths)


def test_validation_messages_do_not_echo_odd_field_names(client, login):
    token = login()["access_token"]
    odd = "<img src=x onerror=alert(1)>"
    for response in (
        client.post(LOGIN, json={"code": "ok", odd: 1}),
        client.patch(PROFILE, headers=bearer(token), json={odd: None}),
    ):
        body = assert_error(response, 400, "INVALID_REQUEST")
        assert odd not in response.text and "<img" not in body["message"]
