"""One deadline per request: the Deadline, the request's context (into FastAPI's threadpool), the
REQUEST_BUDGET_S setting, the functions' timeouts past it, and DynamoDB attempts stopped at it."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from botocore.exceptions import EndpointConnectionError
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from shared import deadline
from shared.api.app import create_app
from shared.api.envelope import success
from shared.deadline import DEFAULT_BUDGET_S, MAX_BUDGET_S, REQUEST_LIFETIME_S, Deadline, request_deadline
from shared.errors import StorageUnavailable
from shared.settings import get_settings, load_settings
from shared.storage.base import Storage
from shared.storage.dynamodb import DynamoDBStorage
from tests.conftest import dynamodb_only

ROOT = Path(__file__).resolve().parents[2]


def test_a_deadline_counts_down_on_the_monotonic_clock():
    ahead = Deadline.after(5)
    assert 4.5 < ahead.remaining() <= 5 and not ahead.expired
    past = Deadline(time.monotonic() - 1)
    assert past.expired and past.remaining() == 0.0


def test_the_requests_deadline_is_current_inside_its_block_and_a_fresh_default_outside():
    outside = deadline.current()
    assert DEFAULT_BUDGET_S - 1 < outside.remaining() <= DEFAULT_BUDGET_S
    request = Deadline.after(1.5)
    with request_deadline(request):
        assert deadline.current() is request
    assert deadline.current() is not request


_seen: dict[str, Any] = {}


async def _loop_thread() -> int:  # async: runs on the event loop's thread
    return threading.get_ident()


def _sync_dependency() -> float:  # sync: FastAPI runs it in a worker thread
    _seen["dependency_thread"] = threading.get_ident()
    return deadline.current().at


_probe = APIRouter()


@_probe.get("/probe")
def _probe_route(
    loop: Annotated[int, Depends(_loop_thread)], dependency_at: Annotated[float, Depends(_sync_dependency)]
) -> Any:
    _seen.update(loop_thread=loop, route_thread=threading.get_ident())
    return success({"route_at": deadline.current().at, "dependency_at": dependency_at})


def test_the_middleware_sets_the_budget_and_sync_dependencies_and_routes_see_it_in_worker_threads(settings):
    app = create_app(_probe)
    app.dependency_overrides[get_settings] = lambda: dataclasses.replace(settings, request_budget_s=2.0)
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.get("/api/v1/probe")
        finished = time.monotonic()
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert _seen["route_thread"] != _seen["loop_thread"] != _seen["dependency_thread"]
    # The middleware's deadline (2 s from the request's arrival), not a fresh default of 9 s.
    assert data["route_at"] == data["dependency_at"]
    assert started + 2.0 <= data["route_at"] <= finished + 2.0


def test_the_budget_is_a_setting_of_at_most_nine_seconds_in_a_deployed_stage():
    assert load_settings({}).request_budget_s == DEFAULT_BUDGET_S == 9.0
    deployed = {"STAGE": "prod"}
    assert load_settings({**deployed, "REQUEST_BUDGET_S": "2.5"}).request_budget_s == 2.5
    assert "REQUEST_BUDGET_S" not in load_settings({**deployed, "REQUEST_BUDGET_S": "9"}).problems
    for bad in ("9.5", "0", "abc", "nan"):
        assert "REQUEST_BUDGET_S" in load_settings({**deployed, "REQUEST_BUDGET_S": bad}).problems, bad
    # Locally (no function timeout; many requests in one process) a longer budget may be set.
    assert load_settings({"REQUEST_BUDGET_S": "30"}).request_budget_s == 30
    assert "REQUEST_BUDGET_S" in load_settings({"REQUEST_BUDGET_S": "61"}).problems


@dynamodb_only
def test_every_functions_timeout_leaves_room_past_the_largest_budget(storage):
    aws = yaml.safe_load((ROOT / "serverless.yml").read_text())
    functions = aws["functions"].items()
    timeouts = {name: spec.get("timeout", aws["provider"]["timeout"]) for name, spec in functions}
    tencent = yaml.safe_load((ROOT / "infra/tencent/serverless.yml").read_text())
    timeouts["tencent"] = tencent["inputs"]["timeout"]
    # A DynamoDB attempt started just before the deadline runs on for its own timeouts.
    config = storage.client.meta.config
    storage_attempt_s = config.connect_timeout + config.read_timeout
    assert storage_attempt_s == 3
    assert len(timeouts) >= 10
    for name, timeout in timeouts.items():
        assert timeout >= MAX_BUDGET_S + storage_attempt_s + 1, name
        # What a request holds for others (a login claim, a token refresh lease) outlives it.
        assert timeout <= REQUEST_LIFETIME_S, name


@pytest.fixture
def unreachable_dynamodb(storage: Storage) -> Any:
    """Every DynamoDB attempt takes 0.3 s, then fails as if the endpoint could not be reached (the SDK
    retries that); answers the list of attempts made."""
    attempts: list[float] = []

    def unreachable(request: Any, **_: Any) -> None:
        attempts.append(time.monotonic())
        time.sleep(0.3)
        raise EndpointConnectionError(endpoint_url=request.url)

    assert isinstance(storage, DynamoDBStorage)
    events = storage.client.meta.events
    events.register("before-send.dynamodb", unreachable)
    yield attempts
    events.unregister("before-send.dynamodb", unreachable)


@dynamodb_only
def test_dynamodb_retries_stop_at_the_requests_deadline(storage, unreachable_dynamodb):
    with request_deadline(Deadline.after(0.2)), pytest.raises(StorageUnavailable):
        storage.get_user("o-any")
    assert len(unreachable_dynamodb) == 1  # the retries the SDK would make were not started


@dynamodb_only
def test_no_dynamodb_attempt_starts_after_the_requests_deadline(storage, unreachable_dynamodb):
    with request_deadline(Deadline(time.monotonic() - 0.01)), pytest.raises(StorageUnavailable):
        storage.get_user("o-any")
    assert unreachable_dynamodb == []


@dynamodb_only
def test_outside_a_request_dynamodb_keeps_its_own_retries(storage, unreachable_dynamodb):
    with pytest.raises(StorageUnavailable):
        storage.get_user("o-any")
    assert len(unreachable_dynamodb) == 3
