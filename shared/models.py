"""PynamoDB models of the service's DynamoDB tables, and the translation of storage failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from shared.aws import botocore_session
from shared.errors import StorageUnavailable
from shared.settings import Settings, get_settings

USER_ID_COUNTER_KEY = "#counter#user_id"


def _meta(settings: Settings, table: str) -> Any:
    class Meta:
        table_name = table
        # Bounded so a failing DynamoDB answers STORAGE_UNAVAILABLE well within 10 s
        # (the SDK defaults are 15 s connect and 30 s read).
        connect_timeout_seconds = 1
        read_timeout_seconds = 2
        max_retry_attempts = 2
        region = settings.aws_region
        host = settings.dynamodb_endpoint
        billing_mode = "PAY_PER_REQUEST"

    return Meta


_settings = get_settings()

# One botocore client per (region, endpoint) for every model. PynamoDB gives each model class its own
# client on its own botocore session, and each costs ~40 ms of cold start (the service model and
# endpoint rules loaded again): a login touching three tables paid it three times. The client is
# created on the process's shared session (shared/aws.py), which the S3 and SSM clients use too.
_clients: dict[tuple[str, str | None], Any] = {}


class _SharedClientModel(Model):
    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()
        connection = table.connection
        if connection._client is None:
            key = (connection.region, connection.host)
            with botocore_session() as session:
                if key not in _clients:
                    # PynamoDB creates its client (its config, its hooks) on this thread's session.
                    connection._local.session = session
                    _clients[key] = connection.client
            connection._client = _clients[key]
        return table


class UserModel(_SharedClientModel):
    """A mini-program user, keyed by openid. `session_key_enc` is AES-GCM ciphertext, never plaintext."""

    Meta = _meta(_settings, _settings.users_table)

    openid = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(null=True)
    unionid = UnicodeAttribute(null=True)
    nickname = UnicodeAttribute(default="")
    avatar = UnicodeAttribute(default="")
    # The key of the avatar object we store (set only by an upload): the one object an upload may delete.
    avatar_key = UnicodeAttribute(null=True)
    bio = UnicodeAttribute(default="")
    session_key_enc = UnicodeAttribute(null=True)
    # The bound phone number: AES-GCM ciphertext of its JSON (shared/phone.py), and the masked form shown.
    phone_enc = UnicodeAttribute(null=True)
    phone_masked = UnicodeAttribute(null=True)
    recipe_count = NumberAttribute(default=0)
    follower_count = NumberAttribute(default=0)
    following_count = NumberAttribute(default=0)
    favorite_count = NumberAttribute(default=0)
    created_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    # Sessions created at or before this instant (microseconds) are revoked: logout-all in one write.
    sessions_revoked_at = NumberAttribute(default=0)
    # The per-openid login limit's bucket (shared/ratelimit.py): epoch seconds, taken by the login upsert.
    login_tat = NumberAttribute(null=True)


class CounterModel(_SharedClientModel):
    """An atomic counter stored in the users table under a key no openid can take."""

    Meta = _meta(_settings, _settings.users_table)

    openid = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)


class SessionModel(_SharedClientModel):
    """One login session: the refresh-token chain (hashes only) and its revocation state."""

    Meta = _meta(_settings, _settings.sessions_table)

    sid = UnicodeAttribute(hash_key=True)
    user_id = NumberAttribute()
    openid = UnicodeAttribute()
    refresh_hash = UnicodeAttribute()
    prev_refresh_hash = UnicodeAttribute(null=True)
    rotated_at = NumberAttribute(default=0)
    generation = NumberAttribute(default=0)
    created_at_us = NumberAttribute()
    expires_at = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    # DynamoDB's TTL deletes the item some time after this epoch second.
    ttl = NumberAttribute()


class CacheModel(_SharedClientModel):
    """Short-lived shared state (WeChat access_token, login replays, rate limits), expired by TTL.

    `pk` is namespaced by use, e.g. `wxtoken#<appid>`, `login#<sha256(code)>`, `rate#ip#<ip>`.
    """

    Meta = _meta(_settings, _settings.cache_table)

    pk = UnicodeAttribute(hash_key=True)
    data = UnicodeAttribute(null=True)
    counter = NumberAttribute(null=True)
    version = NumberAttribute(default=0)
    expires_at = NumberAttribute(default=0)
    ttl = NumberAttribute(null=True)


ALL_MODELS: tuple[type[Model], ...] = (UserModel, SessionModel, CacheModel)


def is_condition_failure(exc: PynamoDBException) -> bool:
    """True when DynamoDB refused a write because its condition did not hold."""
    # Not exc.cause_response_code: it fails on botocore errors whose `response` is None (timeouts).
    response = getattr(exc.cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn any other DynamoDB failure (throttling after retries, timeouts) into StorageUnavailable."""
    try:
        yield
    except (Model.DoesNotExist, StorageUnavailable):
        raise
    except PynamoDBException as exc:
        if is_condition_failure(exc):
            raise
        raise StorageUnavailable() from exc


def write_if(write: Callable[[], object]) -> bool:
    """Run one conditional DynamoDB write: False when its condition did not hold (nothing written).

    Any other failure is StorageUnavailable, as under `storage_errors`.
    """
    try:
        with storage_errors():
            write()
    except PynamoDBException:  # storage_errors lets only condition failures through
        return False
    return True


def create_tables() -> None:
    """Create every table if missing (local server and tests; deployed tables come from infra/)."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
