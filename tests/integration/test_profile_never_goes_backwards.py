"""What a profile write may never undo: a later `updated_at`, the counters, `id` and `created_at`."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from shared.clock import iso_ms
from shared.users import update_profile
from tests.conftest import bearer, dynamodb_only


def test_a_write_stamped_before_the_stored_updated_at_keeps_the_later_stamp(client, login, storage):
    login("stamp")
    user = storage.get_user("sim-stamp")
    later, earlier = 2_000_000_000.0, 1_900_000_000.0
    fresh = update_profile(storage, user, nickname=None, avatar=None, bio="first", now=later)
    assert fresh.updated_at == iso_ms(later)
    stale = update_profile(
        storage, storage.get_user("sim-stamp"), nickname="n2", avatar=None, bio="second", now=earlier
    )
    assert (stale.updated_at, stale.bio, stale.nickname) == (iso_ms(later), "second", "n2")
    assert storage.get_user("sim-stamp").updated_at == iso_ms(later)


@dynamodb_only  # the counters have no writer in the domain: they are seeded with a raw DynamoDB write
def test_counters_id_and_created_at_survive_concurrent_logins_and_edits(client, login, storage, settings):
    first = login("busy")
    counters = {"recipe_count": 7, "follower_count": 3, "following_count": 2, "favorite_count": 9}
    storage.client.update_item(
        TableName=settings.users_table,
        Key={"openid": {"S": "sim-busy"}},
        UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in counters),
        ExpressionAttributeValues={f":{name}": {"N": str(value)} for name, value in counters.items()},
    )
    codes = itertools.count(1000)

    def work(i: int) -> int:
        if i % 2:
            response = client.post("/api/v1/auth/wx-login", json={"code": f"busy.{next(codes)}"})
        else:
            response = client.patch(
                "/api/v1/user/profile", headers=bearer(first["access_token"]), json={"bio": f"b{i}"}
            )
        return int(response.status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert set(pool.map(work, range(36))) == {200}
    profile = client.get("/api/v1/user/profile", headers=bearer(first["access_token"])).json()["data"]
    assert {k: profile[k] for k in counters} == counters
    assert (profile["id"], profile["created_at"]) == (first["user"]["id"], first["user"]["created_at"])
