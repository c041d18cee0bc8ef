"""GET /__dev/stats: what the local DynamoDB holds, per user, for checks that nothing was lost or
duplicated (`make stress`). Local only: the dev server serves it; no deployed function does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

STATS_PATH = "/__dev/stats"


def add_dev_stats(app: FastAPI) -> None:
    """Serve STATS_PATH on `app` (kept off the OpenAPI page)."""
    from shared.models import USER_ID_COUNTER_KEY, CounterModel, SessionModel, UserModel

    @app.get(STATS_PATH, include_in_schema=False)
    def dev_stats() -> dict[str, Any]:
        users: dict[str, dict[str, Any]] = {}
        for user in UserModel.scan(consistent_read=True):
            if user.openid != USER_ID_COUNTER_KEY:
                user_id = None if user.id is None else int(user.id)
                users[user.openid] = {"id": user_id, "sessions": 0, "live": 0}
        orphans = 0
        sessions = 0
        for session in SessionModel.scan(consistent_read=True):
            sessions += 1
            entry = users.get(session.openid)
            if entry is None or entry["id"] != int(session.user_id):
                orphans += 1
                continue
            entry["sessions"] += 1
            entry["live"] += 0 if session.revoked else 1
        try:
            counter = int(CounterModel.get(USER_ID_COUNTER_KEY, consistent_read=True).value or 0)
        except CounterModel.DoesNotExist:
            counter = 0
        return {"users": users, "sessions": sessions, "orphan_sessions": orphans, "user_id_counter": counter}
