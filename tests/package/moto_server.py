"""moto's server mode that also names every IAM denial: `python -m tests.package.moto_server PORT`.

The functions under test turn a refused DynamoDB or S3 call into STORAGE_UNAVAILABLE, as they must;
this server prints `DENIED <user> <action>` on stderr for each refusal, so that a role missing an
action fails the smoke test with the action's name (tests/package/conftest.py reads these lines).
S3's AccessDenied names neither (as on AWS): the user is found by the request's access key, the
action by its method (object requests: PUT s3:PutObject, DELETE s3:DeleteObject, GET s3:GetObject).
It binds 127.0.0.1 only, prints its port once it listens, and keeps everything in memory.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

DENIAL = re.compile(rb"User: (\S+) is not authorized to perform: ([\w:-]+)")
S3_DENIAL = b"<Code>AccessDenied</Code>"
S3_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/s3/aws4_request")
S3_OBJECT_ACTIONS = {"PUT": "PutObject", "POST": "PutObject", "DELETE": "DeleteObject", "GET": "GetObject"}


def s3_denial(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(user ARN, action) of a refused S3 request signed with an IAM user's key."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iam.access_control import create_access_key

    match = S3_CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return None
    try:
        user = create_access_key(DEFAULT_ACCOUNT_ID, "aws", match.group(1), {}).arn
    except Exception:  # an unknown key: moto refuses it with another error anyway
        return None
    method = environ.get("REQUEST_METHOD", "")
    on_object = len([part for part in environ.get("PATH_INFO", "").split("/") if part]) >= 2
    action = S3_OBJECT_ACTIONS.get(method) if on_object else None
    return user, f"s3:{action or method + ' ' + environ.get('PATH_INFO', '')}"


def naming_denials(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        statuses: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        chunks = list(app(environ, capture))
        if statuses and statuses[0].startswith("403"):
            body = b"".join(chunks)
            denials = [(user.decode(), action.decode()) for user, action in DENIAL.findall(body)]
            if not denials and S3_DENIAL in body:
                denials = [denial for denial in [s3_denial(environ)] if denial is not None]
            for user, action in denials:
                print(f"DENIED {user} {action}", file=sys.stderr, flush=True)
        return chunks

    return wrapped


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    app = naming_denials(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
