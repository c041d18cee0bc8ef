"""`make dev`'s OpenAPI page: the bearer scheme declared (so "Authorize" works), the error answers
documented as they are sent (the envelope, no 422), and Swagger UI served by the app itself, so the
page works without internet access. tests/integration/test_schemathesis.py checks the answers
against this document."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.errors import Reason
from tests.conftest import bearer

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def document(client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def documented_reasons(response: dict[str, Any]) -> list[str]:
    return re.findall(r"`([A-Z_]+)`", response["description"])


def test_the_bearer_scheme_is_declared_and_on_every_authenticated_operation(document):
    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Our access token (wx-login, refresh)",
        }
    }
    secured = {}
    for method, path, operation in operations(document):
        security = operation.get("security")
        takes_token = "TOKEN_MISSING" in documented_reasons(
            operation["responses"].get("401", {"description": ""})
        )
        assert (security is not None) == takes_token, (method, path, security)
        secured[f"{method} {path}"] = security
    assert secured["GET /api/v1/user/profile"] == [{"bearerAuth": []}]
    assert secured["PATCH /api/v1/user/profile"] == [{"bearerAuth": []}]
    assert secured["POST /api/v1/auth/logout"] == [{"bearerAuth": []}]
    # Optional: a refresh token in the body needs no bearer token.
    assert secured["POST /api/v1/auth/refresh"] == [{"bearerAuth": []}, {}]
    assert secured["POST /api/v1/auth/wx-login"] is None and secured["GET /.well-known/jwks.json"] is None


def test_what_authorize_sends_is_what_the_routes_read(client, login):
    """Swagger UI's http/bearer scheme sends `Authorization: Bearer <token>`."""
    token = login()["access_token"]
    assert client.get("/api/v1/user/profile", headers=bearer(token)).status_code == 200


def test_no_422_anywhere(document):
    text = json.dumps(document)
    assert '"422"' not in text and "HTTPValidationError" not in text and "ValidationError" not in text
    for _method, _path, operation in operations(document):
        assert "422" not in operation["responses"]


def test_error_answers_are_the_envelope_with_the_reasons_of_their_status(document):
    schemas = document["components"]["schemas"]
    envelope = schemas["ErrorEnvelope"]
    assert set(envelope["required"]) == {"code", "message", "error", "reason", "timestamp"}
    assert set(schemas["Reason"]["enum"]) == {reason.value for reason in Reason}
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert {"200", "400", "413", "500"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status == "200":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path, status)
            reasons = documented_reasons(response)
            assert reasons, (method, path, status)
            assert all(Reason(reason).status == int(status) for reason in reasons), (method, path, status)


def test_each_operation_documents_the_reasons_it_answers(document):
    def reasons_of(key: str) -> set[str]:
        method, path = key.split(" ", 1)
        operation = document["paths"][path][method.lower()]
        return {
            r
            for response in operation["responses"].values()
            if "description" in response
            for r in documented_reasons(response)
        }

    assert {"WECHAT_CODE_INVALID", "WECHAT_UNAVAILABLE", "STORAGE_UNAVAILABLE", "RATE_LIMITED"} <= reasons_of(
        "POST /api/v1/auth/wx-login"
    )
    assert {"REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "TOKEN_MISSING"} <= reasons_of(
        "POST /api/v1/auth/refresh"
    )
    assert {"CONTENT_REJECTED", "WECHAT_UNAVAILABLE"} <= reasons_of("PATCH /api/v1/user/profile")
    assert "CONTENT_REJECTED" not in reasons_of("GET /api/v1/user/profile")
    assert reasons_of("GET /.well-known/jwks.json") == {
        "INVALID_REQUEST",
        "PAYLOAD_TOO_LARGE",
        "SERVER_MISCONFIGURED",
        "INTERNAL_ERROR",
    }


def test_the_docs_page_loads_nothing_from_elsewhere(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    urls = re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""", html)
    referenced = [a or b for a, b in urls]
    assert sorted(referenced) == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]
    assert '"validatorUrl": null' in html  # no badge fetched from Swagger's online validator
    expected_types = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
        ".json": "application/json",
    }
    for url in referenced:
        response = client.get(url)
        assert response.status_code == 200, url
        kind = expected_types[url[url.rindex(".") :]]
        assert response.headers["content-type"].split(";")[0] == kind, url
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle and 'PACKAGE_VERSION:"5.' in bundle  # OpenAPI 3.1 needs Swagger UI 5
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_only_the_docs_assets_are_served(client):
    for name in ("redoc.standalone.js", "../core.py", "swagger-ui-bundle.js.map"):
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 404 and response.json()["reason"] == "NOT_FOUND"
