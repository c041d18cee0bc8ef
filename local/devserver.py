"""`make dev`: every route of every function in one process on 127.0.0.1, no cloud account.

DynamoDB is moto's in-memory backend (tables created at start). Unless WX_API_BASE or WX_APPID is
set, WeChat is the built-in simulator (local/wechat_sim.py); with WX_API_BASE set, that URL is
called like the real WeChat.
"""

from __future__ import annotations

import logging
import os
import sys

# Before anything reads settings or builds a boto client: local stage, fake AWS credentials.
os.environ.setdefault("STAGE", "local")
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_name, _value)

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from moto import mock_aws  # noqa: E402

from shared.settings import get_settings  # noqa: E402

logger = logging.getLogger("devserver")


def build_app(simulator_transport: httpx.BaseTransport | None = None) -> FastAPI:
    """One app with every function's routes; WeChat answered by `simulator_transport` when given."""
    from shared.api.app import create_app
    from shared.api.routes import login, logout, profile, refresh
    from shared.wechat import WeChatClient

    app = create_app(login.router, refresh.router, logout.router, profile.router)
    if simulator_transport is not None:
        client = WeChatClient(get_settings(), transport=simulator_transport)
        app.dependency_overrides[login.wechat_client] = lambda: client
    return app


def main() -> int:
    """Start moto, create tables, serve. Exits non-zero on unsafe settings."""
    import uvicorn

    from local.wechat_sim import WeChatSimulator
    from shared.models import create_tables

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if settings.problems:
        print(
            f"refusing to start: unsafe or missing settings: {', '.join(settings.problems)}", file=sys.stderr
        )
        return 2
    use_simulator = not (os.environ.get("WX_API_BASE") or os.environ.get("WX_APPID"))
    port = int(os.environ.get("PORT", "8000"))
    with mock_aws():
        create_tables()
        transport = httpx.MockTransport(WeChatSimulator()) if use_simulator else None
        app = build_app(transport)
        wechat = "built-in simulator" if use_simulator else settings.wx_api_base
        print(
            f"serving http://127.0.0.1:{port}/docs  (DynamoDB: moto in memory, WeChat: {wechat})", flush=True
        )
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
