import base64

from shared.settings import load_settings

KEY = base64.b64encode(b"k" * 32).decode()
GOOD_PROD = {
    "STAGE": "prod",
    "WX_APPID": "wx123",
    "WX_SECRET": "s3cret-value",
    "JWT_SECRET": "x" * 32,
    "SESSION_KEY_ENCRYPTION_KEY": KEY,
}


def test_local_defaults_need_nothing_and_generate_random_secrets():
    first, second = load_settings({}), load_settings({})
    assert first.is_local and first.problems == ()
    assert len(first.jwt_secret) == 32 and first.jwt_secret != second.jwt_secret
    assert len(first.session_key_encryption_key) == 32
    assert first.wx_api_base == "https://api.weixin.qq.com"
    assert (first.wx_timeout_s, first.access_token_ttl, first.refresh_token_ttl) == (3.0, 604800, 2592000)
    assert first.jwt_issuer == "wx-login" and first.jwt_audience == first.wx_appid


def test_a_complete_production_environment_has_no_problems():
    settings = load_settings(GOOD_PROD)
    assert settings.problems == ()
    assert settings.jwt_audience == "wx123"
    assert settings.users_table == "wx-login-users-prod"


def test_production_names_every_missing_setting():
    settings = load_settings({"STAGE": "prod"})
    assert set(settings.problems) == {"WX_APPID", "WX_SECRET", "JWT_SECRET", "SESSION_KEY_ENCRYPTION_KEY"}


def test_unsafe_values_are_problems():
    for name, value in [
        ("JWT_SECRET", "x" * 31),
        ("SESSION_KEY_ENCRYPTION_KEY", base64.b64encode(b"short").decode()),
        ("SESSION_KEY_ENCRYPTION_KEY", "not base64!"),
        ("JWT_PREVIOUS_SECRETS", "tooshort"),
        ("ACCESS_TOKEN_TTL", "-5"),
        ("REFRESH_TOKEN_TTL", "1.5"),
        ("JWT_LEEWAY_S", "nan"),
        ("JWT_LEEWAY_S", "301"),
        ("WX_TIMEOUT_S", "abc"),
        ("WX_API_BASE", "http://insecure.example"),
    ]:
        assert load_settings({**GOOD_PROD, name: value}).problems == (name,), name


def test_secret_is_the_utf8_bytes_as_given_and_previous_secrets_are_split():
    settings = load_settings(
        {**GOOD_PROD, "JWT_SECRET": "密" * 11, "JWT_PREVIOUS_SECRETS": "a" * 32 + "," + "b" * 32}
    )
    assert settings.jwt_secret == ("密" * 11).encode()
    assert settings.jwt_previous_secrets == (b"a" * 32, b"b" * 32)


def test_a_secret_with_spaces_verifies_the_same_before_and_after_rotation():
    padded = " " + "p" * 32 + " "
    current = load_settings({**GOOD_PROD, "JWT_SECRET": padded})
    rotated = load_settings({**GOOD_PROD, "JWT_SECRET": "q" * 32, "JWT_PREVIOUS_SECRETS": padded})
    assert current.jwt_secret == padded.encode() == rotated.jwt_previous_secrets[0]


def test_secrets_never_appear_in_repr():
    text = repr(load_settings(GOOD_PROD))
    assert "s3cret-value" not in text and "x" * 32 not in text and KEY not in text


def test_process_settings_are_cached_but_a_misconfigured_instance_looks_again(monkeypatch, caplog):
    import shared.settings as module

    clock = [1000.0]
    monkeypatch.setattr("shared.settings.time.monotonic", lambda: clock[0])
    for name, value in GOOD_PROD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.delenv("REQUEST_BUDGET_S")  # the tests' local-only budget (tests/conftest.py)
    module.reset_settings_cache()
    try:
        first = module.get_settings()
        assert first.problems == ("JWT_SECRET",)
        monkeypatch.setenv("JWT_SECRET", "y" * 32)  # e.g. SSM reachable again
        assert module.get_settings() is first  # not before the retry interval
        clock[0] += module.RETRY_PROBLEMS_AFTER_S + 1
        healthy = module.get_settings()
        assert healthy.problems == ()
        monkeypatch.setenv("JWT_SECRET", "short")
        clock[0] += 3600
        assert module.get_settings() is healthy  # a healthy instance never re-reads
        assert caplog.text.count("server misconfigured: JWT_SECRET") == 1
    finally:
        module.reset_settings_cache()
