"""Secrets from AWS SSM Parameter Store, resolved at run time.

``serverless.yml`` does not put secret values into the functions' environment. For each secret
setting ``NAME`` it sets ``NAME_SSM`` to the *name* of an SSM parameter (``/wx-login/prod/WX_SECRET``)
and grants the function ``ssm:GetParameters`` on exactly those parameters. :func:`resolve_ssm_env`
turns those into values, with decryption, so ``SecureString`` parameters work (CloudFormation's
``{{resolve:ssm-secure:...}}`` is not allowed in Lambda environment variables, and ``${ssm:...}`` in
``serverless.yml`` would need AWS credentials at package time and would write the plaintext into the
template).

Rules:

* ``NAME`` set directly in the environment wins over ``NAME_SSM`` (nothing is fetched for it), so
  tests and Tencent SCF, which has no SSM, keep using plain variables.
* The ``local`` stage (``STAGE`` unset or ``local``) never calls SSM: it is the no-cloud stage, and
  ``sls invoke local --stage local`` must run without an AWS account.
* All wanted parameters are fetched with one ``GetParameters`` call per 10 names.
* A complete answer is cached for the life of the process: one round trip per cold start.
* A parameter that does not exist is left out of the result, so the settings loader reports the
  *setting* as missing (``SERVER_MISCONFIGURED`` naming it). Such an incomplete answer is kept for
  :data:`RETRY_MISSING_AFTER_S` seconds only, so that a parameter created after the deploy is picked
  up without a new cold start, and an optional one that stays absent (``JWT_PREVIOUS_SECRETS``)
  costs one call a minute, not one a request.
* An AWS or network error never raises: it is logged (error code and parameter names, never a
  value), nothing is cached, and the affected settings are left out, so the next request tries again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["RETRY_MISSING_AFTER_S", "SUFFIX", "clear_cache", "resolve_ssm_env", "ssm_parameter_names"]

log = logging.getLogger(__name__)

SUFFIX = "_SSM"
LOCAL_STAGE = "local"
RETRY_MISSING_AFTER_S = 60.0
_BATCH = 10  # GetParameters takes at most 10 names


class SSMClient(Protocol):
    def get_parameters(self, *, Names: list[str], WithDecryption: bool) -> Mapping[str, Any]: ...


# key: the sorted (setting, parameter) pairs; value: (resolved settings, monotonic expiry or None)
_cache: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float | None]] = {}


def clear_cache() -> None:
    """Forget every resolved value (tests; a process otherwise keeps them until it ends)."""
    _cache.clear()


def ssm_parameter_names(environ: Mapping[str, str]) -> dict[str, str]:
    """``{"WX_SECRET": "/wx-login/prod/WX_SECRET", ...}`` for each ``*_SSM`` variable still to resolve."""
    wanted: dict[str, str] = {}
    for key, parameter in environ.items():
        if not key.endswith(SUFFIX) or len(key) == len(SUFFIX):
            continue
        setting = key[: -len(SUFFIX)]
        if environ.get(setting) or not parameter.strip():
            continue
        wanted[setting] = parameter.strip()
    return wanted


def _default_client(environ: Mapping[str, str]) -> SSMClient:
    from shared.aws import botocore_session  # the DynamoDB and S3 clients' session: built once

    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    # At most 2 attempts of 1 s + 2 s: a cold start must not spend Lambda's 10 s init budget here.
    config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})
    with botocore_session() as session:
        client = session.create_client("ssm", region_name=region, config=config)
    return cast("SSMClient", client)


def _fetch(client: SSMClient, parameters: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for start in range(0, len(parameters), _BATCH):
        answer = client.get_parameters(Names=parameters[start : start + _BATCH], WithDecryption=True)
        for item in answer.get("Parameters", []):
            values[item["Name"]] = item["Value"]
            if item.get("ARN"):
                values[item["ARN"]] = item["Value"]
    return values


def resolve_ssm_env(
    environ: Mapping[str, str] | None = None,
    *,
    client: SSMClient | None = None,
    client_factory: Callable[[Mapping[str, str]], SSMClient] = _default_client,
) -> dict[str, str]:
    """Values for the settings named by ``*_SSM`` variables: ``{"WX_SECRET": "...", ...}``.

    Returns ``{}`` without touching the network in the local stage or when no ``*_SSM`` variable
    needs resolving.
    Merge the answer over the environment before reading settings::

        env = {**os.environ, **resolve_ssm_env(os.environ)}
    """
    env = os.environ if environ is None else environ
    if (env.get("STAGE") or "").strip() in ("", LOCAL_STAGE):
        return {}
    wanted = ssm_parameter_names(env)
    if not wanted:
        return {}
    key = tuple(sorted(wanted.items()))
    cached = _cache.get(key)
    if cached is not None and (cached[1] is None or time.monotonic() < cached[1]):
        return dict(cached[0])

    parameters = sorted(set(wanted.values()))
    try:
        values = _fetch(client or client_factory(env), parameters)
    except (ClientError, BotoCoreError) as exc:
        code = (
            exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        )
        log.error("ssm: could not read parameters %s for %s (%s)", parameters, sorted(wanted), code)
        return {}

    resolved = {setting: values[parameter] for setting, parameter in wanted.items() if parameter in values}
    missing = sorted(setting for setting in wanted if setting not in resolved)
    if missing:
        log.warning(
            "ssm: parameters not found for %s: %s", missing, sorted({wanted[setting] for setting in missing})
        )
    _cache[key] = (resolved, time.monotonic() + RETRY_MISSING_AFTER_S if missing else None)
    return dict(resolved)
