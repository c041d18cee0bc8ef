"""The JWT attack battery against verify_access_token, for HS256, RS256 and ES256 key rings.

Every forged, tampered, confused or malformed token is TOKEN_INVALID; a genuine token only past
`exp` is TOKEN_EXPIRED; nothing raises anything but ServiceError."""

import base64
import json
import time
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared import jwk
from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.tokens import MAX_TOKEN_LENGTH, KeyRing, verify_access_token
from tests.key_material import BASE_ENV, Forger, asymmetric_settings, b64, ec_key, hmac_token, rsa_key

ALGORITHMS = ["HS256", "RS256", "ES256"]


class Target(Forger):
    """One configured key ring (claims of user 7, audience `wxapp`) and the verdict on a token."""

    def __init__(self, algorithm: str) -> None:
        super().__init__(load_settings(BASE_ENV) if algorithm == "HS256" else asymmetric_settings(algorithm))

    def reason(self, token, **kwargs):
        with pytest.raises(ServiceError) as caught:
            verify_access_token(self.settings, self.keys, token, **kwargs)
        return caught.value.reason


@cache
def configured(algorithm: str) -> Target:
    # Loading an RSA private key costs ~30 ms: one Target per algorithm (it holds no state).
    return Target(algorithm)


@pytest.fixture(params=ALGORITHMS)
def target(request):
    return configured(request.param)


def test_the_genuine_token_verifies(target):
    # The control: every attack below differs from this token in one way only.
    assert verify_access_token(target.settings, target.keys, target.sign()).user_id == 7


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_in_any_case_is_invalid(target, alg, signature):
    token = f"{b64({'alg': alg, 'kid': target.kid, 'typ': 'JWT'})}.{b64(target.claims())}.{signature}"
    assert target.reason(token) is Reason.TOKEN_INVALID


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@pytest.mark.parametrize(
    "encoding",
    ["pem", "pem-no-newline", "der", "pkcs1-pem", "jwk-json"],
)
@pytest.mark.parametrize("kid", ["asymmetric", "hmac", None])
def test_hs256_signed_with_our_public_key_is_invalid(algorithm, encoding, kid):
    """The classic algorithm confusion: the public key (which anyone can fetch) used as HMAC secret."""
    target = configured(algorithm)
    public = target.keys.verify_keys[target.kid].key
    secrets = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk-json": json.dumps(jwk.public_jwk(public)).encode(),
    }
    secrets["pem-no-newline"] = secrets["pem"].rstrip(b"\n")
    secrets["pkcs1-pem"] = (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        if isinstance(public, rsa.RSAPublicKey)
        else secrets["pem"]
    )
    hs_kid = next(k for k, v in target.keys.verify_keys.items() if v.algorithm == "HS256")
    header = {
        "alg": "HS256",
        "typ": "JWT",
        **({"kid": {"asymmetric": target.kid, "hmac": hs_kid}[kid]} if kid else {}),
    }
    assert target.reason(hmac_token(header, target.claims(), secrets[encoding])) is Reason.TOKEN_INVALID


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "RS256", "RS512", "PS256", "ES256", "EdDSA"])
def test_a_kid_only_verifies_with_its_own_algorithm(alg):
    """Every kid of the ring (previous keys included), signed with the very key material behind it
    but under another algorithm of the same family (HS512 with our HMAC secret, PS256 with our
    RSA key, ...): invalid. PyJWT would accept some of these if asked for the header's algorithm."""
    target = configured("RS256")
    material: dict[str, Any] = {
        jwk.thumbprint(key.public_key()): key for key in (rsa_key(), rsa_key("previous"), ec_key("previous"))
    }
    material.update({kid: v.key for kid, v in target.keys.verify_keys.items() if v.algorithm == "HS256"})
    assert set(material) == set(target.keys.verify_keys)
    family = {"HS": bytes, "RS": rsa.RSAPrivateKey, "PS": rsa.RSAPrivateKey, "ES": ec.EllipticCurvePrivateKey}
    signed = 0
    for kid, key in target.keys.verify_keys.items():
        if key.algorithm == alg:
            continue
        header = {"alg": alg, "kid": kid, "typ": "JWT"}
        if isinstance(material[kid], family.get(alg[:2], type(None))):
            token = target.sign_raw(header, target.claims(), key=material[kid], algorithm=alg)
            assert target.reason(token) is Reason.TOKEN_INVALID, (alg, key.algorithm)
            signed += 1
        forged = f"{b64(header)}.{b64(target.claims())}.{b64(b'sig' * 30)}"
        assert target.reason(forged) is Reason.TOKEN_INVALID
    assert signed or alg in ("HS256", "RS256", "ES256", "EdDSA")  # no other key of that family


