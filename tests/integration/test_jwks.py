"""GET /.well-known/jwks.json: public keys only, a valid JWK Set and our envelope at once, usable by
another service to verify our tokens; its own function, with no table access."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from shared.keys import jwt_keys
from shared.settings import get_settings, load_settings
from tests.conftest import TEST_ENV, run_python
from tests.key_material import asymmetric_env, ec_key, rsa_key
from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context

JWKS = "/.well-known/jwks.json"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
ROOT = Path(__file__).resolve().parents[2]


def asymmetric(algorithm):
    return load_settings(asymmetric_env(algorithm, rsa_key("previous"), ec_key("previous"), base=TEST_ENV))


def test_hs256_alone_publishes_an_empty_set_in_the_envelope(client):
    response = client.get(JWKS)
    body = response.json()
    assert response.status_code == 200
    assert body["keys"] == [] and body["data"] == {"keys": []}
    assert (body["code"], body["message"]) == (200, "success") and body["timestamp"].endswith("Z")
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_keys_are_published_and_verify_our_tokens_elsewhere(app, algorithm):
    settings = asymmetric(algorithm)
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app, raise_server_exceptions=False) as client:
        body = client.get(JWKS).json()
        token = client.post("/api/v1/auth/wx-login", json={"code": "carol.1"}).json()["data"]["access_token"]

    ring = jwt_keys(settings)
    assert body["keys"] == body["data"]["keys"] == list(ring.public_jwks)
    assert {k["kid"] for k in body["keys"]} == {
        kid for kid, key in ring.verify_keys.items() if key.algorithm != "HS256"
    }
    assert len(body["keys"]) == 3 and ring.signing_kid in {k["kid"] for k in body["keys"]}
    for key in body["keys"]:
        assert not PRIVATE_MEMBERS & set(key) and key["use"] == "sig"
        assert key["alg"] == {"RSA": "RS256", "EC": "ES256"}[key["kty"]]
    text = json.dumps(body)
    assert "PRIVATE" not in text and settings.jwt_private_key.decode() not in text

    # What another service does: pick the key by the token's kid from the set, verify with its alg.
    key_set = jwt.PyJWKSet.from_dict(body)
    signing = key_set[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token, signing.key, algorithms=[signing.algorithm_name], audience=settings.jwt_audience
    )
    assert claims["iss"] == settings.jwt_issuer and claims["openid"] == "sim-carol"


def test_jwks_lives_at_the_root_only_and_answers_wrong_methods_in_the_envelope(client):
    missing = client.get("/api/v1" + JWKS)
    assert (missing.status_code, missing.json()["reason"]) == (404, "NOT_FOUND")
    wrong = client.post(JWKS)
    assert (wrong.status_code, wrong.json()["reason"]) == (405, "METHOD_NOT_ALLOWED")
    assert "GET" in wrong.headers["allow"]


@pytest.mark.parametrize("build", [apigw_v1, apigw_v2], ids=["v1", "v2"])
def test_the_jwks_function_serves_its_route_and_nothing_else(build):
    function = importlib.import_module("functions.jwks")
    status, body = answer(function.handler(build("GET", JWKS), lambda_context()))
    assert status == 200 and body["keys"] == [] and body["data"] == {"keys": []}
    status, body = answer(function.handler(build("GET", "/api/v1/user/profile"), lambda_context()))
    assert (status, body["reason"]) == (404, "NOT_FOUND")


def run(script: str, env: dict[str, str]) -> str:
    return run_python(script, env).stdout.strip().splitlines()[-1]


def test_the_jwks_function_loads_no_table_model_nor_aws_sdk():
    script = (
        "import sys, functions.jwks; modules = ('shared.storage.dynamodb', 'pynamodb', 'botocore', 'boto3', "
        "'httpx'); "
        "print(sorted(m for m in modules if m in sys.modules))"
    )
    assert run(script, {"STAGE": "local"}) == "[]"


def test_outside_local_rs256_without_a_key_answers_server_misconfigured_naming_the_setting():
    script = (
        "import json; from tests.lambda_events import apigw_v2, lambda_context; import functions.jwks as f; "
        "r = f.handler(apigw_v2('GET', '/.well-known/jwks.json'), lambda_context()); "
        "print(json.dumps({'status': r['statusCode'], 'body': json.loads(r['body'])}))"
    )
    env = {
        "STAGE": "prod",
        "WX_APPID": "wx1",
        "WX_SECRET": "s" * 20,
        "SESSION_KEY_ENCRYPTION_KEY": TEST_ENV["SESSION_KEY_ENCRYPTION_KEY"],
        "JWT_ALGORITHM": "RS256",
        "JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
    }
    out = json.loads(run(script, env))
    assert (out["status"], out["body"]["reason"]) == (500, "SERVER_MISCONFIGURED")
    assert "JWT_PRIVATE_KEY" in out["body"]["message"] and "not a key" not in json.dumps(out)
