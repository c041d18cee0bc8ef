"""The whole API over real sockets on 127.0.0.1: the WeChat simulator served by uvicorn in a thread,
and `python -m local.devserver` (what `make dev` runs) in a subprocess pointed at it.

For `make stress` and for tests that need a dev server with settings of their own (a log level, limits).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from local.wechat_sim import SimulatorASGI, WeChatSimulator

ROOT = Path(__file__).resolve().parents[1]
# What a dev-server subprocess must not inherit from the caller (a test runner's own settings).
_SETTINGS_PREFIXES = (
    "WX_",
    "JWT_",
    "SESSION_KEY_",
    "LOGIN_",
    "RATE_LIMIT_",
    "REQUEST_",
    "LOG_LEVEL",
    "STAGE",
    "PORT",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DevServer:
    """A running dev server and the file its output goes to."""

    url: str
    log_path: Path

    def logs(self) -> str:
        """Everything the dev server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


@dataclass
class Stack(DevServer):
    """A running dev server and the WeChat simulator (`wechat_url`) it calls."""

    wechat_url: str
    simulator: WeChatSimulator


@contextmanager
def serving_simulator(simulator: WeChatSimulator) -> Iterator[str]:
    """Serve `simulator` on 127.0.0.1 (its access log off: WeChat URLs carry the secret); yields its URL."""
    port = free_port()
    config = uvicorn.Config(SimulatorASGI(simulator), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the WeChat simulator did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@contextmanager
def running_dev_server(
    settings_env: Mapping[str, str], wechat_url: str | None, log_path: Path, startup_s: float = 30
) -> Iterator[DevServer]:
    """`python -m local.devserver` with `settings_env` (none of the caller's own settings), calling
    WeChat at `wechat_url` (None: its built-in simulator, as `make dev` with no WeChat settings), on a
    free port; stopped when the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    env.update(settings_env, PORT=str(port), PYTHONUNBUFFERED="1")
    if wechat_url is not None:
        env["WX_API_BASE"] = wechat_url
    with log_path.open("w") as log:
        command = [sys.executable, "-m", "local.devserver"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, url, log_path, startup_s)
        yield DevServer(url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_stack(settings_env: Mapping[str, str], log_path: Path) -> Iterator[Stack]:
    """A simulator of its own (with the env's WX_APPID and WX_SECRET) and a dev server calling it."""
    simulator = WeChatSimulator(
        appid=settings_env.get("WX_APPID", ""), secret=settings_env.get("WX_SECRET", "")
    )
    with (
        serving_simulator(simulator) as wechat_url,
        running_dev_server(settings_env, wechat_url, log_path) as dev,
    ):
        yield Stack(dev.url, dev.log_path, wechat_url, simulator)


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log_path: Path, startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    while True:
        if process.poll() is not None:
            raise RuntimeError("the dev server exited: " + log_path.read_text(errors="replace"))
        if time.monotonic() > deadline:
            raise RuntimeError("the dev server did not start: " + log_path.read_text(errors="replace"))
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
