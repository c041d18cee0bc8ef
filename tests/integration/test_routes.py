"""Unknown routes and wrong methods on every function's app: 404 NOT_FOUND (a trailing slash too, never
a redirect) and 405 METHOD_NOT_ALLOWED with an `Allow` header naming every method of the route, all in
the envelope; and the `$default` route on AWS, which sends what API Gateway matches to no route to a
function that answers the same way."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

import functions
from shared.api.route_table import ROUTES, methods_of
from tests.integration.test_profile_and_edge import assert_error
from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context, tencent

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FUNCTION_NAMES = sorted(info.name for info in pkgutil.iter_modules(functions.__path__))


def function_module(name: str) -> ModuleType:
    return importlib.import_module(f"functions.{name}")


def api_routes(app: FastAPI) -> dict[str, set[str]]:
    """The app's API routes (not the dev server's own pages), by full path."""
    routes: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and route.path:
            routes.setdefault(route.path, set()).update(route.methods or ())
    return routes


def serverless_routes() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """serverless.yml's HTTP API routes by path, and which functions have a catch-all (`httpApi: "*"`)."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())
    routes: dict[str, set[str]] = {}
    catch_all: dict[str, list[str]] = {}
    for name, function in config["functions"].items():
        for event in function.get("events", []):
            http = event.get("httpApi")
            if http == "*":
                catch_all.setdefault("$default", []).append(name)
            elif isinstance(http, dict):
                routes.setdefault(http["path"], set()).add(http["method"].upper())
    return routes, catch_all


def test_the_route_table_is_the_union_of_the_functions_and_of_serverless_yml():
    union: dict[str, set[str]] = {}
    for name in FUNCTION_NAMES:
        for path, methods in api_routes(function_module(name).app).items():
            union.setdefault(path, set()).update(methods)
    table = {path: set(methods) for path, methods in ROUTES.items()}
    assert union == table
    deployed, catch_all = serverless_routes()
    assert deployed == table
    assert catch_all == {"$default": ["jwks"]}


def test_the_dev_app_serves_every_route_of_the_table(app):
    assert {path: methods for path, methods in api_routes(app).items()} == {
        path: set(methods) for path, methods in ROUTES.items()
    }


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_every_function_answers_405_with_every_method_of_every_route(name):
    """Also for routes another function serves: on AWS those methods reach the `$default` function."""
    with TestClient(function_module(name).app, raise_server_exceptions=False) as client:
        for path, allowed in ROUTES.items():
            for method in METHODS:
                if method in allowed:
                    continue
                response = client.request(method, path)
                assert_error(response, 405, "METHOD_NOT_ALLOWED")
                assert response.headers["allow"] == ", ".join(sorted(allowed)), (name, method, path)


def test_the_dev_app_answers_405_with_every_method_too(client):
    response = client.delete("/api/v1/user/profile")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, PATCH"
    response = client.post("/api/v1/user/profile", json={})
    assert response.headers["allow"] == "GET, PATCH"
    assert client.put("/api/v1/auth/wx-login").headers["allow"] == "POST"


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_every_function_answers_404_for_a_trailing_slash_and_unknown_paths(name):
    with TestClient(function_module(name).app, raise_server_exceptions=False) as client:
        for path in [*(f"{p}/" for p in ROUTES), "/", "/api/v1/nope", "/docs", "/openapi.json"]:
            for method in ("GET", "POST", "PATCH"):
                response = client.request(method, path, follow_redirects=False)
                assert_error(response, 404, "NOT_FOUND")
                assert "location" not in response.headers and "allow" not in response.headers


def test_a_route_served_by_another_function_is_404_there(functions):
    """Cannot happen behind API Gateway (it routes by method and path), but is not a 405 either."""
    response = functions["profile"].handler(apigw_v2("POST", "/api/v1/auth/wx-login"), lambda_context())
    assert answer(response)[1]["reason"] == "NOT_FOUND"


@pytest.mark.parametrize("build", [apigw_v1, apigw_v2, tencent], ids=["v1", "v2", "tencent"])
def test_the_default_route_function_answers_in_the_envelope(build):
    """What API Gateway's `$default` route sends to the jwks function (serverless.yml)."""
    handler = function_module("jwks").handler
    cases = [
        ("GET", "/api/v1/nope", 404, None),
        ("GET", "/api/v1/user/profile/", 404, None),
        ("GET", "/", 404, None),
        ("DELETE", "/api/v1/user/profile", 405, "GET, PATCH"),
        ("GET", "/api/v1/auth/wx-login", 405, "POST"),
        ("POST", "/.well-known/jwks.json", 405, "GET"),
    ]
    for method, path, status, allow in cases:
        response = handler(build(method, path), lambda_context())
        code, body = answer(response)
        assert (code, body["code"]) == (status, status), (method, path, body)
        assert body["reason"] == ("NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED")
        headers = {k.lower(): v for k, v in response["headers"].items()}
        assert headers.get("allow") == allow
        assert headers["content-type"] == "application/json"


def test_methods_of_matches_templates():
    assert methods_of("/api/v1/user/profile") == {"GET", "PATCH"}
    assert methods_of("/api/v1/user/profile/") == frozenset()
    assert methods_of("/api/v1/user/profile\n") == frozenset()
    assert methods_of("/api/v1/nope") == frozenset()
