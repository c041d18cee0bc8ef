"""The Tencent SCF bundle (infra/tencent/.build, from `make package`) on Python 3.10, SCF's runtime.

Same method as test_smoke.py: a clean `python3.10 -I -S` imports each SCF entry module
(`scf_<function>.handler`) from the bundle alone and answers Tencent API Gateway events, with SCF's
configuration (plain variables, DynamoDB by DYNAMODB_ENDPOINT, the IAM user of aws-iam-policy.json).
This is where code that only runs on Python 3.11+ would fail. The bundle's own Python 3.10 bytecode
is checked and must be what those imports load.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import avatar_samples
from tests.lambda_events import tencent
from tests.package.conftest import FakeWeChat, MotoServer, Worker, close_all, real_interpreter
from tests.package.packaged import ROOT, Package, package_required, tag_fits, wheel_tags
from tests.package.smoke import assert_error, assert_ok, avatar_keys, scf_env

BUNDLE = ROOT / "infra" / "tencent" / ".build"
SCF_PYTHON = "3.10"
SCF_GLIBC_MINOR = 17  # build.py's default: manylinux2014
PYC_CHECK = Path(__file__).with_name("pyc_check.py")


def bundle_problem(package: Package) -> str | None:
    if not BUNDLE.is_dir():
        return "no SCF bundle in infra/tencent/.build (run `make package`)"
    for source in sorted((ROOT / "shared").rglob("*.py")):
        built = BUNDLE / source.relative_to(ROOT)
        if not built.exists() or built.read_bytes() != source.read_bytes():
            return f"{source.relative_to(ROOT)} differs in the SCF bundle (run `make package`)"
    for name in package.functions:
        if not (BUNDLE / f"scf_{name}.py").exists():
            return f"scf_{name}.py is missing from the SCF bundle (run `make package`)"
    return None


@pytest.fixture(scope="module")
def bundle(package: Package) -> Path:
    problem = bundle_problem(package)
    if problem is not None:
        if package_required():
            pytest.fail(problem)
        pytest.skip(problem)
    return BUNDLE


@pytest.fixture(scope="module")
def python310() -> str:
    found = real_interpreter(SCF_PYTHON)
    if found is None:
        message = f"python{SCF_PYTHON} (SCF's runtime) is not installed"
        if package_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def scf_workers(
    bundle: Path,
    python310: str,
    package: Package,
    aws_backend: MotoServer,
    fake_wechat: FakeWeChat,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Worker]]:
    logs = tmp_path_factory.mktemp("scf310-logs")
    env = scf_env(package, aws_backend, fake_wechat, aws_backend.users["scf"])
    workers: dict[str, Worker] = {}
    try:
        for name in package.functions:
            workers[name] = Worker(python310, bundle, f"scf_{name}.handler", env, logs / f"{name}.log")
        for worker in workers.values():
            worker.wait_ready()
        yield workers
    finally:
        close_all(list(workers.values()))


def test_wheels_are_for_scf_python_and_glibc(bundle: Path) -> None:
    problems = []
    for wheel in sorted(bundle.glob("*.dist-info/WHEEL")):
        tags = wheel_tags(wheel.read_text())
        if not any(tag_fits(tag, SCF_PYTHON.replace(".", ""), "x86_64", SCF_GLIBC_MINOR) for tag in tags):
            problems.append(f"{wheel.parent.name}: {tags}")
    assert problems == [], problems


def test_bundle_ships_python_310_bytecode_of_every_module(bundle: Path, python310: str) -> None:
    """As on AWS (test_artifacts.py): SCF's Python's unchecked-hash bytecode of every .py, nothing else."""
    result = subprocess.run(
        [python310, "-I", "-S", str(PYC_CHECK), str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["tag"] == "cpython-310"
    assert report["modules"] > 500, report
    assert report["problems"] == [], report["problems"][:20]


def test_every_function_imports_on_python_310(scf_workers: dict[str, Worker]) -> None:
    for name, worker in scf_workers.items():
        assert worker.ready["python"][:2] == [3, 10], name
        assert worker.ready["compiled"] == [], f"{name} compiled from source: {worker.ready['compiled']}"
        print(f"{name}: cold import on Python 3.10 {worker.ready['init_s']:.2f} s")


def test_tencent_events_on_python_310(scf_workers: dict[str, Worker], aws_backend: MotoServer) -> None:
    login = scf_workers["login"].invoke(tencent("POST", "/api/v1/auth/wx-login", {"code": "grace.py310"}))
    assert set(login) == {"isBase64Encoded", "statusCode", "headers", "body"}
    data = assert_ok(login["statusCode"], json.loads(login["body"]))
    assert data["user"]["openid"] == "sim-grace"

    auth = {"authorization": f"Bearer {data['access_token']}"}
    profile = scf_workers["profile"].invoke(tencent("GET", "/api/v1/user/profile", headers=auth))
    assert assert_ok(profile["statusCode"], json.loads(profile["body"]))["openid"] == "sim-grace"

    refresh = {"refresh_token": data["refresh_token"]}
    rotated = scf_workers["refresh"].invoke(tencent("POST", "/api/v1/auth/refresh", refresh))
    assert_ok(rotated["statusCode"], json.loads(rotated["body"]))

    out = scf_workers["logout"].invoke(tencent("POST", "/api/v1/auth/logout", headers=auth))
    assert_ok(out["statusCode"], json.loads(out["body"]))
    again = scf_workers["profile"].invoke(tencent("GET", "/api/v1/user/profile", headers=auth))
    assert_error(again["statusCode"], json.loads(again["body"]), 401, "SESSION_REVOKED")

    for name, worker in scf_workers.items():
        assert worker.send({"inspect": True})["foreign_modules"] == [], name
    assert [line for line in aws_backend.denials() if ":user/scf " in line] == []


def test_session_key_routes_jwks_and_avatar_on_python_310(
    scf_workers: dict[str, Worker], aws_backend: MotoServer, fake_wechat: FakeWeChat
) -> None:
    """The functions that call WeChat with its access_token, decrypt, publish keys and store images
    (Pillow's Python 3.10 wheels), with the SCF user's policy (aws-iam-policy.json: S3 included)."""

    def call(name: str, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        response = scf_workers[name].invoke(tencent(method, path, body, headers))
        return response["statusCode"], json.loads(response["body"])

    data = assert_ok(*call("login", "POST", "/api/v1/auth/wx-login", {"code": "heidi.py310"}))
    auth = {"authorization": f"Bearer {data['access_token']}"}
    check = call("sessionCheck", "GET", "/api/v1/auth/session-check", **auth)
    assert assert_ok(*check) == {"valid": True}

    encrypted, iv = fake_wechat.simulator.encrypt_for("sim-heidi", {"shareInfo": "py310"})
    opened = call("decrypt", "POST", "/api/v1/wechat/decrypt", {"encryptedData": encrypted, "iv": iv}, **auth)
    assert assert_ok(*opened)["shareInfo"] == "py310"
    phone = call("phone", "POST", "/api/v1/auth/phone", {"code": "phone.13900139000.py310"}, **auth)
    assert assert_ok(*phone)["masked"] == "139****9000"
    status, body = call("jwks", "GET", "/.well-known/jwks.json")
    assert (status, body["keys"]) == (200, []), body

    image, content_type = avatar_samples.multipart(avatar_samples.webp())
    upload = {"content-type": content_type}
    assert_error(*call("avatar", "POST", "/api/v1/user/avatar", image, **upload), 401, "TOKEN_MISSING")
    url = assert_ok(*call("avatar", "POST", "/api/v1/user/avatar", image, **auth, **upload))["avatar"]
    assert url.endswith(".webp") and url.split("/", 3)[3] in avatar_keys(aws_backend), url

    for name, worker in scf_workers.items():
        inspected = worker.send({"inspect": True})
        assert inspected["foreign_modules"] == [], name
        assert inspected["compiled"] == [], f"{name} compiled from source: {inspected['compiled']}"
    assert [line for line in aws_backend.denials() if ":user/scf " in line] == []


def test_bundle_is_the_same_code_as_the_lambda_artifacts(bundle: Path, package: Package) -> None:
    login = package.functions["login"]
    with zipfile.ZipFile(login.zip_path) as archive:
        for name in archive.namelist():
            if name.startswith(("shared/", "functions/")) and name.endswith(".py"):
                assert (bundle / name).read_bytes() == archive.read(name), name
