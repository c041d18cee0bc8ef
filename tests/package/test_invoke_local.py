"""`sls invoke local -f <function> --path tests/events/<event>.json` works, as infra/DEPLOY.md shows.

It runs the handler from the source tree with the venv's Python (first on PATH), the function's
environment from serverless.yml and, with `--stage local`, no AWS account: the local stage never
calls SSM, and DynamoDB and WeChat are given as endpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.package.conftest import SMOKE_APPID, SMOKE_SECRET, FakeWeChat, start_moto
from tests.package.packaged import ROOT, Package

OSLS = ROOT / "node_modules" / ".bin" / "osls"


def invoke_local(function: str, event: str, *env: str) -> dict[str, Any]:
    if not OSLS.exists():
        pytest.fail("node_modules is missing: run `make node`")
    options = [option for setting in env for option in ("-e", setting)]
    venv_bin = str(Path(sys.executable).parent)
    result = subprocess.run(
        [str(OSLS), "invoke", "local", "-f", function, "--stage", "local", "--path", event, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": f"{venv_bin}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The handler's answer is the last JSON object printed (the app's own log lines may be JSON too).
    decoder, answers = json.JSONDecoder(), []
    for position in (i for i, char in enumerate(result.stdout) if char == "{"):
        try:
            value, _end = decoder.raw_decode(result.stdout, position)
        except ValueError:
            continue
        if isinstance(value, dict) and "statusCode" in value:
            answers.append(value)
    assert answers, result.stdout + result.stderr
    answer: dict[str, Any] = answers[-1]
    return answer


def test_profile_without_a_token(package: Package) -> None:
    answer = invoke_local("profile", "tests/events/apigw_v2_profile_get.json")
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["reason"] == "TOKEN_MISSING"


def test_login_with_the_example_event(
    package: Package, fake_wechat: FakeWeChat, tmp_path_factory: pytest.TempPathFactory
) -> None:
    service = package.state["service"]["service"]
    with start_moto(package.region, tmp_path_factory.mktemp("moto-local") / "moto.log") as moto:
        dynamodb = moto.client("dynamodb")
        for table in package.of_type("AWS::DynamoDB::Table").values():
            props = table["Properties"]
            kind = props["TableName"].split("-")[-2]  # wx-login-users-dev -> users
            dynamodb.create_table(
                TableName=f"{service}-{kind}-local",
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
            )
        answer = invoke_local(
            "login",
            "tests/events/apigw_v2_http.json",
            f"DYNAMODB_ENDPOINT={moto.url}",
            "AWS_ACCESS_KEY_ID=local",
            "AWS_SECRET_ACCESS_KEY=local",
            f"WX_API_BASE={fake_wechat.url}",
            f"SSL_CERT_FILE={fake_wechat.ca_file}",
            f"WX_APPID={SMOKE_APPID}",
            f"WX_SECRET={SMOKE_SECRET}",
        )
        assert answer["statusCode"] == 200, answer
        data = json.loads(answer["body"])["data"]
        assert data["user"]["openid"] == "sim-alice"
        item = dynamodb.get_item(TableName=f"{service}-users-local", Key={"openid": {"S": "sim-alice"}})
        assert "Item" in item
