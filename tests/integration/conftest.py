"""Fixtures for driving the deployed functions' handlers directly."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from shared.api.routes.login import wechat_client
from shared.wechat import WeChatClient

CORE_FUNCTIONS = ("login", "refresh", "logout", "profile")


@pytest.fixture
def functions(aws: None, wechat: WeChatClient) -> Iterator[dict[str, ModuleType]]:
    """The four core functions' modules, with WeChat answered by the simulator."""
    modules = {name: importlib.import_module(f"functions.{name}") for name in CORE_FUNCTIONS}
    # The profile function calls WeChat too, for PATCH only (content security; imported lazily).
    calling_wechat = ("login", "profile")
    for name in calling_wechat:
        modules[name].app.dependency_overrides[wechat_client] = lambda: wechat
    yield modules
    for name in calling_wechat:
        modules[name].app.dependency_overrides.clear()
