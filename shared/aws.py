"""The process's one botocore session: every AWS client (DynamoDB, S3, SSM) is created from it.

A session builds the credential chain, the config and the data loaders once and keeps what it has
loaded (endpoint rules, partitions); a client created on a session of its own pays for all of it
again (the avatar function's S3 client took 69 ms on its own session, ~28 ms on the shared one). Not
in the DynamoDB adapter: settings read SSM with a client from here, before any adapter is built.

Sessions are not thread-safe (FastAPI runs sync dependencies in worker threads), so clients are
created while holding the session; the clients themselves are thread-safe.

No DynamoDB attempt, a retry included, starts after the request's deadline (shared/deadline.py): it
answers STORAGE_UNAVAILABLE at once. An attempt already in flight ends within its own timeouts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.session

from shared import deadline
from shared.errors import StorageUnavailable

_lock = threading.RLock()
_session: botocore.session.Session | None = None


@contextmanager
def botocore_session() -> Iterator[botocore.session.Session]:
    """The shared session, held for the block: create clients from it inside a `with`."""
    global _session
    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
            # On the session, before any client is made from it: a client copies the session's handlers.
            _session.register("before-send.dynamodb", _refuse_after_deadline)
        yield _session


def _refuse_after_deadline(**_: object) -> None:
    """Raised here, botocore neither sends the attempt nor retries it; PynamoDB passes it through."""
    if deadline.current().expired:
        raise StorageUnavailable()
