"""FastAPI dependencies for WeChat: one pooled client and one access_token manager per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Depends

from shared.api.deps import StorageDep
from shared.settings import get_settings
from shared.storage.base import Storage
from shared.wechat import WeChatClient
from shared.wechat_token import AccessTokenManager


@lru_cache(maxsize=1)
def wechat_client() -> WeChatClient:
    """One WeChat client per process, reused across invocations (connection pooling)."""
    return WeChatClient(get_settings())


@lru_cache(maxsize=8)
def _manager_for(wechat: WeChatClient, store: Storage) -> AccessTokenManager:
    return AccessTokenManager(wechat.settings, wechat.http, store)


def access_token_manager(
    wechat: Annotated[WeChatClient, Depends(wechat_client)], store: StorageDep
) -> AccessTokenManager:
    """The process's access_token manager, on the same pooled HTTP client as `wechat_client` and the
    process's storage.

    Overriding `wechat_client` (tests, `make dev`'s simulator) or `storage` redirects this one too.
    """
    return _manager_for(wechat, store)


WeChatDep = Annotated[WeChatClient, Depends(wechat_client)]
AccessTokensDep = Annotated[AccessTokenManager, Depends(access_token_manager)]
