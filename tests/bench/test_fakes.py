"""The benchmark's in-memory DynamoDB applies the requests PynamoDB really sends."""

from types import SimpleNamespace

from bench.fakes import FakeDynamoDB, FakeWeChat
from shared.models import SessionModel, UserModel

USERS = UserModel.Meta.table_name
SESSIONS = SessionModel.Meta.table_name


def fake_with(*users: UserModel) -> FakeDynamoDB:
    return FakeDynamoDB({USERS: "openid", SESSIONS: "sid"}, {USERS: [user.serialize() for user in users]})


def update(fake, openid, actions):
    table = UserModel._get_connection()
    request = table.get_operation_kwargs(openid, actions=actions, return_values="ALL_NEW")
    return fake._op_UpdateItem(request)["Attributes"]


def test_update_sets_keeps_existing_values_adds_and_removes():
    alice = UserModel("alice", id=7, nickname="old", created_at="first", unionid="u", recipe_count=1)
    fake = fake_with(alice)
    item = update(
        fake,
        "alice",
        [
            UserModel.nickname.set("new"),
            UserModel.created_at.set(UserModel.created_at | "second"),
            UserModel.bio.set(UserModel.bio | ""),
            UserModel.recipe_count.add(2),
            UserModel.unionid.remove(),
        ],
    )
    assert item["nickname"] == {"S": "new"}
    assert item["created_at"] == {"S": "first"}  # if_not_exists keeps what is there
    assert item["bio"] == {"S": ""}  # ... and fills what is not
    assert item["recipe_count"] == {"N": "3"}
    assert "unionid" not in item
    assert item["id"] == {"N": "7"}


def test_update_of_a_missing_item_creates_it_and_get_finds_it():
    fake = fake_with()
    update(fake, "bob", [UserModel.nickname.set("bob")])
    key = {"openid": {"S": "bob"}}
    assert fake._op_GetItem({"TableName": USERS, "Key": key})["Item"]["nickname"] == {"S": "bob"}
    missing = {"openid": {"S": "nobody"}}
    gets = [{"Get": {"TableName": USERS, "Key": key}}, {"Get": {"TableName": USERS, "Key": missing}}]
    both = fake._op_TransactGetItems({"TransactItems": gets})
    assert both["Responses"][0]["Item"]["openid"] == {"S": "bob"}
    assert both["Responses"][1] == {}


def test_an_unknown_operation_answers_a_validation_error():
    request = SimpleNamespace(url="https://dynamodb.us-east-1.amazonaws.com/", body=b"{}")
    response = fake_with().before_send(request, event_name="before-send.dynamodb.Scan")
    assert response.status_code == 400
    assert b"ValidationException" in response.content


def test_wechat_fake_names_users_like_the_simulator_and_counts_calls():
    wechat = FakeWeChat("wx-appid")
    answer = wechat.answer("/sns/jscode2session", {"js_code": "carol.17"})
    assert answer["openid"] == "bench-carol"
    wechat.answer("/wxa/checksession", {})
    assert wechat.calls == {"/sns/jscode2session": 1, "/wxa/checksession": 1}
