"""WeChat's open-data cryptography: AES-128-CBC `encryptedData` under the user's session_key, the
watermark check, and the session_key signature `/wxa/checksession` expects.

See WeChat's "开放数据校验与解密": key = base64(session_key) (16 bytes), iv = base64(iv) (16 bytes),
ciphertext = base64(encryptedData), PKCS#7 padding; the plaintext is a JSON object whose
`watermark.appid` must be our appid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 128
_KEY_BYTES = 16


class OpenDataError(Exception):
    """encryptedData did not decrypt to a JSON object carrying our appid's watermark.

    The message says which step failed; it never holds the key, the ciphertext or the plaintext.
    """


def _b64(value: str, name: str, *, length: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise OpenDataError(f"{name} is not base64") from None
    if length is not None and len(raw) != length:
        raise OpenDataError(f"{name} must be {length} bytes")
    return raw


def decrypt_open_data(session_key: str, encrypted_data: str, iv: str, appid: str) -> dict[str, Any]:
    """Decrypt `encryptedData` with the user's session_key and check its watermark appid."""
    key = _b64(session_key, "session_key", length=_KEY_BYTES)
    vector = _b64(iv, "iv", length=_KEY_BYTES)
    # WeChat's own samples wrap encryptedData over several lines: whitespace is not part of it.
    ciphertext = _b64("".join(encrypted_data.split()), "encryptedData")
    if not ciphertext or len(ciphertext) % (_BLOCK_BITS // 8):
        raise OpenDataError("encryptedData is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(vector)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
        data = json.loads(plaintext.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        # The usual cause: a session_key rotated by a later wx.login since the data was encrypted.
        raise OpenDataError("does not decrypt with this session_key") from None
    if not isinstance(data, dict):
        raise OpenDataError("not a JSON object")
    check_watermark(data, appid)
    return data


def check_watermark(data: dict[str, Any], appid: str) -> None:
    """Raise unless `data.watermark.appid` is `appid` (data made for another app is not ours to trust)."""
    watermark = data.get("watermark")
    found = watermark.get("appid") if isinstance(watermark, dict) else None
    if not isinstance(found, str) or not appid or not hmac.compare_digest(found, appid):
        raise OpenDataError("watermark appid is not ours")


def encrypt_open_data(session_key: str, data: dict[str, Any], iv: bytes | None = None) -> tuple[str, str]:
    """What WeChat does on the phone: answers (encryptedData, iv) in base64. For the simulator and tests."""
    key = _b64(session_key, "session_key", length=_KEY_BYTES)
    vector = os.urandom(_KEY_BYTES) if iv is None else iv
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(json.dumps(data, ensure_ascii=False).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(vector)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(ciphertext).decode(), base64.b64encode(vector).decode()


def session_signature(session_key: str, post_data: str = "") -> str:
    """WeChat's user-state signature `hmac_sha256(post_data, session_key)` in hex; `/wxa/checksession`
    signs the empty string. The HMAC key is the session_key string as WeChat sent it (not decoded)."""
    return hmac.new(session_key.encode(), post_data.encode(), hashlib.sha256).hexdigest()
