"""The cleanup function: a timer trigger (SCF), not HTTP. Deletes expired rows in bounded batches
(MySQL; on DynamoDB the TTL does it and this has nothing to do) and answers what it deleted."""

from __future__ import annotations

from typing import Any

from shared import clock
from shared.settings import get_settings
from shared.storage.base import Storage
from shared.storage.factory import open_storage

# Well inside the function's timeout (give it 60 s): what is left waits for the next tick.
BUDGET_S = 30.0
_storage: Storage | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, object]:
    """One cleanup run; the event (SCF's {"Type": "Timer", ...}) carries nothing it needs."""
    global _storage
    if _storage is None:
        _storage = open_storage(get_settings())
    purge = _storage.purge_expired(now=clock.now(), budget_s=BUDGET_S)
    return {"deleted": purge.deleted, "complete": purge.complete}
