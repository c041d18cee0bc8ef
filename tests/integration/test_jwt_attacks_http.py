"""The JWT attack battery through the HTTP app (every route that takes a bearer token), for HS256
and for RS256/ES256 keys from settings: always 401 with the right reason, never a 500, and no
attack touches the victim's session."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared import jwk
from shared.settings import Settings, get_settings, load_settings
from tests.conftest import TEST_ENV, bearer
from tests.key_material import Forger, asymmetric_env, b64, ec_key, hmac_token, rsa_key

PROFILE = "/api/v1/user/profile"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGIN = "/api/v1/auth/wx-login"
ENVELOPE_ERROR_KEYS = {"code", "message", "error", "reason", "timestamp"}


@cache
def configured_settings(algorithm: str) -> Settings:
    """The test environment switched to `algorithm`; a previous RSA and EC key still verify."""
    return load_settings(asymmetric_env(algorithm, rsa_key("previous"), ec_key("previous"), base=TEST_ENV))


class Victim:
    """A logged-in user of an app configured for one algorithm, and a forger aimed at its session."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        response = client.post(LOGIN, json={"code": f"victim.{id(self)}", "nickName": "Victim"})
        assert response.status_code == 200, response.text
        self.tokens: dict[str, Any] = response.json()["data"]
        claims = jwt.decode(self.tokens["access_token"], options={"verify_signature": False})
        session = {name: claims[name] for name in ("sub", "openid", "nickname", "sid")}
        self.forger = Forger(settings, base_claims=session)

    @property
    def token(self) -> str:
        return str(self.tokens["access_token"])


@pytest.fixture(params=["HS256", "RS256", "ES256"])
def victim(request: pytest.FixtureRequest, app: FastAPI) -> Iterator[Victim]:
    if request.param == "HS256":
        settings = get_settings()
    else:
        settings = configured_settings(request.param)
        app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Victim(client, settings)


def answers(client: TestClient, token_or_header: str, *, raw: bool = False) -> set[tuple[int, str]]:
    """(status, reason) of every bearer route for this token, each checked to be in the envelope."""
    headers = {"Authorization": token_or_header} if raw else bearer(token_or_header)
    results = set()
    for method, path, body in (
        ("GET", PROFILE, None),
        ("PATCH", PROFILE, {"bio": "pwned"}),
        ("POST", REFRESH, None),
        ("POST", LOGOUT, None),
        ("POST", LOGOUT, {"all": True}),
    ):
        response = client.request(method, path, headers=headers, json=body)
        data = response.json()
        assert set(data) == ENVELOPE_ERROR_KEYS, (method, path, data)
        assert data["code"] == response.status_code
        results.add((response.status_code, data["reason"]))
    return results


def _unsigned(v: Victim, alg: str) -> str:
    return f"{b64({'alg': alg, 'kid': v.forger.kid, 'typ': 'JWT'})}.{b64(v.forger.claims())}."


def _public_key_as_hmac_secret(v: Victim) -> str:
    public = v.forger.keys.verify_keys[v.forger.kid].key
    if isinstance(public, bytes):  # HS256: the attacker uses some other public key he knows of
        public = rsa_key("previous").public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hmac_token({"alg": "HS256", "kid": v.forger.kid, "typ": "JWT"}, v.forger.claims(), pem)


def _previous_kid_wrong_alg(v: Victim) -> str:
    previous = rsa_key("previous").public_key()
    pem = previous.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": jwk.thumbprint(previous), "typ": "JWT"}
    return hmac_token(header, v.forger.claims(), pem)


def _attacker_key_in_header(v: Victim, member: str) -> str:
    attacker = ec_key("attacker")
    embedded = jwk.public_jwk(attacker.public_key())
    values = {
        "jwk": embedded,
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/c",
    }
    header = {"alg": "ES256", "kid": embedded["kid"], "typ": "JWT", member: values[member]}
    return v.forger.sign_raw(header, v.forger.claims(), key=attacker, algorithm="ES256")


def _duplicate_sub(v: Victim) -> str:
    claims = json.dumps(v.forger.claims())
    header = {"alg": v.forger.algorithm, "kid": v.forger.kid, "typ": "JWT"}
    return v.forger.sign_raw(header, claims[:-1] + ', "sub": "999999"}')


def _tampered_payload(v: Victim) -> str:
    head, _, signature = v.token.split(".")
    return f"{head}.{b64(v.forger.claims(sub='999999'))}.{signature}"


def _in(seconds: int) -> int:
    return int(time.time()) + seconds


