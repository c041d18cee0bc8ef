"""Fixtures for the checks on the real packaging output (.serverless/, built by `make package`).

Plain `pytest` skips these tests unless .serverless/ holds a package of the current tree;
`make test-package` builds the package first and sets WX_LOGIN_REQUIRE_PACKAGE=1, so there a
missing or stale package fails instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local.wechat_sim import SimulatorASGI, WeChatSimulator
from tests.package.packaged import ROOT, STATE, TEMPLATE, Package, package_required, stale_reason

WORKER = Path(__file__).with_name("worker.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`function_name`: every function of the package (a placeholder when there is none: skipped)."""
    if "function_name" in metafunc.fixturenames:
        names = sorted(Package().functions) if TEMPLATE.exists() and STATE.exists() else ["no-package"]
        metafunc.parametrize("function_name", names, scope="module")


@pytest.fixture(scope="session", autouse=True)
def package() -> Package:
    """The package in .serverless/: skip (plain pytest) or fail (make test-package) without one."""
    reason = stale_reason()
    if reason is not None:
        if package_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return Package()


@pytest.fixture(scope="session")
def unpacked(package: Package, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each function's artifact unpacked into an empty directory of its own (Lambda's /var/task)."""
    directories = {}
    for name, function in package.functions.items():
        target = tmp_path_factory.mktemp(f"artifact-{name}")
        with zipfile.ZipFile(function.zip_path) as archive:
            archive.extractall(target)
        directories[name] = target
    return directories


@pytest.fixture(scope="session")
def unpacked_layer(package: Package, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The requirements layer unpacked into an empty directory, shared by every function: what Lambda
    mounts at /opt (the workers run with -B and write no bytecode there, as on Lambda's read-only /opt)."""
    target = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(package.requirements_layer.zip_path) as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def runtime_python(package: Package) -> str:
    """An interpreter of the functions' runtime version (python3.11 -> 3.11), without any venv."""
    runtimes = {function.runtime for function in package.functions.values()}
    assert len(runtimes) == 1, runtimes
    version = runtimes.pop().removeprefix("python")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        base = getattr(sys, "_base_executable", sys.executable)
        return str(Path(base).resolve())
    found = real_interpreter(version)
    if found is None:
        pytest.fail(f"the smoke test needs Python {version}, the Lambda runtime's version")
    return found


def real_interpreter(version: str) -> str | None:
    """The interpreter binary of Python `version` ("3.10"), not a shim that needs the user's env.

    `pythonX.Y` on PATH when it runs (a pyenv shim only runs for the selected versions), else a
    pyenv-installed one.
    """
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        result = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {timeout} s")
        time.sleep(0.05)


@dataclass
class MotoServer:
    """moto's server mode in a process of its own: AWS APIs on 127.0.0.1 over real HTTP.

    A separate process, because switching on moto's IAM enforcement is process-global.
    """

    url: str
    region: str
    process: subprocess.Popen[str]
    log_path: Path
    users: dict[str, dict[str, str]] = field(default_factory=dict)

    def denials(self) -> list[str]:
        """`DENIED <user ARN> <action>` for every request that IAM refused so far."""
        return [line for line in self.log_path.read_text().splitlines() if line.startswith("DENIED ")]

    def client(self, service: str, user: str = "admin") -> Any:
        keys = self.users.get(user, {"AccessKeyId": "admin", "SecretAccessKey": "admin"})
        make_client: Any = boto3.client  # one call for any service name (the stubs overload per name)
        return make_client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
        )

    def add_user(self, name: str, statements: list[dict[str, Any]]) -> dict[str, str]:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self.users[name] = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
        return self.users[name]

    def enforce_iam(self) -> None:
        """From now on every request must be signed by a user whose policy allows the action."""
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            assert json.loads(answer.read())["status"] == "ok"


@contextmanager
def start_moto(region: str, log_path: Path) -> Iterator[MotoServer]:
    """tests/package/moto_server.py in a process of its own, on a free port of 127.0.0.1."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.package.moto_server", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # "listening PORT", or nothing if it died
            assert line.startswith("listening "), f"moto server did not start: {log_path.read_text()}"
            url = f"http://127.0.0.1:{int(line.split()[1])}"
            yield MotoServer(url=url, region=region, process=process, log_path=log_path)
        finally:
            process.kill()  # in-memory state only: nothing to shut down cleanly
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture(scope="session")
def moto_server(package: Package, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with start_moto(package.region, tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def aws_backend(package: Package, moto_server: MotoServer) -> MotoServer:
    """moto with the template's tables, the SSM parameters and an IAM user per role, enforced."""
    from tests.package.smoke import setup_aws

    setup_aws(package, moto_server)
    return moto_server


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that the artifact's httpx trusts through SSL_CERT_FILE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "wechat.pem", directory / "wechat.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class FakeWeChat:
    url: str
    ca_file: Path
    simulator: WeChatSimulator


SMOKE_APPID = "wx-smoke-appid"
SMOKE_SECRET = "wx-smoke-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def fake_wechat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWeChat]:
    """The project's WeChat simulator over HTTPS on 127.0.0.1 (outside `local`, WX_API_BASE is https)."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    simulator = WeChatSimulator(appid=SMOKE_APPID, secret=SMOKE_SECRET)
    port = free_port()
    config = uvicorn.Config(
        SimulatorASGI(simulator),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "fake WeChat")
    yield FakeWeChat(f"https://127.0.0.1:{port}", cert, simulator)
    server.should_exit = True
    thread.join(timeout=5)


class Worker:
    """One function's artifact answering events in a clean interpreter (tests/package/worker.py), with
    its layers' directory (`opt`, Lambda's /opt) if it has any."""

    def __init__(
        self,
        python: str,
        artifact: Path,
        handler: str,
        env: dict[str, str],
        log: Path,
        opt: Path | None = None,
    ) -> None:
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        layers = ["--opt", str(opt)] if opt is not None else []
        self.process = subprocess.Popen(
            [python, "-I", "-S", "-B", str(WORKER), str(artifact), handler, *layers],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=artifact,
            env=env,
            text=True,
        )
        self.handler = handler
        self.ready: dict[str, Any] = {}

    def wait_ready(self) -> None:
        """The cold start: the handler module imported (or failed to)."""
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise AssertionError(
                f"{self.handler} failed to import:\n{self.ready.get('error')}\n{self.logs()}"
            )

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("@@worker@@ "):
                message: dict[str, Any] = json.loads(line.removeprefix("@@worker@@ "))
                return message
        raise AssertionError(f"worker exited ({self.process.wait()}):\n{self.logs()}")

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._read()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        answer = self.send(event)
        if "error" in answer:
            raise AssertionError(f"handler raised:\n{answer['error']}\n{self.logs()}")
        response: dict[str, Any] = answer["response"]
        return response

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        close_all([self])


def close_all(workers: list[Worker]) -> None:
    """End of input for every worker first, so that they shut down in parallel."""
    for worker in workers:
        if worker.process.stdin is not None and not worker.process.stdin.closed:
            worker.process.stdin.close()
    for worker in workers:
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        if worker.process.stdout is not None:
            worker.process.stdout.close()
        worker._log.close()
