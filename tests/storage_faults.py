"""DynamoDB faults injected through botocore's event hooks on the client the DynamoDB adapter really
uses (moto still answers every call that is not failed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from shared.storage.base import Storage
from shared.storage.dynamodb import DynamoDBStorage

THROTTLED = "ProvisionedThroughputExceededException"
CONDITION_FAILED = "ConditionalCheckFailedException"


def _decoded(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes | str):
        body = json.loads(body or b"{}")
    return body if isinstance(body, dict) else {}


def _conditional(body: dict[str, Any]) -> bool:
    parts = [part for item in body.get("TransactItems", []) for part in item.values()]
    return "ConditionExpression" in body or any("ConditionExpression" in part for part in parts)


def _tables(body: dict[str, Any]) -> str:
    if "TableName" in body:
        return str(body["TableName"])
    names = {str(part["TableName"]) for item in body.get("TransactItems", []) for part in item.values()}
    return "+".join(sorted(names))


class DynamoFaults:
    """Records every DynamoDB call (operation, tables); fails the call numbered `fail_at` with `code`
    (a conditional-check failure only where DynamoDB could answer one: a write with a condition).

    `before-call` answers without sending, so the SDK does not retry (fast); `retried_operation` fails
    at `before-send`, under the SDK's own retries and backoff, every attempt of the matching operation
    (on `retried_table` if set), with moto kept from storing it meanwhile.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_at: int | None = None
        self.code = THROTTLED
        self.retried_operation: str | None = None
        self.retried_table: str | None = None
        self.sends: list[str] = []

    def fail(self, index: int | None, code: str = THROTTLED) -> None:
        self.calls.clear()
        self.fail_at, self.code = index, code

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        index = len(self.calls)
        body = _decoded(params.get("body"))
        self.calls.append((model.name, _tables(body)))
        if index != self.fail_at or (self.code == CONDITION_FAILED and not _conditional(body)):
            return None
        status = SimpleNamespace(status_code=400, headers={})
        return status, {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {}}

    def _before_send(self, request: Any, **kwargs: Any) -> Any:
        operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
        if operation != self.retried_operation:
            return None
        if self.retried_table is not None and self.retried_table not in _tables(_decoded(request.body)):
            return None
        self.sends.append(operation)
        # botocore calls every before-send handler, so moto would still store what we pretend failed.
        botocore_stubber.enabled = False
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}", "message": "injected"})
        headers = HTTPHeaders()
        headers["x-amzn-requestid"] = "injected"
        headers["content-type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 400, headers, MockRawResponse(body))

    def _after_call(self, **_: Any) -> None:
        botocore_stubber.enabled = True


@contextmanager
def dynamo_faults(storage: Storage) -> Iterator[DynamoFaults]:
    """Hook a DynamoFaults into the adapter's botocore client for the duration of the block."""
    assert isinstance(storage, DynamoDBStorage), "DynamoDB faults need the DynamoDB backend"
    faults = DynamoFaults()
    client = storage.client
    client.meta.events.register("before-call.dynamodb", faults._before_call)
    client.meta.events.register_first("before-send.dynamodb", faults._before_send)
    client.meta.events.register("after-call.dynamodb", faults._after_call)
    try:
        yield faults
    finally:
        botocore_stubber.enabled = True
        client.meta.events.unregister("before-call.dynamodb", faults._before_call)
        client.meta.events.unregister("before-send.dynamodb", faults._before_send)
        client.meta.events.unregister("after-call.dynamodb", faults._after_call)
