"""`make dev`'s OpenAPI page: `/openapi.json`, and `/docs` with Swagger UI's files served by this
process from the pinned fastapi-offline package (requirements-dev.txt), never a CDN: FastAPI's default
page loads them from jsdelivr, a blank page without internet access and often in mainland China.
Nothing here ships in a function's package.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = "/docs/assets"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# No badge from Swagger's online validator; the token survives a reload of the page.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "persistAuthorization": True}


@lru_cache(maxsize=len(ASSET_TYPES))
def asset(name: str) -> bytes:
    """One of Swagger UI's files, as the installed package holds it."""
    return (files("fastapi_offline") / "static" / name).read_bytes()


def add_docs(app: FastAPI) -> None:
    """Serve the app's OpenAPI document and the Swagger UI page with its assets."""

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        media_type = ASSET_TYPES.get(name)
        if media_type is None:
            raise HTTPException(404)
        return Response(asset(name), media_type=media_type, headers={"Cache-Control": "max-age=3600"})