def test_our_valid_signature_under_a_relabelled_alg_is_invalid():
    target = configured("RS256")
    genuine = target.sign()
    _, payload, signature = genuine.split(".")
    relabelled = f"{b64({'alg': 'PS256', 'kid': target.kid, 'typ': 'JWT'})}.{payload}.{signature}"
    assert target.reason(relabelled) is Reason.TOKEN_INVALID


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "../../../../dev/null",
        "/dev/null",
        "' OR 1=1 --",
        '" OR ""="',
        "kid\x00",
        "%2e%2e%2f",
        "k" * 1000,
        "",
        " ",
        1,
        0,
        True,
        None,
        ["a"],
        {"kid": "x"},
        3.5,
    ],
)
def test_kid_tricks_are_invalid(target, kid):
    assert target.reason(target.sign(kid=kid)) is Reason.TOKEN_INVALID


def test_near_miss_kids_are_invalid(target):
    for kid in (target.kid.upper(), target.kid + " ", " " + target.kid, target.kid[:-1]):
        if kid != target.kid:
            assert target.reason(target.sign(kid=kid)) is Reason.TOKEN_INVALID


def test_a_missing_kid_is_invalid(target):
    token = target.sign_raw({"alg": target.algorithm, "typ": "JWT"}, target.claims())
    assert target.reason(token) is Reason.TOKEN_INVALID


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "cty"])
def test_key_and_processing_headers_are_refused_even_on_our_own_signature(target, header):
    values = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": jwk.public_jwk(ec_key("attacker").public_key()),
        "x5c": ["MIIB"],
        "crit": ["exp"],
        "b64": False,
        "zip": "DEF",
        "cty": "JWT",
    }
    assert target.reason(target.sign(**{header: values[header]})) is Reason.TOKEN_INVALID


@pytest.mark.parametrize("attacker_alg", ["RS256", "ES256"])
def test_a_token_signed_by_a_key_embedded_in_its_own_header_is_invalid(target, attacker_alg):
    attacker: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa_key("attacker") if attacker_alg == "RS256" else ec_key("attacker")
    )
    embedded = jwk.public_jwk(attacker.public_key())
    for kid in (embedded["kid"], target.kid):
        header = {"alg": attacker_alg, "kid": kid, "typ": "JWT", "jwk": embedded}
        token = target.sign_raw(header, target.claims(), key=attacker, algorithm=attacker_alg)
        assert target.reason(token) is Reason.TOKEN_INVALID
        header = {"alg": attacker_alg, "kid": kid, "typ": "JWT", "jku": "https://attacker.example/jwks"}
        token = target.sign_raw(header, target.claims(), key=attacker, algorithm=attacker_alg)
        assert target.reason(token) is Reason.TOKEN_INVALID
    # And without any key header: an attacker key is just a wrong signature.
    plain = {"alg": attacker_alg, "kid": target.kid, "typ": "JWT"}
    token = target.sign_raw(plain, target.claims(), key=attacker, algorithm=attacker_alg)
    assert target.reason(token) is Reason.TOKEN_INVALID


