"""`make dev`: every route of every function in one process on 127.0.0.1, no cloud account.

Storage is DynamoDB on moto's in-memory backend (tables created at start). Unless WX_API_BASE or
WX_APPID is set, WeChat is the built-in simulator (local/wechat_sim.py); with WX_API_BASE set, that URL is
called like the real WeChat. Uploaded avatars go to a moto S3 bucket and are served back from
`/local-avatars/{key}` (a local-only route: deployed avatars are served by CloudFront).
"""

from __future__ import annotations

import logging
import os
import sys

import httpx
import uvicorn
from fastapi import FastAPI
from moto import mock_aws

from shared.settings import get_settings
from shared.storage.base import Storage

logger = logging.getLogger("devserver")

# What a local run assumes unless told otherwise: the local stage and fake AWS credentials (moto).
LOCAL_DEFAULTS = {
    "STAGE": "local",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def build_app(
    simulator_transport: httpx.BaseTransport | None = None, store: Storage | None = None
) -> FastAPI:
    """One app with every function's routes; WeChat answered by `simulator_transport` and storage
    by `store` when given."""
    from local.dev_stats import add_dev_stats
    from local.docs import add_docs
    from shared.api.app import create_app
    from shared.api.deps import storage
    from shared.api.routes import avatar, decrypt, jwks, login, logout, phone, profile, refresh, session_check
    from shared.wechat import WeChatClient

    app = create_app(
        login.router,
        refresh.router,
        logout.router,
        profile.router,
        avatar.router,
        phone.router,
        decrypt.router,
        session_check.router,
        root_routers=[jwks.router],
        path_limits={avatar.AVATAR_PATH: avatar.AVATAR_BODY_LIMIT},
    )
    _serve_local_avatars(app)
    add_dev_stats(app)
    add_docs(app)
    if simulator_transport is not None:
        client = WeChatClient(get_settings(), transport=simulator_transport)
        app.dependency_overrides[login.wechat_client] = lambda: client
    if store is not None:
        app.dependency_overrides[storage] = lambda: store
    return app


def _serve_local_avatars(app: FastAPI) -> None:
    """GET /local-avatars/{key}: the in-memory bucket's objects, as CloudFront serves them when deployed."""
    from fastapi import Response
    from starlette.exceptions import HTTPException

    from shared.api.routes.avatar import store
    from shared.avatar_store import CACHE_CONTROL

    @app.get("/local-avatars/{key:path}", include_in_schema=False)
    def local_avatar(key: str) -> Response:
        found = store().get(key)
        if found is None:
            raise HTTPException(404)
        headers = {"Cache-Control": CACHE_CONTROL}
        return Response(found.content, media_type=found.content_type, headers=headers)


def create_avatar_bucket() -> None:
    """The moto bucket behind /local-avatars (deployed buckets come from serverless.yml)."""
    import boto3

    settings = get_settings()
    boto3.client("s3", region_name=settings.aws_region).create_bucket(Bucket=settings.avatar_bucket)


def server_config(app: FastAPI, port: int) -> uvicorn.Config:
    """How `make dev` serves `app` on 127.0.0.1:`port`.

    The client's IP (per-IP login limits, shared/api/client_ip.py) is the socket's peer: no proxy
    headers, so `X-Forwarded-For` cannot choose it (uvicorn trusts them from 127.0.0.1 by default).
    A request that is not HTTP is answered 400 in the envelope (local/http11.py). uvicorn's lines go
    through our JSON logging (log_config=None), and our access log (shared/api/access_log.py)
    replaces uvicorn's, which prints query strings.
    """
    from local.http11 import EnvelopeH11Protocol

    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=EnvelopeH11Protocol,
        proxy_headers=False,
        log_level="info",
        log_config=None,
        access_log=False,
    )


def main() -> int:
    """Start moto, create tables, serve. Exits non-zero on unsafe settings."""

    from local.moto_atomic import make_moto_atomic
    from local.wechat_sim import WeChatSimulator
    from shared.logs import configure_logging
    from shared.storage.factory import open_storage

    # Before anything reads settings or builds a boto client.
    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)
    configure_logging()  # JSON lines as deployed; LOG_LEVEL=DEBUG for more
    settings = get_settings()
    if settings.problems:
        print(
            f"refusing to start: unsafe or missing settings: {', '.join(settings.problems)}", file=sys.stderr
        )
        return 2
    use_simulator = not (os.environ.get("WX_API_BASE") or os.environ.get("WX_APPID"))
    port = int(os.environ.get("PORT", "8000"))
    make_moto_atomic()  # concurrent requests see DynamoDB's per-request atomicity
    with mock_aws():
        store = open_storage(settings)
        store.create_schema()
        create_avatar_bucket()
        # The simulator watermarks open data with our appid, as WeChat does.
        simulator = WeChatSimulator(appid=settings.wx_appid)
        transport = httpx.MockTransport(simulator) if use_simulator else None
        app = build_app(transport, store)
        wechat = "built-in simulator" if use_simulator else settings.wx_api_base
        print(
            f"serving http://127.0.0.1:{port}/docs  (DynamoDB: moto in memory, WeChat: {wechat})", flush=True
        )
        uvicorn.Server(server_config(app, port)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
