"""WeChat open-data decryption, the watermark check and the session signature, on WeChat's own samples."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from shared.phone import PhoneNumber, mask_phone
from shared.wxcrypto import OpenDataError, decrypt_open_data, encrypt_open_data, session_signature

# WeChat's published decryptData sample ("开放数据校验与解密", the WXBizDataCrypt demo of its docs).
SAMPLE_APPID = "wx4f4bc4dec97d474b"
SAMPLE_SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
SAMPLE_IV = "r7BXXKkLb8qrSNn05n0qiA=="
SAMPLE_ENCRYPTED_DATA = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVb"
    "JSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COx"
    "Fvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4"
    "ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwT"
    "yrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5"
    "oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
)
SAMPLE_PLAINTEXT = {
    "openId": "oGZUI0egBJY1zhBYw2KhdUfwVJJE",
    "nickName": "Band",
    "gender": 1,
    "language": "zh_CN",
    "city": "Guangzhou",
    "province": "Guangdong",
    "country": "CN",
    "avatarUrl": "http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0",
    "unionId": "ocMvos6NjeKLIBqg5Mr9QjxrP1FA",
    "watermark": {"timestamp": 1477314187, "appid": "wx4f4bc4dec97d474b"},
}
OTHER_KEY = base64.b64encode(b"0123456789abcdef").decode()


def test_wechats_published_sample_decrypts_to_its_published_json():
    assert (
        decrypt_open_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV, SAMPLE_APPID)
        == SAMPLE_PLAINTEXT
    )


def test_the_sample_as_wechats_docs_wrap_it_over_lines_decrypts_too():
    wrapped = "\n".join(SAMPLE_ENCRYPTED_DATA[i : i + 32] for i in range(0, len(SAMPLE_ENCRYPTED_DATA), 32))
    assert decrypt_open_data(SAMPLE_SESSION_KEY, wrapped, SAMPLE_IV, SAMPLE_APPID)["nickName"] == "Band"


def test_a_stale_session_key_fails():
    with pytest.raises(OpenDataError, match="does not decrypt"):
        decrypt_open_data(OTHER_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV, SAMPLE_APPID)


def test_a_foreign_watermark_fails():
    with pytest.raises(OpenDataError, match="watermark"):
        decrypt_open_data(SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, SAMPLE_IV, "wx-our-own-appid")


@pytest.mark.parametrize(
    "data",
    [{"phoneNumber": "1"}, {"watermark": "wx"}, {"watermark": {"appid": 7}}, {"watermark": {}}],
)
def test_missing_or_malformed_watermarks_fail(data):
    encrypted, iv = encrypt_open_data(OTHER_KEY, data)
    with pytest.raises(OpenDataError, match="watermark"):
        decrypt_open_data(OTHER_KEY, encrypted, iv, "wx-app")


@pytest.mark.parametrize(
    ("session_key", "encrypted", "iv", "step"),
    [
        ("not base64!", SAMPLE_ENCRYPTED_DATA, SAMPLE_IV, "session_key"),
        (base64.b64encode(b"short").decode(), SAMPLE_ENCRYPTED_DATA, SAMPLE_IV, "session_key"),
        (SAMPLE_SESSION_KEY, SAMPLE_ENCRYPTED_DATA, "AAAA", "iv"),
        (SAMPLE_SESSION_KEY, "%%%", SAMPLE_IV, "encryptedData"),
        (SAMPLE_SESSION_KEY, "", SAMPLE_IV, "blocks"),
        (SAMPLE_SESSION_KEY, base64.b64encode(b"x" * 20).decode(), SAMPLE_IV, "blocks"),
        (SAMPLE_SESSION_KEY, base64.b64encode(b"x" * 32).decode(), SAMPLE_IV, "does not decrypt"),
    ],
)
def test_garbage_fails_with_the_step_named_and_nothing_echoed(session_key, encrypted, iv, step):
    with pytest.raises(OpenDataError, match=step) as caught:
        decrypt_open_data(session_key, encrypted, iv, SAMPLE_APPID)
    assert session_key not in str(caught.value) and SAMPLE_SESSION_KEY not in str(caught.value)


def test_json_that_is_not_an_object_fails():
    key, iv = base64.b64decode(OTHER_KEY), b"\x01" * 16
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps([1, 2]).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    listed = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
    with pytest.raises(OpenDataError, match="not a JSON object"):
        decrypt_open_data(OTHER_KEY, listed, base64.b64encode(iv).decode(), "wx-app")


def test_encrypt_is_the_inverse_of_decrypt():
    data = {
        "stepInfoList": [{"timestamp": 1, "step": 1234}],
        "watermark": {"appid": "wx-app", "timestamp": 2},
    }
    encrypted, iv = encrypt_open_data(OTHER_KEY, data)
    assert decrypt_open_data(OTHER_KEY, encrypted, iv, "wx-app") == data
    assert encrypt_open_data(OTHER_KEY, data)[1] != iv  # a fresh iv each time


def test_session_signature_matches_wechats_documented_example():
    # "用户登录态签名": hmac_sha256('{"foo":"bar"}', 'o0q0otL8aEzpcZL/FT9WsQ==') from WeChat's docs.
    expected = "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
    assert session_signature("o0q0otL8aEzpcZL/FT9WsQ==", '{"foo":"bar"}') == expected
    # checksession signs the empty string.
    assert session_signature("o0q0otL8aEzpcZL/FT9WsQ==") != expected
    assert len(session_signature("o0q0otL8aEzpcZL/FT9WsQ==")) == 64


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13800138000", "138****8000"),
        ("008613800138000", "008********8000"),
        ("91234567", "****4567"),
        ("1234", "****"),
    ],
)
def test_phone_numbers_are_masked_as_the_profile_shows_them(number, masked):
    assert mask_phone(number) == masked


def test_a_phone_number_never_shows_in_its_repr():
    phone = PhoneNumber("+86 13800138000", "13800138000", "86")
    assert "13800138000" not in repr(phone)
    assert phone.answer() == {
        "phone_number": "+86 13800138000",
        "pure_phone_number": "13800138000",
        "country_code": "86",
        "masked": "138****8000",
    }
