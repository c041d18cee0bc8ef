"""The benchmark's in-memory DynamoDB applies the requests the DynamoDB adapter really sends."""

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from bench.fakes import FakeDynamoDB, FakeWeChat
from shared.storage.base import LoginUpsert, NewSession, ProfileChange
from shared.storage.dynamodb import DynamoDBStorage


@pytest.fixture
def adapter(settings) -> Iterator[tuple[DynamoDBStorage, FakeDynamoDB]]:
    """The adapter with the fake as its transport (moto is not involved)."""
    store = DynamoDBStorage(settings)
    fake = FakeDynamoDB(store.key_names(), {})
    events = store.client.meta.events
    events.register_first("before-send.dynamodb", fake.before_send)
    yield store, fake
    events.unregister("before-send.dynamodb", fake.before_send)


def login(store, openid, nickname=None, stamp="2026-01-01T00:00:00.000Z"):
    change = LoginUpsert(openid, "v1:enc", None, nickname, None, stamp, 0.0, None)
    return store.upsert_user_on_login(change)


def test_a_login_upsert_keeps_existing_values_fills_missing_ones_and_sets_an_id_once(adapter):
    store, fake = adapter
    first, is_new = login(store, "alice", nickname="old", stamp="first")
    assert is_new and first.id == 1 and first.bio == "" and first.created_at == "first"
    second, is_new = login(store, "bob")  # the id now rides in the upsert: if_not_exists
    assert is_new and second.id == 2
    again, is_new = login(store, "alice", stamp="second")
    assert not is_new and again.id == 1 and again.nickname == "old"  # kept what is there
    assert (again.created_at, again.updated_at) == ("first", "second")
    changed = store.update_profile(
        "alice", ProfileChange(nickname="new", avatar=None, bio="b", stamp="third")
    )
    assert (changed.nickname, changed.bio, changed.id) == ("new", "b", 1)
    counter = fake.tables[store._t.users.Meta.table_name]['{"S": "#counter#user_id"}']
    assert counter["value"] == {"N": "100"}  # one block of ids reserved


def test_sessions_are_stored_and_read_back_with_their_user_in_one_transaction(adapter):
    store, fake = adapter
    user, _ = login(store, "carol")
    store.start_session(NewSession("sid-1", user.id, "carol", "hash", "jti-1", 5, 4_000_000_000))
    session, read = store.get_session_and_user("sid-1", "carol")
    assert (session.refresh_hash, session.access_jti, read.id) == ("hash", "jti-1", user.id)
    assert store.get_session_and_user("sid-2", "nobody") == (None, None)
    assert fake.calls == {}  # counted by the child's before-call hook only


def test_an_unknown_operation_answers_a_validation_error():
    request = SimpleNamespace(url="https://dynamodb.us-east-1.amazonaws.com/", body=b"{}")
    response = FakeDynamoDB({}, {}).before_send(request, event_name="before-send.dynamodb.Scan")
    assert response.status_code == 400
    assert b"ValidationException" in response.content


def test_wechat_fake_names_users_like_the_simulator_and_counts_calls():
    wechat = FakeWeChat("wx-appid")
    answer = wechat.answer("/sns/jscode2session", {"js_code": "carol.17"})
    assert answer["openid"] == "bench-carol"
    wechat.answer("/wxa/checksession", {})
    assert wechat.calls == {"/sns/jscode2session": 1, "/wxa/checksession": 1}
