"""The avatar function: AWS Lambda / Tencent SCF entry point."""

from shared.api.app import create_app
from shared.api.handler import lambda_handler
from shared.api.routes.avatar import AVATAR_BODY_LIMIT, router

app = create_app(router, max_body_bytes=AVATAR_BODY_LIMIT)
handler = lambda_handler(app)
