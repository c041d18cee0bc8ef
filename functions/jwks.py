"""The JWKS function (GET /.well-known/jwks.json): AWS Lambda / Tencent SCF entry point."""

from shared.api.app import create_app
from shared.api.handler import lambda_handler
from shared.api.routes.jwks import router

app = create_app(root_routers=[router])
handler = lambda_handler(app, storage=False)  # touches no storage: loads no database driver
