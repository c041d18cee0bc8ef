"""The storage backends that every storage test runs against (parametrised, never copied).

Each backend lives in its own module `tests/backend_<name>.py` exposing
`backend(settings: Settings) -> ContextManager[Storage]`: a fresh, empty store for one test, its schema
created. A backend whose server cannot be had on this machine skips with the reason (never in CI).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import Settings
from shared.storage.base import Storage

BACKEND_NAMES = ("dynamodb", "mysql")


@contextmanager
def open_backend(name: str, settings: Settings) -> Iterator[Storage]:
    """A fresh store of backend `name` for one test."""
    module = importlib.import_module(f"tests.backend_{name}")
    with module.backend(settings) as storage:
        yield storage
