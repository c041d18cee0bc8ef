"""One botocore session for every AWS client of a process (shared/aws.py)."""

from __future__ import annotations

import threading
from typing import Any

from shared import ssm_params
from shared.avatar_store import s3_client
from shared.aws import botocore_session
from shared.settings import get_settings
from shared.storage.dynamodb import DynamoDBStorage


def credentials_of(client: Any) -> Any:
    return client._request_signer._credentials


def test_dynamodb_s3_and_ssm_clients_are_created_on_one_session() -> None:
    """The credential chain is resolved once: every client signs with the session's credentials."""
    storage = DynamoDBStorage(get_settings())
    dynamodb: Any = storage.client
    assert dynamodb.meta.config.read_timeout == 2
    # Every table, and every adapter of the same configuration, on the one client.
    tables = (storage._t.users, storage._t.counters, storage._t.sessions, storage._t.cache)
    assert all(table._get_connection().connection.client is dynamodb for table in tables)
    assert DynamoDBStorage(get_settings()).client is dynamodb
    s3: Any = s3_client(get_settings())
    ssm: Any = ssm_params._default_client({"AWS_REGION": "ap-east-1"})
    with botocore_session() as session:
        shared = session.get_credentials()
    assert shared is not None
    assert credentials_of(dynamodb) is credentials_of(s3) is credentials_of(ssm) is shared
    # The clients keep their own settings: region, endpoint, timeouts.
    assert (s3.meta.service_model.service_name, s3.meta.config.read_timeout) == ("s3", 3)
    assert (ssm.meta.region_name, ssm.meta.config.connect_timeout) == ("ap-east-1", 1)


def test_clients_are_created_one_at_a_time() -> None:
    """botocore sessions are not thread-safe: a thread creating a client waits for the one holding it."""
    inside = threading.Event()
    release = threading.Event()
    entered: list[str] = []

    def hold() -> None:
        with botocore_session():
            inside.set()
            release.wait(5)

    def create() -> None:
        with botocore_session():
            entered.append("second")

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(5)
    waiter = threading.Thread(target=create)
    waiter.start()
    waiter.join(0.2)
    assert entered == []
    release.set()
    holder.join(5)
    waiter.join(5)
    assert entered == ["second"]
