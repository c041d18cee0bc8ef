"""Smoke test of the real artifacts: unpacked, imported by a clean interpreter, answering real events.

Design (why this proves what `sls deploy` would upload works):

* Each function's zip from .serverless/ is unpacked into an empty directory, the requirements layer
  into another (Lambda's /opt, shared by every function), and each function is run by a plain
  interpreter of the runtime's version with `-I -S` (tests/package/worker.py): sys.path is the
  artifact, the layer's directories that Lambda puts there, and the standard library, nothing from
  this venv. A dependency missing from the layer, or a wheel built for another Python or
  architecture, fails the import here as it would on Lambda. The worker also reports any module that
  came from elsewhere (there must be none).
* AWS is moto's *server* in a separate process (the venv's moto never enters the artifact's
  interpreter). The artifact reaches it over HTTP through `AWS_ENDPOINT_URL`, the SDK's own
  endpoint override, so the functions run with the template's environment unchanged: table names,
  STAGE, and secrets as SSM parameter *names* resolved at cold start.
* moto enforces IAM: each function signs with the keys of a user holding its role's statements
  from the template. moto matches actions only (not resource ARNs, which test_template.py checks),
  and authorises transactions by the API name, so TransactGetItems/TransactWriteItems are added
  where the role grants the item actions AWS actually checks for them.
* The avatar bucket is a bucket in the same moto server; the references to it and to its CloudFront
  distribution in the avatar function's environment are resolved as CloudFormation would
  (tests/package/smoke.py PHYSICAL_IDS).
* WeChat is the project's simulator served over HTTPS on 127.0.0.1 with a throw-away certificate
  (trusted through SSL_CERT_FILE), because outside `local` WX_API_BASE must be https.
* The same artifacts also run Tencent SCF's configuration: Tencent API Gateway events, plain
  environment variables, DynamoDB through DYNAMODB_ENDPOINT, and the IAM policy that
  infra/DEPLOY.md gives the SCF's AWS user (infra/tencent/aws-iam-policy.json).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests import avatar_samples
from tests.lambda_events import apigw_v2, tencent
from tests.package.conftest import FakeWeChat, MotoServer, Worker, close_all
from tests.package.packaged import Package
from tests.package.smoke import (
    ENVELOPE_OK_KEYS,
    NO_AWS_FILES,
    PHYSICAL_IDS,
    assert_error,
    assert_ok,
    avatar_keys,
    for_moto,
    function_environment,
    scf_env,
)


@dataclass
class Deployment:
    """The packaged functions, running against moto and the fake WeChat."""

    package: Package
    moto: MotoServer
    workers: dict[str, Worker]

    def worker_for(self, route: str) -> Worker:
        owners = [name for name, f in self.package.functions.items() if route in f.routes]
        assert len(owners) == 1, f"{route} belongs to {owners}"
        return self.workers[owners[0]]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {**(headers or {}), **({"authorization": f"Bearer {token}"} if token else {})}
        worker = self.worker_for(f"{method} {path}")
        response = worker.invoke(apigw_v2(method, path, body, headers))
        answer = json.loads(response["body"])
        if response["statusCode"] >= 500:  # never expected here: show what the function logged
            denied = "\n".join(self.moto.denials()) or "no IAM denial"
            raise AssertionError(f"{method} {path}: {answer}\n{denied}\n{worker.logs()}")
        return response["statusCode"], answer


def base_env(artifact: Path, function_name: str, region: str, keys: dict[str, str]) -> dict[str, str]:
    """What the Lambda runtime itself puts in a function's environment (no PYTHON* variables)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(artifact),
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
        **NO_AWS_FILES,
    }


def lambda_env(
    package: Package, name: str, artifact: Path, moto: MotoServer, wechat: FakeWeChat
) -> dict[str, str]:
    """Function `name`'s environment on Lambda: the runtime's variables, then the template's."""
    return {
        **base_env(artifact, f"wx-login-smoke-{name}", package.region, moto.users[name]),
        **function_environment(package, package.functions[name].environment),
        "AWS_ENDPOINT_URL": moto.url,
        "WX_API_BASE": wechat.url,
        "SSL_CERT_FILE": str(wechat.ca_file),
    }


