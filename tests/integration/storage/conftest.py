"""The storage package's own fixture: `sibling`, another adapter instance on the test's store. The
`storage` and `round_trips` fixtures are tests/conftest.py's (every backend of tests/backends.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import pytest

from shared.storage.base import Storage


@pytest.fixture
def sibling(request: pytest.FixtureRequest, storage: Storage) -> Iterator[Callable[[], Storage]]:
    """Another adapter instance on the same store, as another function instance would have (its own
    connection). A backend without `sibling(storage)` shares the one instance (it is thread-safe)."""
    name = str(request.node.callspec.params["storage"])
    make = getattr(importlib.import_module(f"tests.backend_{name}"), "sibling", None)
    made: list[Storage] = []

    def another() -> Storage:
        if make is None:
            return storage
        instance: Storage = make(storage)
        made.append(instance)
        return instance

    yield another
    for instance in made:
        close = getattr(instance, "close", None)
        if close is not None:
            close()