ATTACKS: dict[str, tuple[Callable[[Victim], str], str]] = {
    "alg-none": (lambda v: _unsigned(v, "none"), "TOKEN_INVALID"),
    "alg-None": (lambda v: _unsigned(v, "None"), "TOKEN_INVALID"),
    "alg-NONE": (lambda v: _unsigned(v, "NONE"), "TOKEN_INVALID"),
    "hs256-with-public-key": (_public_key_as_hmac_secret, "TOKEN_INVALID"),
    "previous-kid-wrong-alg": (_previous_kid_wrong_alg, "TOKEN_INVALID"),
    "kid-path": (lambda v: v.forger.sign(kid="../../etc/passwd"), "TOKEN_INVALID"),
    "kid-sql": (lambda v: v.forger.sign(kid="' OR 1=1 --"), "TOKEN_INVALID"),
    "kid-long": (lambda v: v.forger.sign(kid="k" * 2000), "TOKEN_INVALID"),
    "kid-number": (lambda v: v.forger.sign(kid=1), "TOKEN_INVALID"),
    "kid-missing": (
        lambda v: v.forger.sign_raw({"alg": v.forger.algorithm, "typ": "JWT"}, v.forger.claims()),
        "TOKEN_INVALID",
    ),
    "jwk-embedded": (lambda v: _attacker_key_in_header(v, "jwk"), "TOKEN_INVALID"),
    "jku": (lambda v: _attacker_key_in_header(v, "jku"), "TOKEN_INVALID"),
    "x5u": (lambda v: _attacker_key_in_header(v, "x5u"), "TOKEN_INVALID"),
    "jku-on-our-signature": (lambda v: v.forger.sign(jku="https://attacker.example/j"), "TOKEN_INVALID"),
    "duplicate-sub": (_duplicate_sub, "TOKEN_INVALID"),
    "tampered-payload": (_tampered_payload, "TOKEN_INVALID"),
    "huge-9k": (lambda v: v.forger.sign(kid="k" * 9000), "TOKEN_INVALID"),
    "non-base64": (lambda v: v.token.replace(".", ".!", 1), "TOKEN_INVALID"),
    "std-base64-padding": (lambda v: v.token + "==", "TOKEN_INVALID"),
    "extra-segment": (lambda v: v.token + "." + v.token.split(".")[2], "TOKEN_INVALID"),
    "two-segments": (lambda v: v.token.rsplit(".", 1)[0], "TOKEN_INVALID"),
    "nbf-future": (lambda v: v.forger.sign(v.forger.claims(nbf=_in(600))), "TOKEN_INVALID"),
    "iat-future": (lambda v: v.forger.sign(v.forger.claims(iat=_in(600))), "TOKEN_INVALID"),
    "wrong-iss": (lambda v: v.forger.sign(v.forger.claims(iss="someone-else")), "TOKEN_INVALID"),
    "wrong-aud": (lambda v: v.forger.sign(v.forger.claims(aud="another-app")), "TOKEN_INVALID"),
    "no-sid": (lambda v: v.forger.sign(v.forger.claims(sid=None)), "TOKEN_INVALID"),
}


def test_every_attack_is_answered_401_with_its_reason_on_every_bearer_route(victim):
    # One login per algorithm for the whole battery (moto set-up costs more than the attacks).
    wrong = {}
    for attack, (build, reason) in ATTACKS.items():
        answered = answers(victim.client, build(victim))
        if answered != {(401, reason)}:
            wrong[attack] = answered
    assert wrong == {}
    # The victim's session is untouched: no attack logged it out or changed the profile.
    profile = victim.client.get(PROFILE, headers=bearer(victim.token))
    assert profile.status_code == 200 and profile.json()["data"]["bio"] == ""


@pytest.mark.parametrize("claims", [{"sid": "A" * 22}, {"sub": "999999"}], ids=["unknown-sid", "other-user"])
def test_a_token_we_signed_for_no_live_session_is_session_revoked(victim, claims):
    token = victim.forger.sign(victim.forger.claims(**claims))
    for method, path in (("GET", PROFILE), ("PATCH", PROFILE), ("POST", REFRESH)):
        response = victim.client.request(method, path, headers=bearer(token), json=None)
        assert (response.status_code, response.json()["reason"]) == (401, "SESSION_REVOKED"), path


def test_the_genuine_token_is_of_the_configured_algorithm_and_works_everywhere(victim):
    header = jwt.get_unverified_header(victim.token)
    assert header == {"alg": victim.forger.algorithm, "kid": victim.forger.kid, "typ": "JWT"}
    assert victim.client.get(PROFILE, headers=bearer(victim.token)).status_code == 200
    renewed = victim.client.post(REFRESH, headers=bearer(victim.token))
    assert renewed.status_code == 200
    assert jwt.get_unverified_header(renewed.json()["data"]["access_token"])["kid"] == victim.forger.kid


