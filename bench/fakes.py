"""In-memory fakes at the transport level: DynamoDB behind botocore's `before-send`, WeChat behind httpx.

Everything above the wire runs for real: botocore serialises, signs and parses every DynamoDB call,
PynamoDB builds its expressions, httpx builds and decodes every WeChat request. Only the network is
replaced. Imported by the hooks in bench/hooks.py after botocore or httpx loaded, so this module
imports nothing they have not already imported.

The DynamoDB fake applies `SET`/`ADD`/`REMOVE` update expressions and stores items, but treats every
`ConditionExpression` as met: the benchmark times the common (successful) path of each endpoint.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    Item = dict[str, dict[str, Any]]

# The session_key the fake WeChat hands out for every user (16 bytes, base64 as WeChat sends it).
SESSION_KEY = base64.b64encode(b"bench-sessionkey").decode()

_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE|DELETE)\b")
_IF_NOT_EXISTS = re.compile(r"if_not_exists\s*\(\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)")


class _Raw:
    """The `raw` of a botocore AWSResponse: something with `stream()`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> list[bytes]:
        return [self._body]


def _split_top_level(text: str) -> list[str]:
    """Split `a = b, c = if_not_exists (d, e)` on the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


class FakeDynamoDB:
    """A stateful in-memory DynamoDB for the operations the service performs."""

    def __init__(self, key_names: dict[str, str], items: dict[str, list[Item]]) -> None:
        self.key_names = key_names
        self.tables: dict[str, dict[str, Item]] = {table: {} for table in key_names}
        for table, rows in items.items():
            for item in rows:
                self.tables[table][self._key(table, item)] = item
        self.calls: Counter[str] = Counter()

    def _key(self, table: str, item_or_key: Item) -> str:
        return json.dumps(item_or_key[self.key_names[table]], sort_keys=True)

    # botocore event handlers

    def count_call(self, event_name: str, **kwargs: Any) -> None:
        """`before-call`: one API call (retries are not counted twice)."""
        _, service, operation = event_name.split(".")[:3]
        self.calls[f"{service}.{operation}"] += 1

    def before_send(self, request: Any, event_name: str, **kwargs: Any) -> Any:
        """`before-send`: answer the request from memory instead of the network."""
        from botocore.awsrequest import AWSResponse

        _, service, operation = event_name.split(".")[:3]
        headers: Any = {"x-amzn-requestid": "bench"}
        if service != "dynamodb":
            return AWSResponse(request.url, 200, headers, _Raw(b""))  # e.g. an S3 PutObject
        headers["content-type"] = "application/x-amz-json-1.0"
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            error = {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": operation}
            return AWSResponse(request.url, 400, headers, _Raw(json.dumps(error).encode()))
        answer = handler(json.loads(request.body or b"{}"))
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(answer).encode()))

    # operations

    def _op_GetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self.tables[body["TableName"]].get(self._key(body["TableName"], body["Key"]))
        return {"Item": item} if item is not None else {}

    def _op_PutItem(self, body: dict[str, Any]) -> dict[str, Any]:
        self.tables[body["TableName"]][self._key(body["TableName"], body["Item"])] = dict(body["Item"])
        return {}

    def _op_DeleteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        self.tables[body["TableName"]].pop(self._key(body["TableName"], body["Key"]), None)
        return {}

    def _op_UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:
        table, key = body["TableName"], body["Key"]
        item = dict(self.tables[table].get(self._key(table, key)) or key)
        names: dict[str, str] = body.get("ExpressionAttributeNames", {})
        values: Item = body.get("ExpressionAttributeValues", {})
        parts = _CLAUSE.split(body.get("UpdateExpression", ""))
        for verb, text in zip(parts[1::2], parts[2::2], strict=True):
            for action in _split_top_level(text):
                if verb == "SET":
                    path, operand = (side.strip() for side in action.split("=", 1))
                    item[names.get(path, path)] = self._operand(operand, item, names, values)
                elif verb == "ADD":
                    path, placeholder = action.split(None, 1)
                    name = names.get(path, path)
                    total = int(item.get(name, {"N": "0"})["N"]) + int(values[placeholder.strip()]["N"])
                    item[name] = {"N": str(total)}
                elif verb == "REMOVE":
                    item.pop(names.get(action, action), None)
                else:
                    raise NotImplementedError(f"update clause {verb}")
        self.tables[table][self._key(table, key)] = item
        return {"Attributes": item} if body.get("ReturnValues", "NONE") != "NONE" else {}

    @staticmethod
    def _operand(operand: str, item: Item, names: dict[str, str], values: Item) -> dict[str, Any]:
        match = _IF_NOT_EXISTS.fullmatch(operand)
        if match:
            current = item.get(names.get(match[1], match[1]))
            return current if current is not None else values[match[2]]
        if operand.startswith(":"):
            return values[operand]
        if operand in names:
            return item[names[operand]]
        raise NotImplementedError(f"update operand {operand!r}")

    def _op_TransactGetItems(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": [self._op_GetItem(entry["Get"]) for entry in body["TransactItems"]]}

    def _op_TransactWriteItems(self, body: dict[str, Any]) -> dict[str, Any]:
        for entry in body["TransactItems"]:
            for kind, request in entry.items():
                if kind == "Put":
                    self._op_PutItem(request)
                elif kind == "Update":
                    self._op_UpdateItem(request)
                elif kind == "Delete":
                    self._op_DeleteItem(request)
        return {}

    def _op_BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, list[Item]] = {}
        for table, request in body["RequestItems"].items():
            for key in request["Keys"]:
                item = self.tables[table].get(self._key(table, key))
                if item is not None:
                    found.setdefault(table, []).append(item)
        return {"Responses": found, "UnprocessedKeys": {}}


class FakeWeChat:
    """WeChat's server API, always answering success; counts calls per path."""

    def __init__(self, appid: str) -> None:
        self.appid = appid
        self.calls: Counter[str] = Counter()

    def answer(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """WeChat's JSON answer for a call to `path`."""
        self.calls[path] += 1
        if path == "/sns/jscode2session":
            name = params.get("js_code", "").split(".")[0]
            return {"openid": f"bench-{name}", "session_key": SESSION_KEY, "unionid": f"bench-union-{name}"}
        if path in ("/cgi-bin/stable_token", "/cgi-bin/token"):
            return {"access_token": "bench-wechat-access-token", "expires_in": 7200}
        if path == "/wxa/business/getuserphonenumber":
            return {
                "errcode": 0,
                "errmsg": "ok",
                "phone_info": {
                    "phoneNumber": "13800138000",
                    "purePhoneNumber": "13800138000",
                    "countryCode": "86",
                    "watermark": {"timestamp": 1700000000, "appid": self.appid},
                },
            }
        if path == "/wxa/msg_sec_check":
            return {"errcode": 0, "errmsg": "ok", "result": {"suggest": "pass", "label": 100}}
        return {"errcode": 0, "errmsg": "ok"}


def install_dynamodb(handlers_module: ModuleType, fake: FakeDynamoDB) -> None:
    """Answer every botocore session created from now on from `fake` (as moto does)."""
    handlers_module.BUILTIN_HANDLERS.append(("before-call", fake.count_call))
    handlers_module.BUILTIN_HANDLERS.append(("before-send", fake.before_send))


def install_wechat(httpx_module: ModuleType, fake: FakeWeChat) -> None:
    """Answer every httpx client's default transport from `fake` (an httpx.MockTransport)."""
    httpx = httpx_module

    def respond(request: Any) -> Any:
        return httpx.Response(200, json=fake.answer(request.url.path, dict(request.url.params)))

    mock = httpx.MockTransport(respond)

    def handle_request(self: Any, request: Any) -> Any:
        return mock.handle_request(request)

    async def handle_async_request(self: Any, request: Any) -> Any:
        return await mock.handle_async_request(request)

    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request