@pytest.fixture(scope="session")
def deployment(
    package: Package,
    unpacked: dict[str, Path],
    unpacked_layer: Path,
    runtime_python: str,
    aws_backend: MotoServer,
    fake_wechat: FakeWeChat,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    moto = aws_backend
    logs = tmp_path_factory.mktemp("worker-logs")
    workers: dict[str, Worker] = {}
    try:
        for name, function in package.functions.items():
            env = lambda_env(package, name, unpacked[name], moto, fake_wechat)
            log = logs / f"{name}.log"
            workers[name] = Worker(runtime_python, unpacked[name], function.handler, env, log, unpacked_layer)
        for worker in workers.values():  # the cold starts run in parallel; wait for all of them
            worker.wait_ready()
        yield Deployment(package, moto, workers)
    finally:
        close_all(list(workers.values()))


def test_every_artifact_imports_in_a_clean_interpreter(
    deployment: Deployment, unpacked: dict[str, Path], unpacked_layer: Path
) -> None:
    runtime = {f.runtime for f in deployment.package.functions.values()}.pop()
    layer_path = [
        str(unpacked_layer / "python" / "lib" / runtime / "site-packages"),
        str(unpacked_layer / "python"),
    ]
    for name, worker in deployment.workers.items():
        ready = worker.ready
        assert f"python{ready['python'][0]}.{ready['python'][1]}" == runtime
        assert ready["flags"] == {"isolated": 1, "no_site": 1}
        assert ready["sys_path"][:3] == [str(unpacked[name]), *layer_path], ready["sys_path"]
        stdlib = ready["sys_path"][3:]
        assert not any("site-packages" in p or ".venv" in p for p in stdlib), ready["sys_path"]
        # Lambda's task directory and /opt are read-only: a module without usable bytecode is compiled at
        # every cold start. The shipped bytecode must be what the runtime actually loads.
        assert ready["compiled"] == [], f"{name} compiled from source: {ready['compiled']}"
        # Reported, not asserted: the smoke test shares the CPU with everything else running here.
        print(f"{name}: cold import {ready['init_s']:.2f} s")


def test_login_profile_refresh_logout_through_the_packaged_functions(deployment: Deployment) -> None:
    call = deployment.call
    data = assert_ok(*call("POST", "/api/v1/auth/wx-login", {"code": "alice.smoke", "nickName": "Alice"}))
    assert data["is_new_user"] is True
    assert data["user"]["openid"] == "sim-alice" and data["user"]["nickname"] == "Alice"
    assert "session_key" not in json.dumps(data)
    access, refresh = data["access_token"], data["refresh_token"]

    assert_error(*call("GET", "/api/v1/user/profile"), 401, "TOKEN_MISSING")
    profile = assert_ok(*call("GET", "/api/v1/user/profile", token=access))
    assert profile["openid"] == "sim-alice"
    profile = assert_ok(*call("PATCH", "/api/v1/user/profile", {"bio": "packaged"}, token=access))
    assert profile["bio"] == "packaged"

    rotated = assert_ok(*call("POST", "/api/v1/auth/refresh", {"refresh_token": refresh}))
    assert rotated["refresh_token"] != refresh
    assert_ok(*call("POST", "/api/v1/auth/refresh", token=rotated["access_token"]))

    body = assert_ok(*call("POST", "/api/v1/auth/logout", token=rotated["access_token"]))
    assert body == {"message": "退出成功"}
    assert_error(*call("GET", "/api/v1/user/profile", token=rotated["access_token"]), 401, "SESSION_REVOKED")

    # What the functions wrote is in the deployed tables, under the template's names.
    users = deployment.package.table_name("UsersTable")
    item = deployment.moto.client("dynamodb").get_item(TableName=users, Key={"openid": {"S": "sim-alice"}})
    assert item["Item"]["bio"]["S"] == "packaged"


def test_session_key_routes_through_the_packaged_functions(
    deployment: Deployment, fake_wechat: FakeWeChat
) -> None:
    """phone, decrypt and session-check: the caller's session and session_key, WeChat's access_token."""
    call = deployment.call
    garbage = {"encryptedData": "A" * 32, "iv": "A" * 22 + "=="}
    assert_error(
        *call("POST", "/api/v1/auth/phone", {"code": "phone.13800138000.anon"}), 401, "TOKEN_MISSING"
    )
    assert_error(*call("POST", "/api/v1/wechat/decrypt", garbage), 401, "TOKEN_MISSING")
    assert_error(*call("GET", "/api/v1/auth/session-check"), 401, "TOKEN_MISSING")

    login = assert_ok(*call("POST", "/api/v1/auth/wx-login", {"code": "carol.smoke"}))
    token = login["access_token"]
    # WeChat's access_token: fetched (stable_token) and stored by the first, read by the others.
    assert assert_ok(*call("GET", "/api/v1/auth/session-check", token=token)) == {"valid": True}

    assert_error(*call("POST", "/api/v1/wechat/decrypt", garbage, token=token), 400, "DECRYPT_FAILED")
    encrypted, iv = fake_wechat.simulator.encrypt_for("sim-carol", {"stepInfoList": [{"step": 4321}]})
    data = assert_ok(*call("POST", "/api/v1/wechat/decrypt", {"encryptedData": encrypted, "iv": iv}, token))
    assert data["stepInfoList"] == [{"step": 4321}]

    phone = assert_ok(*call("POST", "/api/v1/auth/phone", {"code": "phone.13800138000.smoke"}, token))
    assert phone["masked"] == "138****8000"
    assert assert_ok(*call("GET", "/api/v1/user/profile", token=token))["phone_masked"] == "138****8000"
    assert_error(
        *call("POST", "/api/v1/auth/phone", {"code": "fail.40029"}, token), 400, "PHONE_CODE_INVALID"
    )


def test_jwks_answers_the_key_set(deployment: Deployment) -> None:
    """HS256 (the default): no public key to publish, an empty set; the optional key parameters are
    absent from SSM and break nothing."""
    status, body = deployment.call("GET", "/.well-known/jwks.json")
    assert status == 200, body
    assert set(body) == ENVELOPE_OK_KEYS | {"keys"}, body
    assert body["keys"] == body["data"]["keys"] == []


def test_jwks_of_an_es256_deployment_publishes_its_public_key(
    deployment: Deployment,
    unpacked: dict[str, Path],
    unpacked_layer: Path,
    runtime_python: str,
    fake_wechat: FakeWeChat,
    tmp_path: Path,
) -> None:
    """JWT_ALGORITHM=ES256 with the private key in SSM (SecureString), read with the jwks role alone."""
    package, moto = deployment.package, deployment.moto
    env = lambda_env(package, "jwks", unpacked["jwks"], moto, fake_wechat)
    # Not the stage's JWT_PRIVATE_KEY parameter: with HS256 the other functions would refuse it.
    parameter = env["JWT_PRIVATE_KEY_SSM"] + "_ES256_SMOKE"
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    moto.client("ssm").put_parameter(Name=parameter, Value=pem, Type="SecureString", Overwrite=True)
    env |= {"JWT_ALGORITHM": "ES256", "JWT_PRIVATE_KEY_SSM": parameter}
    function = package.functions["jwks"]
    log = tmp_path / "jwks-es256.log"
    worker = Worker(runtime_python, unpacked["jwks"], function.handler, env, log, unpacked_layer)
    try:
        worker.wait_ready()
        response = worker.invoke(apigw_v2("GET", "/.well-known/jwks.json"))
    finally:
        worker.close()
    body = json.loads(response["body"])
    assert response["statusCode"] == 200, (body, worker.logs())
    [jwk] = body["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig"), jwk
    assert "d" not in jwk and jwk["kid"]
    numbers = key.public_key().public_numbers()
    assert base64.urlsafe_b64decode(jwk["x"] + "==") == numbers.x.to_bytes(32, "big")
    assert body["data"]["keys"] == body["keys"]
    assert response["headers"]["cache-control"] == "public, max-age=300"


def test_avatar_upload_through_the_packaged_function(deployment: Deployment) -> None:
    call, moto = deployment.call, deployment.moto
    body, content_type = avatar_samples.multipart(avatar_samples.png(), filename="wxfile_tmp.png")
    upload = {"content-type": content_type}
    assert_error(*call("POST", "/api/v1/user/avatar", body, headers=upload), 401, "TOKEN_MISSING")

    token = assert_ok(*call("POST", "/api/v1/auth/wx-login", {"code": "dave.smoke"}))["access_token"]
    before = avatar_keys(moto)
    first = assert_ok(*call("POST", "/api/v1/user/avatar", body, token, headers=upload))["avatar"]
    base = f"https://{PHYSICAL_IDS['AvatarDistribution.DomainName']}/"
    assert first.startswith(f"{base}avatars/") and first.endswith(".png"), first
    assert avatar_keys(moto) == sorted([*before, first.removeprefix(base)])
    stored = moto.client("s3").get_object(Bucket=PHYSICAL_IDS["AvatarBucket"], Key=first.removeprefix(base))
    assert stored["ContentType"] == "image/png"
    assert avatar_samples.decode(stored["Body"].read()).size == avatar_samples.picture().size

    # A second upload replaces the first object (s3:DeleteObject).
    jpeg, content_type = avatar_samples.multipart(avatar_samples.jpeg())
    second = assert_ok(
        *call("POST", "/api/v1/user/avatar", jpeg, token, headers={"content-type": content_type})
    )["avatar"]
    assert avatar_keys(moto) == sorted([*before, second.removeprefix(base)])
    assert assert_ok(*call("GET", "/api/v1/user/profile", token=token))["avatar"] == second

    gif, content_type = avatar_samples.multipart(avatar_samples.gif(), filename="a.gif")
    assert_error(
        *call("POST", "/api/v1/user/avatar", gif, token, headers={"content-type": content_type}),
        400,
        "CONTENT_REJECTED",
    )


def test_errors_are_contract_envelopes(deployment: Deployment) -> None:
    call = deployment.call
    assert_error(*call("POST", "/api/v1/auth/wx-login", {"code": "fail.40029"}), 401, "WECHAT_CODE_INVALID")
    assert_error(*call("POST", "/api/v1/auth/wx-login", {"code": ""}), 400, "INVALID_REQUEST")
    assert_error(
        *call("POST", "/api/v1/auth/refresh", {"refresh_token": "nope"}), 401, "REFRESH_TOKEN_INVALID"
    )
    assert_error(*call("POST", "/api/v1/auth/logout"), 401, "TOKEN_MISSING")
    profile = deployment.workers["profile"]
    response = profile.invoke(apigw_v2("GET", "/api/v1/nope"))
    assert_error(response["statusCode"], json.loads(response["body"]), 404, "NOT_FOUND")
    response = profile.invoke(apigw_v2("DELETE", "/api/v1/user/profile"))
    assert_error(response["statusCode"], json.loads(response["body"]), 405, "METHOD_NOT_ALLOWED")


def test_every_route_of_every_function_answers(deployment: Deployment) -> None:
    """Also the functions the flows above do not walk through: no 5xx for a plain anonymous call."""
    for name, function in deployment.package.functions.items():
        for route in function.routes:
            if route == "$default":  # what matches no route: 404, or 405 with every method of the path
                worker = deployment.workers[name]
                unmatched = (("GET", "/api/v1/nope", 404), ("DELETE", "/api/v1/user/profile", 405))
                for method, path, status in unmatched:
                    response = worker.invoke(apigw_v2(method, path))
                    answer = json.loads(response["body"])
                    assert (response["statusCode"], answer["code"]) == (status, status), (route, answer)
                    if status == 405:
                        assert response["headers"]["allow"] == "GET, PATCH", response
                continue
            method, path = route.split(" ", 1)
            path = re.sub(r"\{[^}]+\}", "x", path)
            body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
            response = deployment.workers[name].invoke(apigw_v2(method, path, body))
            assert response["statusCode"] < 500, (route, response)
            answer = json.loads(response["body"])
            if "code" in answer:
                assert answer["code"] == response["statusCode"] and "timestamp" in answer, (route, answer)


def test_iam_is_enforced(deployment: Deployment) -> None:
    """A guard on the guard: a user without an action is refused, so the flows above proved the roles."""
    moto = deployment.moto
    moto.add_user("probe", for_moto([{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}]))
    table = deployment.package.table_name("CacheTable")
    probe = moto.client("dynamodb", "probe")
    probe.get_item(TableName=table, Key={"pk": {"S": "x"}})
    with pytest.raises(ClientError, match="not authorized to perform: dynamodb:PutItem"):
        probe.put_item(TableName=table, Item={"pk": {"S": "x"}})
    # S3's refusal names neither user nor action; tests/package/moto_server.py names both.
    with pytest.raises(ClientError, match="AccessDenied"):
        moto.client("s3", "probe").put_object(Bucket=PHYSICAL_IDS["AvatarBucket"], Key="avatars/x", Body=b"x")
    assert [line for line in moto.denials() if ":user/probe " in line][-1].endswith(" s3:PutObject")


def test_nothing_was_imported_from_outside_the_artifact(deployment: Deployment) -> None:
    # After the flows above: lazy imports (httpx transports, botocore services, anyio) included.
    for name, worker in deployment.workers.items():
        assert worker.send({"inspect": True})["foreign_modules"] == [], name


def test_no_module_was_compiled_from_source(deployment: Deployment) -> None:
    """After the flows above, lazy imports included: every module came from the shipped bytecode."""
    for name, worker in deployment.workers.items():
        compiled = worker.send({"inspect": True})["compiled"]
        assert compiled == [], f"{name} compiled from source (no usable bytecode in the zip): {compiled}"


# --- the same artifacts with Tencent SCF's configuration ------------------------------------------


@pytest.fixture(scope="session")
def scf(
    deployment: Deployment,
    unpacked: dict[str, Path],
    unpacked_layer: Path,
    runtime_python: str,
    fake_wechat: FakeWeChat,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Worker]]:
    """Login and profile as deployed on SCF: plain variables, DYNAMODB_ENDPOINT, an IAM user's keys."""
    package, moto = deployment.package, deployment.moto
    logs = tmp_path_factory.mktemp("scf-logs")
    workers: dict[str, Worker] = {}
    try:
        for name in ("login", "profile"):
            function = package.functions[name]
            env = scf_env(package, moto, fake_wechat, moto.users["scf"])
            log = logs / f"{name}.log"
            workers[name] = Worker(runtime_python, unpacked[name], function.handler, env, log, unpacked_layer)
        for worker in workers.values():
            worker.wait_ready()
        yield workers
    finally:
        close_all(list(workers.values()))


