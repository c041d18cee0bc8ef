"""GET /__dev/stats: what the local storage holds, per user, for checks that nothing was lost or
duplicated (`make stress`). Local only: the dev server serves it; no deployed function does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.api.deps import StorageDep

STATS_PATH = "/__dev/stats"


def add_dev_stats(app: FastAPI) -> None:
    """Serve STATS_PATH on `app` (kept off the OpenAPI page)."""

    @app.get(STATS_PATH, include_in_schema=False)
    def dev_stats(store: StorageDep) -> dict[str, Any]:
        stored_users, stored_sessions = store.all_users_and_sessions()
        users: dict[str, dict[str, Any]] = {
            user.openid: {"id": user.id or None, "sessions": 0, "live": 0} for user in stored_users
        }
        orphans = 0
        for session in stored_sessions:
            entry = users.get(session.openid)
            if entry is None or entry["id"] != session.user_id:
                orphans += 1
                continue
            entry["sessions"] += 1
            entry["live"] += 0 if session.revoked else 1
        return {"users": users, "sessions": len(stored_sessions), "orphan_sessions": orphans}
