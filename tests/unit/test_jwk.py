"""Asymmetric keys: settings checks, RFC 7638 kids, public JWKs, KeyRing and rotation."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import jwk
from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.tokens import KeyRing, issue_access_token, verify_access_token
from tests.key_material import (
    BASE_ENV,
    asymmetric_env,
    asymmetric_settings,
    ec_key,
    private_pem,
    public_pem,
    rsa_key,
)

PROD = {**BASE_ENV, "STAGE": "prod", "WX_SECRET": "wx-secret-value"}


def issue(settings, now=None):
    return issue_access_token(
        settings,
        KeyRing.from_settings(settings),
        user_id=7,
        openid="o-7",
        nickname="n",
        sid="sid-7",
        now=time.time() if now is None else now,
    )


def verify(settings, token):
    return verify_access_token(settings, KeyRing.from_settings(settings), token)


def test_thumbprint_is_rfc7638_on_the_rfc_example_key():
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWK"
        "RXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMic"
        "AtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3X"
        "PksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(jwt.utils.base64url_decode(n), "big")
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert jwk.thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_jwk_has_only_public_members_and_loads_back_as_the_same_key(algorithm):
    key = rsa_key() if algorithm == "RS256" else ec_key()
    published = jwk.public_jwk(key.public_key())
    assert published["alg"] == algorithm and published["use"] == "sig"
    assert published["kid"] == jwk.thumbprint(key.public_key())
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(published)
    if algorithm == "ES256":
        assert published["crv"] == "P-256" and len(published["x"]) == len(published["y"]) == 43
    else:
        assert published["e"] == "AQAB"
    loaded = jwt.PyJWK(published).key
    assert loaded.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_production_with_a_valid_key_has_no_problems_and_needs_no_jwt_secret(algorithm):
    env = {k: v for k, v in asymmetric_env(algorithm, base=PROD).items() if k != "JWT_SECRET"}
    settings = load_settings(env)
    assert settings.problems == ()
    assert settings.jwt_algorithm == algorithm and settings.jwt_secret == b""
    assert verify(settings, issue(settings)).user_id == 7


def test_algorithm_names_are_case_insensitive_and_anything_else_is_a_problem():
    assert load_settings({**asymmetric_env("RS256"), "JWT_ALGORITHM": "rs256"}).jwt_algorithm == "RS256"
    for bad in ("none", "HS512", "PS256", "EdDSA"):
        assert load_settings({**PROD, "JWT_ALGORITHM": bad}).problems == ("JWT_ALGORITHM",), bad


def test_a_private_key_staged_before_the_switch_from_hs256_is_unused_and_harmless():
    env = {**PROD, "JWT_PRIVATE_KEY": private_pem(rsa_key())}
    settings = load_settings(env)
    assert settings.problems == () and settings.jwt_algorithm == "HS256"
    assert settings.jwt_private_key == b""


@pytest.mark.parametrize(
    ("algorithm", "pem"),
    [
        ("RS256", None),
        ("RS256", ""),
        ("RS256", "not a pem"),
        ("RS256", "weak"),
        ("RS256", "ec"),
        ("ES256", "rsa"),
        ("ES256", "p384"),
        ("RS256", "public"),
        ("RS256", "encrypted"),
    ],
)
def test_outside_local_an_unusable_private_key_is_a_problem_naming_jwt_private_key(algorithm, pem):
    pems = {
        "weak": lambda: private_pem(rsa_key("weak", 1024)),
        "ec": lambda: private_pem(ec_key()),
        "rsa": lambda: private_pem(rsa_key()),
        "p384": lambda: private_pem(ec_key("p384", "P-384")),
        "public": lambda: public_pem(rsa_key()),
        "encrypted": lambda: (
            rsa_key()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"password"),
            )
            .decode()
        ),
    }
    env = {**PROD, "JWT_ALGORITHM": algorithm}
    if pem is not None:
        env["JWT_PRIVATE_KEY"] = pems[pem]() if pem in pems else pem
    settings = load_settings(env)
    assert settings.problems == ("JWT_PRIVATE_KEY",)
    assert "PRIVATE KEY" not in repr(settings)


def test_a_short_jwt_secret_is_still_a_problem_with_rs256():
    assert load_settings({**asymmetric_env("RS256", base=PROD), "JWT_SECRET": "short"}).problems == (
        "JWT_SECRET",
    )


def test_one_line_pems_with_escaped_newlines_are_accepted():
    env = asymmetric_env("ES256", rsa_key("previous"), base=PROD)
    names = ("JWT_PRIVATE_KEY", "JWT_PREVIOUS_PUBLIC_KEYS")
    one_line = {name: env[name].replace("\n", "\\n") for name in names}
    settings = load_settings({**env, **one_line})
    assert settings.problems == ()
    assert len(KeyRing.from_settings(settings).public_jwks) == 2


@pytest.mark.parametrize(
    "previous",
    [
        lambda: "garbage",
        lambda: public_pem(rsa_key()) + "\nnot a key\n" + public_pem(ec_key()),
        lambda: public_pem(rsa_key("weak", 1024)),
        lambda: public_pem(ec_key("p384", "P-384")),
        lambda: private_pem(rsa_key("previous")),  # a private key must never land in the public list
    ],
    ids=["garbage", "junk-between", "weak-rsa", "p384", "private-key"],
)
def test_unusable_previous_public_keys_are_a_problem(previous):
    settings = load_settings({**asymmetric_env("RS256", base=PROD), "JWT_PREVIOUS_PUBLIC_KEYS": previous()})
    assert settings.problems == ("JWT_PREVIOUS_PUBLIC_KEYS",)


def test_previous_public_keys_may_be_separated_by_commas():
    both = public_pem(rsa_key("previous")) + "," + public_pem(ec_key("previous"))
    settings = load_settings({**asymmetric_env("RS256", base=PROD), "JWT_PREVIOUS_PUBLIC_KEYS": both})
    assert settings.problems == () and len(settings.jwt_previous_public_keys) == 2


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_local_stage_without_a_key_generates_one_per_process(algorithm):
    first = load_settings({"STAGE": "local", "JWT_ALGORITHM": algorithm})
    second = load_settings({"STAGE": "local", "JWT_ALGORITHM": algorithm})
    assert first.problems == () and first.jwt_private_key != second.jwt_private_key
    assert first.jwt_secret == b""  # no stray HMAC key that would also verify
    ring = KeyRing.from_settings(first)
    assert [v.algorithm for v in ring.verify_keys.values()] == [algorithm]
    assert verify(first, issue(first)).sid == "sid-7"
    with pytest.raises(ServiceError):
        verify(second, issue(first))


def test_key_ring_binds_each_kid_to_one_algorithm_and_publishes_only_public_keys():
    settings = asymmetric_settings("RS256")
    ring = KeyRing.from_settings(settings)
    algorithms = {kid: key.algorithm for kid, key in ring.verify_keys.items()}
    assert algorithms[ring.signing_kid] == "RS256" and ring.signing_algorithm == "RS256"
    assert sorted(algorithms.values()) == ["ES256", "HS256", "RS256", "RS256"]
    assert ring.signing_kid == jwk.thumbprint(rsa_key().public_key())
    published = {j["kid"]: j["alg"] for j in ring.public_jwks}
    assert published == {kid: alg for kid, alg in algorithms.items() if alg != "HS256"}
    assert KeyRing.from_settings(load_settings(BASE_ENV)).public_jwks == ()
    text = repr(ring)
    assert "PRIVATE" not in text and "s" * 40 not in text


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_issued_tokens_carry_the_algorithm_and_the_thumbprint_kid(algorithm):
    settings = asymmetric_settings(algorithm)
    token = issue(settings)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "kid": KeyRing.from_settings(settings).signing_kid, "typ": "JWT"}
    assert verify(settings, token).user_id == 7


def test_switching_from_hs256_keeps_old_tokens_valid_while_jwt_secret_is_kept():
    old = issue(load_settings(BASE_ENV))
    assert verify(asymmetric_settings("RS256", with_previous=False), old).user_id == 7
    dropped = load_settings({**asymmetric_env("RS256"), "JWT_SECRET": ""})
    with pytest.raises(ServiceError) as caught:
        verify(dropped, old)
    assert caught.value.reason is Reason.TOKEN_INVALID


def test_rotating_the_private_key_keeps_tokens_of_the_previous_public_key_valid():
    before = load_settings(asymmetric_env("RS256"))
    token = issue(before)
    after_env = {
        **asymmetric_env("ES256"),
        "JWT_PREVIOUS_PUBLIC_KEYS": public_pem(rsa_key()),
    }
    after = load_settings(after_env)
    assert verify(after, token).user_id == 7
    assert jwt.get_unverified_header(issue(after))["alg"] == "ES256"
    gone = load_settings(asymmetric_env("ES256"))
    with pytest.raises(ServiceError) as caught:
        verify(gone, token)
    assert caught.value.reason is Reason.TOKEN_INVALID
