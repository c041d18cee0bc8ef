"""The decrypt function: AWS Lambda / Tencent SCF entry point."""

from shared.api.app import create_app
from shared.api.handler import lambda_handler
from shared.api.routes.decrypt import router

app = create_app(router)
handler = lambda_handler(app)