def test_expired_token_is_token_expired_but_may_still_log_out(victim, frozen_clock):
    frozen_clock.advance(victim.forger.settings.access_token_ttl + 31)
    for method, path in (("GET", PROFILE), ("POST", REFRESH)):
        response = victim.client.request(method, path, headers=bearer(victim.token))
        assert (response.status_code, response.json()["reason"]) == (401, "TOKEN_EXPIRED")
    assert victim.client.post(LOGOUT, headers=bearer(victim.token)).status_code == 200
    refreshed = victim.client.post(REFRESH, json={"refresh_token": victim.tokens["refresh_token"]})
    assert (refreshed.status_code, refreshed.json()["reason"]) == (401, "SESSION_REVOKED")


def test_revoked_session_is_session_revoked_everywhere_but_logout(victim):
    assert victim.client.post(LOGOUT, headers=bearer(victim.token)).status_code == 200
    for method, path in (("GET", PROFILE), ("PATCH", PROFILE), ("POST", REFRESH)):
        response = victim.client.request(method, path, headers=bearer(victim.token), json=None)
        assert (response.status_code, response.json()["reason"]) == (401, "SESSION_REVOKED"), path
    # Logging out again with a token we signed is fine (contract).
    assert victim.client.post(LOGOUT, headers=bearer(victim.token)).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "JWT abc", "bearer"],
)
def test_no_bearer_token_is_token_missing(client, authorization):
    assert answers(client, authorization, raw=True) == {(401, "TOKEN_MISSING")}


def test_a_token_anywhere_but_the_authorization_header_is_ignored(client, login):
    token = login()["access_token"]
    client.cookies.set("access_token", token)
    response = client.get(PROFILE, params={"access_token": token})
    client.cookies.clear()
    assert (response.status_code, response.json()["reason"]) == (401, "TOKEN_MISSING")
    response = client.get(PROFILE, headers={"X-Access-Token": token, "Authorization": f"Basic {token}"})
    assert (response.status_code, response.json()["reason"]) == (401, "TOKEN_MISSING")


@pytest.mark.parametrize("size", [8 * 1024 + 1, 12 * 1024, 64 * 1024, 1024 * 1024])
def test_huge_authorization_headers_are_401_not_413_or_500(client, size):
    assert answers(client, "Bearer " + "A" * size, raw=True) == {(401, "TOKEN_INVALID")}
    dotted = "Bearer " + ".".join(["eyJ" + "A" * (size // 3)] * 3)
    assert answers(client, dotted, raw=True) == {(401, "TOKEN_INVALID")}


def test_headers_do_not_count_towards_the_16_kib_body_limit_but_bodies_do(client):
    huge = {"Authorization": "Bearer " + "A" * (20 * 1024)}
    small = client.post(REFRESH, headers=huge, json={"refresh_token": "x" * 100})
    assert (small.status_code, small.json()["reason"]) == (401, "REFRESH_TOKEN_INVALID")
    big = client.post(REFRESH, headers=huge, json={"refresh_token": "x" * (17 * 1024)})
    assert (big.status_code, big.json()["reason"]) == (413, "PAYLOAD_TOO_LARGE")


def test_non_ascii_in_the_header_is_401_and_control_characters_are_a_malformed_header(client):
    raw = [(b"authorization", "Bearer é.é.é".encode("latin-1"))]
    response = client.get(PROFILE, headers=raw)
    assert (response.status_code, response.json()["reason"]) == (401, "TOKEN_INVALID")
    # A control character makes the header itself malformed (HTTP forbids it; a socket server refuses
    # the request): 400, as for any malformed header (shared/api/edge.py).
    for value in ("Bearer \x01\x02.a.b", "Bearer a.b.c\x7f"):
        response = client.get(PROFILE, headers=[(b"authorization", value.encode("latin-1"))])
        assert (response.status_code, response.json()["reason"]) == (400, "INVALID_REQUEST"), value


def test_a_base64_standard_alphabet_token_is_not_normalised(client, login):
    token = login()["access_token"]
    standard = token.replace("-", "+").replace("_", "/")
    if standard != token:
        assert answers(client, standard) == {(401, "TOKEN_INVALID")}
    padded = ".".join(
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))).decode()
        for s in token.split(".")
    )
    if padded != token:
        assert answers(client, padded) == {(401, "TOKEN_INVALID")}