def test_tencent_api_gateway_events_on_the_packaged_functions(scf: dict[str, Worker]) -> None:
    response = scf["login"].invoke(tencent("POST", "/api/v1/auth/wx-login", {"code": "bob.scf"}))
    assert set(response) == {"isBase64Encoded", "statusCode", "headers", "body"}
    data = assert_ok(response["statusCode"], json.loads(response["body"]))
    assert data["user"]["openid"] == "sim-bob"

    auth = {"authorization": f"Bearer {data['access_token']}"}
    response = scf["profile"].invoke(tencent("GET", "/api/v1/user/profile", headers=auth))
    assert set(response) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert response["isBase64Encoded"] is False
    assert assert_ok(response["statusCode"], json.loads(response["body"]))["openid"] == "sim-bob"

    response = scf["profile"].invoke(tencent("GET", "/api/v1/user/profile"))
    assert_error(response["statusCode"], json.loads(response["body"]), 401, "TOKEN_MISSING")
    for name, worker in scf.items():
        assert worker.send({"inspect": True})["foreign_modules"] == [], name


def test_no_function_was_refused_anything(deployment: Deployment, scf: dict[str, Worker]) -> None:
    """Also the refusals the functions swallow (best-effort cleanups): every role must be complete."""
    denials = [line for line in deployment.moto.denials() if ":user/probe " not in line]
    assert denials == []
