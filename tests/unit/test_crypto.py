import pytest

from shared.crypto import DecryptionError, decrypt_at_rest, encrypt_at_rest

KEY = bytes(range(32))


def test_round_trip_and_fresh_nonce_each_time():
    first = encrypt_at_rest(KEY, "session-key==", "openid-1")
    assert first != encrypt_at_rest(KEY, "session-key==", "openid-1")
    assert "session-key" not in first
    assert decrypt_at_rest(KEY, first, "openid-1") == "session-key=="


@pytest.mark.parametrize(
    ("key", "context", "mutate"),
    [
        (bytes(32), "openid-1", lambda t: t),
        (KEY, "openid-2", lambda t: t),
        (KEY, "openid-1", lambda t: t[:-4] + ("AAAA" if t[-4:] != "AAAA" else "BBBB")),
        (KEY, "openid-1", lambda t: "v9" + t[2:]),
    ],
)
def test_wrong_key_context_or_tampering_fails(key, context, mutate):
    token = encrypt_at_rest(KEY, "session-key==", "openid-1")
    with pytest.raises(DecryptionError):
        decrypt_at_rest(key, mutate(token), context)
