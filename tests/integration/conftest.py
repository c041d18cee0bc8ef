"""Fixtures for driving the deployed functions' handlers directly."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from shared.api.routes.login import wechat_client
from shared.storage.base import Storage
from shared.wechat import WeChatClient
from tests.conftest import serve_storage

CORE_FUNCTIONS = ("login", "refresh", "logout", "profile")


@pytest.fixture
def functions(aws: None, storage: Storage, wechat: WeChatClient) -> Iterator[dict[str, ModuleType]]:
    """The four core functions' modules on this test's storage, with WeChat answered by the simulator."""
    modules = {name: importlib.import_module(f"functions.{name}") for name in CORE_FUNCTIONS}
    for module in modules.values():
        serve_storage(module.app, storage)
    # The profile function calls WeChat too, for PATCH only (content security; imported lazily).
    calling_wechat = ("login", "profile")
    for name in calling_wechat:
        modules[name].app.dependency_overrides[wechat_client] = lambda: wechat
    yield modules
    for module in modules.values():
        module.app.dependency_overrides.clear()
