"""Real HTTP: the dev server (`make dev`'s entry point) in a subprocess, and a fake WeChat on 127.0.0.1
(both started by local/stack.py, which `make stress` uses too)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from local.stack import DevServer, free_port, running_dev_server, serving_simulator
from local.wechat_sim import WeChatSimulator
from tests.conftest import TEST_ENV

__all__ = ["DevServer", "FakeWeChat", "free_port"]


@dataclass
class FakeWeChat:
    url: str
    simulator: WeChatSimulator


@pytest.fixture(scope="session")
def fake_wechat() -> Iterator[FakeWeChat]:
    """The WeChat simulator served over real HTTP on 127.0.0.1."""
    simulator = WeChatSimulator(appid=TEST_ENV["WX_APPID"], secret=TEST_ENV["WX_SECRET"])
    with serving_simulator(simulator) as url:
        yield FakeWeChat(url, simulator)


@pytest.fixture(scope="session")
def dev_server(fake_wechat: FakeWeChat, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`python -m local.devserver` (what `make dev` runs), pointed at the fake WeChat."""
    log_path = tmp_path_factory.mktemp("devserver") / "server.log"
    with running_dev_server(TEST_ENV, fake_wechat.url, log_path) as server:
        yield server
