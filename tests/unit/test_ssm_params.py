"""Run-time resolution of secrets from SSM Parameter Store (shared/ssm_params.py), with botocore's Stubber."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from shared import ssm_params
from shared.ssm_params import resolve_ssm_env, ssm_parameter_names

SECRET = "s3cr3t-value-that-must-never-be-logged"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    ssm_params.clear_cache()
    yield
    ssm_params.clear_cache()


@pytest.fixture
def ssm() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "ssm", region_name="ap-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def answer(values: dict[str, str], invalid: list[str] | None = None) -> dict[str, Any]:
    return {
        "Parameters": [
            {
                "Name": name,
                "Type": "SecureString",
                "Value": value,
                "Version": 1,
                "ARN": f"arn:aws:ssm:ap-east-1:123456789012:parameter{name}",
            }
            for name, value in values.items()
        ],
        **({"InvalidParameters": invalid} if invalid else {}),
    }


def on_aws(**env: str) -> dict[str, str]:
    """An environment as serverless.yml sets it on Lambda (any stage but local)."""
    return {"STAGE": "prod", **env}


def no_client(_env: Any) -> Any:
    raise AssertionError("no SSM client may be created")


def test_nothing_to_resolve_touches_no_network() -> None:
    env = {"STAGE": "prod", "WX_SECRET": "plain", "PATH": "/usr/bin"}
    assert resolve_ssm_env(env, client_factory=no_client) == {}


def test_parameter_names_skip_settings_that_are_already_set() -> None:
    env = {
        "WX_SECRET_SSM": "/wx-login/prod/WX_SECRET",
        "JWT_SECRET_SSM": "/wx-login/prod/JWT_SECRET",
        "JWT_SECRET": "set directly",
        "EMPTY_SSM": "  ",
        "_SSM": "/odd",
    }
    assert ssm_parameter_names(env) == {"WX_SECRET": "/wx-login/prod/WX_SECRET"}


@pytest.mark.parametrize("stage", [None, "", "local"])
def test_local_stage_never_calls_ssm(stage: str | None) -> None:
    env = {"WX_SECRET_SSM": "/wx-login/local/WX_SECRET"}
    if stage is not None:
        env["STAGE"] = stage
    assert resolve_ssm_env(env, client_factory=no_client) == {}


def test_direct_value_wins_over_the_parameter() -> None:
    env = on_aws(WX_SECRET_SSM="/wx-login/prod/WX_SECRET", WX_SECRET="direct")
    assert resolve_ssm_env(env, client_factory=no_client) == {}


def test_resolves_with_decryption_in_one_call(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    stubber.add_response(
        "get_parameters",
        answer({"/wx-login/prod/JWT_SECRET": "j" * 40, "/wx-login/prod/WX_SECRET": SECRET}),
        {"Names": ["/wx-login/prod/JWT_SECRET", "/wx-login/prod/WX_SECRET"], "WithDecryption": True},
    )
    env = on_aws(
        **{"WX_SECRET_SSM": "/wx-login/prod/WX_SECRET", "JWT_SECRET_SSM": "/wx-login/prod/JWT_SECRET"}
    )
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET, "JWT_SECRET": "j" * 40}


def test_once_per_process(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    stubber.add_response("get_parameters", answer({"/p/WX_SECRET": SECRET}))
    env = on_aws(WX_SECRET_SSM="/p/WX_SECRET")
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}
    # A second call would hit the stubber with nothing queued and fail.
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}
    assert resolve_ssm_env(env, client_factory=no_client) == {"WX_SECRET": SECRET}


def test_result_is_a_copy(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    stubber.add_response("get_parameters", answer({"/p/WX_SECRET": SECRET}))
    env = on_aws(WX_SECRET_SSM="/p/WX_SECRET")
    resolve_ssm_env(env, client=client)["WX_SECRET"] = "tampered"
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}


def test_more_than_ten_parameters_are_fetched_in_batches(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    names = [f"/p/S{i:02d}" for i in range(12)]
    stubber.add_response(
        "get_parameters",
        answer({n: n[-3:] for n in names[:10]}),
        {"Names": names[:10], "WithDecryption": True},
    )
    stubber.add_response(
        "get_parameters",
        answer({n: n[-3:] for n in names[10:]}),
        {"Names": names[10:], "WithDecryption": True},
    )
    env = on_aws(**{f"S{i:02d}_SSM": f"/p/S{i:02d}" for i in range(12)})
    assert resolve_ssm_env(env, client=client) == {f"S{i:02d}": f"S{i:02d}" for i in range(12)}


def test_two_settings_may_share_a_parameter(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    stubber.add_response("get_parameters", answer({"/p/X": "x"}), {"Names": ["/p/X"], "WithDecryption": True})
    assert resolve_ssm_env(on_aws(A_SSM="/p/X", B_SSM="/p/X"), client=client) == {"A": "x", "B": "x"}


def test_parameter_given_by_arn(ssm: tuple[Any, Stubber]) -> None:
    client, stubber = ssm
    arn = "arn:aws:ssm:ap-east-1:123456789012:parameter/p/WX_SECRET"
    stubber.add_response("get_parameters", answer({"/p/WX_SECRET": SECRET}))
    assert resolve_ssm_env(on_aws(WX_SECRET_SSM=arn), client=client) == {"WX_SECRET": SECRET}


def test_missing_parameter_is_left_out_and_retried_later(
    ssm: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client, stubber = ssm
    env = on_aws(WX_SECRET_SSM="/p/WX_SECRET", JWT_PREVIOUS_SECRETS_SSM="/p/JWT_PREVIOUS_SECRETS")
    stubber.add_response("get_parameters", answer({"/p/WX_SECRET": SECRET}, ["/p/JWT_PREVIOUS_SECRETS"]))
    now = [1000.0]
    monkeypatch.setattr("shared.ssm_params.time.monotonic", lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="shared.ssm_params"):
        assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}
    assert "JWT_PREVIOUS_SECRETS" in caplog.text
    assert SECRET not in caplog.text

    now[0] += ssm_params.RETRY_MISSING_AFTER_S - 1  # still cached: no call
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}

    now[0] += 2  # expired: asked again, and now the parameter exists
    stubber.add_response("get_parameters", answer({"/p/JWT_PREVIOUS_SECRETS": "old", "/p/WX_SECRET": SECRET}))
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET, "JWT_PREVIOUS_SECRETS": "old"}
    now[0] += 10 * ssm_params.RETRY_MISSING_AFTER_S  # complete answers never expire
    assert resolve_ssm_env(env, client=client)["JWT_PREVIOUS_SECRETS"] == "old"


def test_aws_error_is_logged_not_raised_and_not_cached(
    ssm: tuple[Any, Stubber], caplog: pytest.LogCaptureFixture
) -> None:
    client, stubber = ssm
    env = on_aws(WX_SECRET_SSM="/p/WX_SECRET")
    stubber.add_client_error("get_parameters", "AccessDeniedException", "not allowed", 400)
    with caplog.at_level(logging.ERROR, logger="shared.ssm_params"):
        assert resolve_ssm_env(env, client=client) == {}
    assert "AccessDeniedException" in caplog.text and "WX_SECRET" in caplog.text
    stubber.add_response("get_parameters", answer({"/p/WX_SECRET": SECRET}))
    assert resolve_ssm_env(env, client=client) == {"WX_SECRET": SECRET}


def test_default_client_uses_the_lambda_region_and_short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client: Any = ssm_params._default_client({"AWS_REGION": "ap-east-1"})
    assert client.meta.region_name == "ap-east-1"
    assert client.meta.config.connect_timeout == 1
    assert client.meta.config.read_timeout == 2
