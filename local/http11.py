"""`make dev`'s HTTP/1.1 protocol: uvicorn's h11 one, except that a request it cannot parse (bytes that
are not ASCII in the request line, a header line that is not HTTP) is answered 400 INVALID_REQUEST in
the envelope, like every other answer, instead of uvicorn's plain-text "Invalid HTTP request received."
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.api.edge import Malformed
from shared.api.envelope import error_body
from shared.errors import Reason


def envelope_400() -> bytes:
    """The body of the answer to a request that is not HTTP."""
    body = error_body(Reason.INVALID_REQUEST, Malformed.REQUEST.message)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class EnvelopeH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the envelope on its own 400 (it closes the connection, as uvicorn's)."""

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 refused: 400 INVALID_REQUEST in the envelope, then close."""
        body = envelope_400()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()
