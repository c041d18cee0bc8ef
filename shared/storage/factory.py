"""Builds the storage adapter the settings name. Only the chosen adapter's driver is imported, so a
DynamoDB function never loads PyMySQL and a MySQL function never loads PynamoDB or botocore."""

from __future__ import annotations

from shared.settings import Settings
from shared.storage.base import Storage


def open_storage(settings: Settings) -> Storage:
    """The adapter for `settings.storage`, connected lazily (no I/O here)."""
    if settings.storage == "mysql":
        from shared.storage.mysql.adapter import MySQLStorage

        return MySQLStorage(settings)
    from shared.storage.dynamodb import DynamoDBStorage

    return DynamoDBStorage(settings)
