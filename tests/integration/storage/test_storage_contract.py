"""The guarantees of shared/storage/base.py, checked on every backend (parametrised, never copied)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

from shared.errors import RateLimited, StorageUnavailable
from shared.storage.base import (
    CODE_CLAIMED,
    CachedWeChatToken,
    LoginRecord,
    LoginUpsert,
    NewSession,
    ProfileChange,
    Rate,
    Renewal,
    Rotation,
    Storage,
)
from tests.conftest import Clock

NOW = 1_800_000_000.0
T = TypeVar("T")


def stamp(seconds: float) -> str:
    from shared.clock import iso_ms

    return iso_ms(seconds)


def login(
    openid: str = "o-alice",
    *,
    now: float = NOW,
    rate: Rate | None = None,
    nickname: str | None = None,
    avatar: str | None = None,
    unionid: str | None = None,
    key: str = "enc-key-1",
) -> LoginUpsert:
    return LoginUpsert(
        openid=openid,
        session_key_enc=key,
        unionid=unionid,
        nickname=nickname,
        avatar=avatar,
        stamp=stamp(now),
        now=now,
        rate=rate,
    )


def new_session(
    sid: str = "sid-1", *, user_id: int = 1, openid: str = "o-alice", expires_at: int = 0
) -> NewSession:
    return NewSession(
        sid=sid,
        user_id=user_id,
        openid=openid,
        refresh_hash="hash-0",
        access_jti="jti-0",
        created_at_us=int(NOW * 1_000_000),
        expires_at=expires_at or int(NOW) + 3600,
    )


def rotation(
    presented: str = "hash-0", successor: str = "hash-1", *, now: float = NOW + 1, jti: str = "jti-1"
) -> Rotation:
    return Rotation("sid-1", presented, successor, jti, now, int(now) + 7200)


def all_at_once(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run `work(i)` in `count` threads released together; answers each result or exception."""
    barrier = threading.Barrier(count)

    def one(index: int) -> T | BaseException:
        barrier.wait()
        try:
            return work(index)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def clock_at(frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """shared.clock.now() pinned to NOW (+ what the test advances): reads that check expiry use it."""
    from shared import clock

    monkeypatch.setattr(clock, "now", lambda: NOW + frozen_clock.offset)
    return frozen_clock


# --- users -------------------------------------------------------------------------------------


def test_first_login_creates_the_user_with_a_new_id(storage: Storage) -> None:
    user, created = storage.upsert_user_on_login(
        login(nickname="Alice", avatar="https://a.example/1.png", unionid="u-1")
    )
    assert created
    assert user.id > 0
    assert (user.openid, user.unionid, user.nickname, user.avatar) == (
        "o-alice",
        "u-1",
        "Alice",
        "https://a.example/1.png",
    )
    assert user.session_key_enc == "enc-key-1"
    assert user.created_at == user.updated_at == stamp(NOW)
    assert (user.bio, user.phone_masked, user.recipe_count, user.sessions_revoked_at) == ("", "", 0, 0)
    assert storage.get_user("o-alice") == user
    other, other_created = storage.upsert_user_on_login(login("o-bob"))
    assert other_created and other.id != user.id


def test_a_known_user_keeps_id_and_created_at_and_only_non_empty_profile_fields(storage: Storage) -> None:
    first, _ = storage.upsert_user_on_login(login(nickname="Alice", avatar="https://a.example/1.png"))
    again, created = storage.upsert_user_on_login(
        login(now=NOW + 5, nickname="", avatar=None, unionid="u-9", key="enc-key-2")
    )
    assert not created
    assert (again.id, again.created_at) == (first.id, first.created_at)
    assert again.updated_at == stamp(NOW + 5)
    assert (again.nickname, again.avatar) == ("Alice", "https://a.example/1.png")
    assert (again.unionid, again.session_key_enc) == ("u-9", "enc-key-2")
    third, _ = storage.upsert_user_on_login(login(now=NOW + 6, nickname="Al", unionid=None, key="enc-key-3"))
    assert (third.nickname, third.unionid, third.session_key_enc) == ("Al", "u-9", "enc-key-3")
    assert storage.get_user("o-alice") == third


def test_the_login_bucket_allows_a_burst_then_refuses_writing_nothing_then_refills(storage: Storage) -> None:
    rate = Rate(3, 60)  # one token every 20 s, bursts of 3
    for i in range(3):
        storage.upsert_user_on_login(login(now=NOW, rate=rate, key=f"enc-{i}"))
    before = storage.get_user("o-alice")
    with pytest.raises(RateLimited) as refused:
        storage.upsert_user_on_login(login(now=NOW + 1, rate=rate, nickname="Mallory", key="enc-refused"))
    assert refused.value.headers["Retry-After"] == "20"
    assert storage.get_user("o-alice") == before  # nothing of the refused login was written
    with pytest.raises(RateLimited):
        storage.take_login_quota("o-alice", rate, NOW + 1)
    # One interval later, one more token (and only one).
    user, created = storage.upsert_user_on_login(login(now=NOW + 20, rate=rate, key="enc-refilled"))
    assert not created and user.session_key_enc == "enc-refilled"
    with pytest.raises(RateLimited):
        storage.upsert_user_on_login(login(now=NOW + 20, rate=rate))
    # A quiet minute refills the whole burst.
    for _ in range(3):
        assert storage.take_login_quota("o-alice", rate, NOW + 90) is not None
    with pytest.raises(RateLimited):
        storage.take_login_quota("o-alice", rate, NOW + 90)


def test_take_login_quota_answers_the_user_or_none(storage: Storage) -> None:
    assert storage.take_login_quota("o-nobody", Rate(3, 60), NOW) is None
    assert storage.take_login_quota("o-nobody", None, NOW) is None
    user, _ = storage.upsert_user_on_login(login())
    assert storage.take_login_quota("o-alice", None, NOW) == user
    assert storage.take_login_quota("o-alice", Rate(3, 60), NOW) == user


def test_fifty_concurrent_first_logins_make_one_user_and_exactly_one_created(
    storage: Storage, sibling: Callable[[], Storage]
) -> None:
    instances = [sibling() for _ in range(50)]
    for instance in instances:  # each connected before the race, as a warm function instance is
        assert instance.get_user("o-alice") is None
    results = all_at_once(50, lambda i: instances[i].upsert_user_on_login(login(key=f"enc-{i}")))
    answers = [result for result in results if not isinstance(result, BaseException)]
    assert answers == results, [r for r in results if isinstance(r, BaseException)]
    assert len({user.id for user, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    stored = storage.get_user("o-alice")
    assert stored is not None and stored.id == answers[0][0].id


def test_update_profile_never_moves_updated_at_back_and_loses_no_field(storage: Storage) -> None:
    assert storage.update_profile("o-nobody", ProfileChange("x", None, None, stamp(NOW))) is None
    storage.upsert_user_on_login(login(nickname="Alice"))
    later = storage.update_profile("o-alice", ProfileChange(None, None, "bio one", stamp(NOW + 10)))
    assert later is not None and (later.nickname, later.bio, later.updated_at) == (
        "Alice",
        "bio one",
        stamp(NOW + 10),
    )
    # A write stamped earlier that lands later still saves its field, but keeps the later stamp.
    earlier = storage.update_profile("o-alice", ProfileChange("Ally", None, None, stamp(NOW + 5)))
    assert earlier is not None
    assert (earlier.nickname, earlier.bio, earlier.updated_at) == ("Ally", "bio one", stamp(NOW + 10))
    assert storage.get_user("o-alice") == earlier


def test_concurrent_profile_updates_of_different_fields_lose_none(
    storage: Storage, sibling: Callable[[], Storage]
) -> None:
    storage.upsert_user_on_login(login())
    changes = [
        ProfileChange("Nick", None, None, stamp(NOW + 1)),
        ProfileChange(None, "https://a.example/2.png", None, stamp(NOW + 2)),
        ProfileChange(None, None, "the bio", stamp(NOW + 3)),
    ] * 4
    instances = [sibling() for _ in changes]
    results = all_at_once(len(changes), lambda i: instances[i].update_profile("o-alice", changes[i]))
    assert all(result is not None and not isinstance(result, BaseException) for result in results)
    user = storage.get_user("o-alice")
    assert user is not None
    assert (user.nickname, user.avatar, user.bio, user.updated_at) == (
        "Nick",
        "https://a.example/2.png",
        "the bio",
        stamp(NOW + 3),
    )


def test_bind_phone_stores_ciphertext_and_mask(storage: Storage) -> None:
    assert storage.bind_phone("o-nobody", phone_enc="c", phone_masked="m", stamp=stamp(NOW)) is None
    storage.upsert_user_on_login(login())
    user = storage.bind_phone(
        "o-alice", phone_enc="v1:cipher", phone_masked="138****0000", stamp=stamp(NOW + 1)
    )
    assert user is not None and (user.phone_enc, user.phone_masked) == ("v1:cipher", "138****0000")
    assert storage.get_user("o-alice") == user


def test_set_avatar_if_writes_only_over_the_expected_key(storage: Storage) -> None:
    storage.upsert_user_on_login(login())
    assert storage.set_avatar_if(
        "o-alice", expected_key=None, key="k1", url="https://c/k1", stamp=stamp(NOW + 1)
    )
    assert not storage.set_avatar_if(
        "o-alice", expected_key=None, key="k2", url="https://c/k2", stamp=stamp(NOW + 2)
    )
    assert not storage.set_avatar_if(
        "o-alice", expected_key="k0", key="k2", url="https://c/k2", stamp=stamp(NOW + 2)
    )
    user = storage.get_user("o-alice")
    assert user is not None and (user.avatar_key, user.avatar, user.updated_at) == (
        "k1",
        "https://c/k1",
        stamp(NOW + 1),
    )
    assert storage.set_avatar_if(
        "o-alice", expected_key="k1", key="k2", url="https://c/k2", stamp=stamp(NOW + 3)
    )
    assert not storage.set_avatar_if(
        "o-nobody", expected_key=None, key="k", url="https://c/k", stamp=stamp(NOW)
    )


def test_revoke_sessions_before_only_moves_forward(storage: Storage) -> None:
    storage.upsert_user_on_login(login())
    storage.revoke_sessions_before("o-alice", 2_000)
    storage.revoke_sessions_before("o-alice", 1_000)
    user = storage.get_user("o-alice")
    assert user is not None and user.sessions_revoked_at == 2_000
    storage.revoke_sessions_before("o-nobody", 5)  # no such user: nothing, no error
    assert storage.get_user("o-nobody") is None


# --- sessions ----------------------------------------------------------------------------------


def test_start_session_with_its_replay_record_in_one_write(storage: Storage, clock_at: Clock) -> None:
    record = LoginRecord("k" * 64, "o-alice", True, int(NOW) + 300)
    storage.start_session(new_session(), replay=record)
    session = storage.get_session("sid-1")
    assert session is not None
    assert (session.user_id, session.openid, session.refresh_hash, session.access_jti) == (
        1,
        "o-alice",
        "hash-0",
        "jti-0",
    )
    assert (session.generation, session.revoked, session.prev_refresh_hash, session.prev_access_jti) == (
        0,
        False,
        None,
        None,
    )
    assert storage.claim_login_code("k" * 64, now=NOW, claim_until=int(NOW) + 10) == record


def test_a_failed_start_session_writes_neither_session_nor_replay(storage: Storage, clock_at: Clock) -> None:
    storage.start_session(new_session())
    with pytest.raises(StorageUnavailable):
        storage.start_session(
            new_session(user_id=2, openid="o-bob"),
            replay=LoginRecord("r" * 64, "o-bob", False, int(NOW) + 300),
        )
    session = storage.get_session("sid-1")
    assert session is not None and session.user_id == 1
    assert storage.claim_login_code("r" * 64, now=NOW, claim_until=int(NOW) + 10) is None  # no record: free


def test_sessions_past_expiry_read_as_absent(storage: Storage, clock_at: Clock) -> None:
    storage.upsert_user_on_login(login())
    storage.start_session(new_session(expires_at=int(NOW) + 60))
    session, user = storage.get_session_and_user("sid-1", "o-alice")
    assert session is not None and user is not None and user.openid == "o-alice"
    clock_at.advance(60)
    assert storage.get_session("sid-1") is None
    session, user = storage.get_session_and_user("sid-1", "o-alice")
    assert session is None and user is not None
    assert storage.get_session_and_user("sid-x", "o-nobody") == (None, None)
    assert storage.rotate_refresh_if_current(rotation(now=NOW + 60)) is None


def test_rotation_keeps_the_previous_hash_and_access_jti_for_the_grace_window(
    storage: Storage, clock_at: Clock
) -> None:
    storage.start_session(new_session())
    rotated = storage.rotate_refresh_if_current(rotation())
    assert rotated is not None
    assert (rotated.refresh_hash, rotated.prev_refresh_hash, rotated.generation) == ("hash-1", "hash-0", 1)
    assert (rotated.access_jti, rotated.prev_access_jti) == ("jti-1", "jti-0")
    assert rotated.rotated_at == rotated.access_renewed_at == NOW + 1
    assert rotated.expires_at == int(NOW + 1) + 7200
    assert storage.get_session("sid-1") == rotated
    # The old hash is no longer current: nothing written.
    assert storage.rotate_refresh_if_current(rotation("hash-0", "hash-x", now=NOW + 2)) is None
    assert storage.get_session("sid-1") == rotated


def test_twenty_concurrent_rotations_of_one_hash_have_one_winner(
    storage: Storage, sibling: Callable[[], Storage], clock_at: Clock
) -> None:
    storage.start_session(new_session())
    instances = [sibling() for _ in range(20)]
    for instance in instances:
        assert instance.get_session("sid-1") is not None
    results = all_at_once(
        20, lambda i: instances[i].rotate_refresh_if_current(rotation(successor=f"next-{i}", jti=f"jti-{i}"))
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = storage.get_session("sid-1")
    assert stored == winners[0] and stored is not None and stored.generation == 1


def test_logout_racing_rotation_leaves_the_session_revoked(
    storage: Storage, sibling: Callable[[], Storage], clock_at: Clock
) -> None:
    for round_ in range(5):
        sid = f"sid-race-{round_}"
        storage.start_session(NewSession(sid, 1, "o-alice", "hash-0", "jti-0", 1, int(NOW) + 3600))
        instances = [sibling() for _ in range(4)]

        def work(i: int, sid: str = sid, instances: list[Storage] = instances) -> Any:
            if i == 0:
                return instances[i].revoke_session(sid, 1)
            return instances[i].rotate_refresh_if_current(
                Rotation(sid, "hash-0", f"h-{i}", "j", NOW + 1, int(NOW) + 7200)
            )

        results = all_at_once(4, work)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert len([r for r in results[1:] if r is not None]) <= 1
        stored = storage.get_session(sid)
        assert stored is not None and stored.revoked
        assert (
            storage.rotate_refresh_if_current(
                Rotation(sid, stored.refresh_hash, "h-next", "j", NOW + 2, int(NOW) + 7200)
            )
            is None
        )


def test_revoke_session_only_for_its_user(storage: Storage, clock_at: Clock) -> None:
    storage.start_session(new_session())
    storage.revoke_session("sid-1", 2)
    session = storage.get_session("sid-1")
    assert session is not None and not session.revoked
    storage.revoke_session("sid-1", 1)
    session = storage.get_session("sid-1")
    assert session is not None and session.revoked
    storage.revoke_session("sid-absent", 1)  # as good as revoked: no error
    assert storage.renew_access_if_current(Renewal("sid-1", "jti-0", "jti-new", NOW + 1)) is None


def test_renew_access_if_current(storage: Storage, clock_at: Clock) -> None:
    storage.start_session(new_session())
    assert storage.renew_access_if_current(Renewal("sid-1", "jti-other", "jti-1", NOW + 1)) is None
    renewed = storage.renew_access_if_current(Renewal("sid-1", "jti-0", "jti-1", NOW + 1))
    assert renewed is not None
    assert (renewed.access_jti, renewed.prev_access_jti, renewed.access_renewed_at) == (
        "jti-1",
        "jti-0",
        NOW + 1,
    )
    assert (renewed.refresh_hash, renewed.generation) == ("hash-0", 0)
    assert storage.renew_access_if_current(Renewal("sid-1", "jti-0", "jti-2", NOW + 2)) is None
    assert storage.get_session("sid-1") == renewed
    # Past its expiry a session renews nothing.
    assert storage.renew_access_if_current(Renewal("sid-1", "jti-1", "jti-3", NOW + 3600)) is None


# --- login codes -------------------------------------------------------------------------------


def test_claim_release_remember(storage: Storage) -> None:
    key = "c" * 64
    assert storage.claim_login_code(key, now=NOW, claim_until=int(NOW) + 10) is None
    assert storage.claim_login_code(key, now=NOW + 1, claim_until=int(NOW) + 11) is CODE_CLAIMED
    storage.release_login_code(key)
    assert storage.claim_login_code(key, now=NOW + 2, claim_until=int(NOW) + 12) is None
    record = LoginRecord(key, "o-alice", False, int(NOW) + 300)
    storage.remember_login(record)
    storage.remember_login(LoginRecord(key, "o-mallory", True, int(NOW) + 400))  # the first answer wins
    storage.release_login_code(key)  # a record is not a claim: stays
    assert storage.claim_login_code(key, now=NOW + 3, claim_until=int(NOW) + 13) == record


def test_lapsed_claims_and_expired_records_are_free(storage: Storage) -> None:
    assert storage.claim_login_code("a" * 64, now=NOW, claim_until=int(NOW) + 10) is None
    assert storage.claim_login_code("a" * 64, now=NOW + 11, claim_until=int(NOW) + 21) is None
    assert storage.claim_login_code("a" * 64, now=NOW + 12, claim_until=int(NOW) + 22) is CODE_CLAIMED
    storage.remember_login(LoginRecord("b" * 64, "o-alice", True, int(NOW) + 300))
    assert storage.claim_login_code("b" * 64, now=NOW + 301, claim_until=int(NOW) + 311) is None
    assert storage.claim_login_code("b" * 64, now=NOW + 302, claim_until=int(NOW) + 312) is CODE_CLAIMED


def test_remember_without_a_claim_stores_the_record(storage: Storage) -> None:
    record = LoginRecord("d" * 64, "o-alice", True, int(NOW) + 300)
    storage.remember_login(record)
    assert storage.claim_login_code("d" * 64, now=NOW, claim_until=int(NOW) + 10) == record


# --- rate limits -------------------------------------------------------------------------------


def test_count_rejected_code_is_atomic(storage: Storage, sibling: Callable[[], Storage]) -> None:
    assert [storage.count_rejected_code("ip#10.0.0.1#1", window_ends=int(NOW) + 60) for _ in range(3)] == [
        1,
        2,
        3,
    ]
    instances = [sibling() for _ in range(20)]
    for instance in instances:
        assert instance.read_wechat_token("wx-none") is None
    results = all_at_once(
        20, lambda i: instances[i].count_rejected_code("ip#10.0.0.2#1", window_ends=int(NOW) + 60)
    )
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 21))


# --- WeChat's server access token ----------------------------------------------------------------


def test_wechat_token_save_if_invalidate(storage: Storage) -> None:
    assert storage.read_wechat_token("wx-app") is None
    first = CachedWeChatToken("v1:t1", 1, int(NOW) + 7200)
    assert storage.save_wechat_token_if("wx-app", first, expected_version=0)
    assert not storage.save_wechat_token_if(
        "wx-app", CachedWeChatToken("v1:lost", 1, int(NOW)), expected_version=0
    )
    assert storage.read_wechat_token("wx-app") == first
    second = CachedWeChatToken("v1:t2", 2, int(NOW) + 7300)
    assert storage.save_wechat_token_if("wx-app", second, expected_version=1)
    assert not storage.invalidate_wechat_token("wx-app", 1)  # refreshed since
    assert storage.invalidate_wechat_token("wx-app", 2)
    assert not storage.invalidate_wechat_token("wx-app", 2)  # already invalidated
    # An invalidated token is still answered (the next refresh compares against it), expired or not.
    assert storage.read_wechat_token("wx-app") == CachedWeChatToken("v1:t2", 2, 0)
    assert storage.save_wechat_token_if("wx-app", CachedWeChatToken("v1:t3", 3, int(NOW)), expected_version=2)
    assert storage.read_wechat_token("wx-app") == CachedWeChatToken("v1:t3", 3, int(NOW))
    assert storage.read_wechat_token("wx-other") is None


def test_leases(storage: Storage) -> None:
    assert storage.acquire_lease("wxtoken#wx-app", holder="a", now=NOW, until=int(NOW) + 10)
    assert not storage.acquire_lease("wxtoken#wx-app", holder="b", now=NOW + 1, until=int(NOW) + 11)
    storage.release_lease("wxtoken#wx-app", holder="b")  # not b's: stays
    assert not storage.acquire_lease("wxtoken#wx-app", holder="b", now=NOW + 2, until=int(NOW) + 12)
    storage.release_lease("wxtoken#wx-app", holder="a")
    assert storage.acquire_lease("wxtoken#wx-app", holder="b", now=NOW + 3, until=int(NOW) + 13)
    # A lease lapses by itself.
    assert storage.acquire_lease("wxtoken#wx-app", holder="c", now=NOW + 14, until=int(NOW) + 24)
    assert storage.acquire_lease("wxtoken#wx-other", holder="a", now=NOW + 14, until=int(NOW) + 24)


# --- round trips -------------------------------------------------------------------------------


def test_each_operation_is_one_round_trip_on_its_common_path(
    storage: Storage, round_trips: Callable[[], AbstractContextManager[Counter[str]]], clock_at: Clock
) -> None:
    rate = Rate(10, 60)
    storage.upsert_user_on_login(login(rate=rate))
    storage.start_session(new_session())
    record = LoginRecord("e" * 64, "o-alice", False, int(NOW) + 300)
    operations: dict[str, Callable[[], object]] = {
        "upsert_user_on_login": lambda: storage.upsert_user_on_login(login(now=NOW + 100, rate=rate)),
        "take_login_quota": lambda: storage.take_login_quota("o-alice", rate, NOW + 200),
        "get_user": lambda: storage.get_user("o-alice"),
        "get_session_and_user": lambda: storage.get_session_and_user("sid-1", "o-alice"),
        "update_profile": lambda: storage.update_profile(
            "o-alice", ProfileChange("N", None, "b", stamp(NOW + 300))
        ),
        "bind_phone": lambda: storage.bind_phone(
            "o-alice", phone_enc="c", phone_masked="m", stamp=stamp(NOW + 301)
        ),
        "set_avatar_if": lambda: storage.set_avatar_if(
            "o-alice", expected_key=None, key="k", url="https://c/k", stamp=stamp(NOW + 302)
        ),
        "revoke_sessions_before": lambda: storage.revoke_sessions_before("o-alice", 5),
        "start_session": lambda: storage.start_session(new_session("sid-2"), replay=record),
        "get_session": lambda: storage.get_session("sid-1"),
        "rotate_refresh_if_current": lambda: storage.rotate_refresh_if_current(rotation()),
        "renew_access_if_current": lambda: storage.renew_access_if_current(
            Renewal("sid-1", "jti-1", "jti-2", NOW + 2)
        ),
        "claim_login_code": lambda: storage.claim_login_code("f" * 64, now=NOW, claim_until=int(NOW) + 10),
        "remember_login": lambda: storage.remember_login(
            LoginRecord("f" * 64, "o-alice", False, int(NOW) + 300)
        ),
        "release_login_code": lambda: storage.release_login_code("g" * 64),
        "count_rejected_code": lambda: storage.count_rejected_code("ip#1.2.3.4#1", window_ends=int(NOW) + 60),
        "save_wechat_token_if": lambda: storage.save_wechat_token_if(
            "wx-app", CachedWeChatToken("v1:t", 1, int(NOW) + 7200), expected_version=0
        ),
        "read_wechat_token": lambda: storage.read_wechat_token("wx-app"),
        "invalidate_wechat_token": lambda: storage.invalidate_wechat_token("wx-app", 1),
        "acquire_lease": lambda: storage.acquire_lease(
            "wxtoken#wx-app", holder="a", now=NOW, until=int(NOW) + 10
        ),
        "release_lease": lambda: storage.release_lease("wxtoken#wx-app", holder="a"),
        "revoke_session": lambda: storage.revoke_session("sid-2", 1),
    }
    counts: dict[str, int] = {}
    for name, operation in operations.items():
        with round_trips() as trips:
            answer = operation()
        assert answer not in (None, False) or name.startswith(
            ("revoke", "release", "remember", "start", "claim")
        )
        counts[name] = sum(trips.values())
    assert counts == dict.fromkeys(operations, 1)