def test_duplicate_claims_are_invalid_even_with_our_signature(target):
    """Parsers disagree on which of two "sub" wins; we never issue one, so we accept neither."""
    claims = json.dumps(target.claims())
    twice_sub = claims[:-1] + ', "sub": "8"}'
    twice_sid = claims[:-1] + ', "sid": "other"}'
    header = json.dumps({"alg": target.algorithm, "kid": target.kid, "typ": "JWT"})
    for payload in (twice_sub, twice_sid):
        assert target.reason(target.sign_raw(header, payload)) is Reason.TOKEN_INVALID
    twice_alg = header[:-1] + ', "alg": "none"}'
    assert target.reason(target.sign_raw(twice_alg, claims)) is Reason.TOKEN_INVALID


def test_huge_tokens_are_invalid_without_parsing(target):
    for size in (8 * 1024, 9000, 64 * 1024, 1024 * 1024):
        assert target.reason(target.sign(kid="k" * size)) is Reason.TOKEN_INVALID
        assert target.reason(target.sign(target.claims(nickname="n" * size))) is Reason.TOKEN_INVALID
    assert target.reason("a" * (MAX_TOKEN_LENGTH + 1)) is Reason.TOKEN_INVALID


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", "!", 1),
        lambda t: "*" + t,
        lambda t: t + "=",
        lambda t: t.replace("-", "+").replace("_", "/") + "+/",
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.replace(".", ". ", 1),
        lambda t: "é" + t,
        lambda t: t.split(".")[0] + "." + "A" + "." + t.split(".")[2],  # 1 char: not base64 at all
        lambda t: b64(b"\xff\xfe\x00") + "." + t.split(".", 1)[1],  # not UTF-8
        lambda t: b64(b"[1, 2]") + "." + t.split(".", 1)[1],  # JSON, but not an object
        lambda t: b64(b"{'alg': 'HS256'}") + "." + t.split(".", 1)[1],  # not JSON
        lambda t: t.split(".")[0] + "." + b64(b"[" * 1200 + b"]" * 1200) + "." + t.split(".")[2],
        lambda t: t.split(".")[0] + "." + b64(b'{"exp": 1e999}') + "." + t.split(".")[2],
        lambda t: t.split(".")[0] + "." + b64(b'{"exp": NaN}') + "." + t.split(".")[2],
    ],
    ids=[
        "bang",
        "star",
        "padding",
        "std-base64",
        "leading-space",
        "newline",
        "space-in-token",
        "non-ascii",
        "one-char-segment",
        "not-utf8",
        "json-array",
        "not-json",
        "deep-nesting",
        "infinite-exp",
        "nan-exp",
    ],
)
def test_non_base64_and_non_json_segments_are_invalid(target, mangle):
    assert target.reason(mangle(target.sign())) is Reason.TOKEN_INVALID


@pytest.mark.parametrize(
    "shape",
    [
        lambda t: t + ".extra",
        lambda t: t + "." + t.split(".")[2],
        lambda t: ".".join(t.split(".")[:2]),
        lambda t: t.split(".")[0],
        lambda t: t + ".",
        lambda t: "." + t,
        lambda t: t.replace(".", "..", 1),
        lambda t: ".".join([*t.split("."), "a", "b"]),  # five segments, like a JWE
        lambda t: "",
        lambda t: "..",
    ],
)
def test_anything_but_three_segments_is_invalid(target, shape):
    assert target.reason(shape(target.sign())) is Reason.TOKEN_INVALID


