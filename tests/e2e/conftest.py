"""Real HTTP: the dev server (`make dev`'s entry point) in a subprocess, and a fake WeChat on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from local.wechat_sim import SimulatorASGI, WeChatSimulator
from tests.conftest import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class FakeWeChat:
    url: str
    simulator: WeChatSimulator


@pytest.fixture(scope="session")
def fake_wechat() -> Iterator[FakeWeChat]:
    """The WeChat simulator served over real HTTP on 127.0.0.1."""
    simulator = WeChatSimulator(appid=TEST_ENV["WX_APPID"], secret=TEST_ENV["WX_SECRET"])
    port = free_port()
    config = uvicorn.Config(SimulatorASGI(simulator), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake WeChat did not start"
        time.sleep(0.05)
    yield FakeWeChat(f"http://127.0.0.1:{port}", simulator)
    server.should_exit = True
    thread.join(timeout=5)


@dataclass
class DevServer:
    url: str
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def dev_server(fake_wechat: FakeWeChat, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`python -m local.devserver` (what `make dev` runs), pointed at the fake WeChat."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("devserver") / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
    env.update(TEST_ENV, WX_API_BASE=fake_wechat.url, PORT=str(port), PYTHONUNBUFFERED="1")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.devserver"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "dev server did not start: " + log_path.read_text()
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield DevServer(url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
