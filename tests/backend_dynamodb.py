"""The DynamoDB backend of the behavioural suite: moto's in-memory DynamoDB, each request atomic."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from moto import mock_aws

from local.moto_atomic import make_moto_atomic
from shared.settings import Settings
from shared.storage.base import Storage
from shared.storage.dynamodb import DynamoDBStorage
from shared.storage.factory import open_storage


@contextmanager
def backend(settings: Settings) -> Iterator[Storage]:
    """A fresh DynamoDB (moto, in memory) with the service's tables, for one test."""
    make_moto_atomic()  # each request atomic, as on DynamoDB (concurrency tests rely on it)
    with mock_aws():
        store = open_storage(dataclasses.replace(settings, storage="dynamodb"))
        store.create_schema()
        yield store


@contextmanager
def round_trips(storage: Storage) -> Iterator[Counter[str]]:
    """DynamoDB API calls made during the block, by operation (botocore `before-call` events on the
    client every table uses; moto answers them). The SDK's own retries are not counted."""
    assert isinstance(storage, DynamoDBStorage)
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: object) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    client = storage.client
    client.meta.events.register("before-call.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)