def test_expired_is_expired_but_only_when_everything_else_holds(target):
    now = int(time.time())
    expired = target.claims(iat=now - 700, exp=now - 31)
    assert target.reason(target.sign(expired)) is Reason.TOKEN_EXPIRED
    verify_access_token(target.settings, target.keys, target.sign(target.claims(exp=now - 20)))
    assert verify_access_token(target.settings, target.keys, target.sign(expired), allow_expired=True).sid
    # Expired and wrong in another way: not ours to refresh, so invalid, never "expired".
    for other in ({"aud": "other-app"}, {"iss": "someone-else"}, {"sid": None}):
        assert target.reason(target.sign({**expired, **other})) is Reason.TOKEN_INVALID
    # An expired token with a broken signature is not ours at all.
    head, payload, signature = target.sign(expired).split(".")
    assert target.reason(f"{head}.{payload}.{signature[::-1]}") is Reason.TOKEN_INVALID


def test_not_yet_valid_tokens_are_invalid_beyond_the_leeway(target):
    now = int(time.time())
    assert target.reason(target.sign(target.claims(nbf=now + 3600))) is Reason.TOKEN_INVALID
    assert target.reason(target.sign(target.claims(iat=now + 3600))) is Reason.TOKEN_INVALID
    assert (
        target.reason(target.sign(target.claims(iat=now + 10**12, exp=now + 10**12 + 600)))
        is Reason.TOKEN_INVALID
    )
    # Within the 30 s of clock skew both are fine.
    verify_access_token(target.settings, target.keys, target.sign(target.claims(nbf=now + 20, iat=now + 20)))


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": "now"},
        {"iat": 1.5},
        {"iat": True},
        {"exp": "tomorrow"},
        {"exp": 10**30 + 0.5},
        {"exp": False},
        {"nbf": "0"},
        {"nbf": None, "iat": None},
        {"exp": None},
        {"sub": 7},
        {"sub": "٧"},  # an Arabic-Indic seven: isdigit() but not ours
        {"sub": "-7"},
        {"sub": "07"},  # a leading zero: not how we write an id ("00" would name user 0)
        {"sub": "0"},
        {"sub": "9" * 25},
        {"sid": ""},
        {"sid": ["sid-7"]},
        {"sid": "s" * 500},
        {"openid": None},
        {"openid": 5},
        {"iss": None},
        {"aud": None},
        {"aud": "other-app"},
        {"aud": ["other-app"]},
        {"iss": "someone-else"},
        {"iss": ["wx-login"]},
        {"jti": 5},
    ],
)
def test_wrong_or_missing_claims_are_invalid(target, claims):
    assert target.reason(target.sign(target.claims(**claims))) is Reason.TOKEN_INVALID


@pytest.mark.parametrize("typ", ["at+jwt", "JWS", "jwt", "", None])
def test_unexpected_typ_is_invalid(target, typ):
    header = {"alg": target.algorithm, "kid": target.kid, "typ": typ}
    assert target.reason(target.sign_raw(header, target.claims())) is Reason.TOKEN_INVALID


def test_tokens_of_another_configuration_are_invalid():
    rs, es, hs = configured("RS256"), configured("ES256"), configured("HS256")
    other_rs = load_settings({**BASE_ENV, "JWT_ALGORITHM": "RS256", "JWT_SECRET": "z" * 40})
    other_keys = KeyRing.from_settings(other_rs)  # a fresh local key pair
    for token in (rs.sign(), es.sign(), hs.sign()):
        with pytest.raises(ServiceError) as caught:
            verify_access_token(other_rs, other_keys, token)
        assert caught.value.reason is Reason.TOKEN_INVALID


def test_a_truncated_or_bit_flipped_signature_is_invalid(target):
    token = target.sign()
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    for index in (0, len(raw) // 2, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[index] ^= 1
        assert target.reason(f"{head}.{payload}.{b64(bytes(flipped))}") is Reason.TOKEN_INVALID
    for cut in (1, len(raw) // 2, len(raw) - 1):
        assert target.reason(f"{head}.{payload}.{b64(bytes(raw[:cut]))}") is Reason.TOKEN_INVALID
    assert target.reason(f"{head}.{payload}.{b64(bytes(raw) + b'x')}") is Reason.TOKEN_INVALID
