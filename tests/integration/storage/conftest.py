"""The `storage` fixture: every test of this package runs once per backend of tests/backends.py."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import ModuleType

import pytest

from shared.settings import Settings
from shared.storage.base import Storage
from tests.backends import BACKEND_NAMES, open_backend


def _backend_module(name: str) -> ModuleType:
    module_name = f"tests.backend_{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        pytest.skip(f"tests/backend_{name}.py not present")


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def storage(backend_name: str, settings: Settings) -> Iterator[Storage]:
    """A fresh, empty store of the backend under test."""
    _backend_module(backend_name)
    with open_backend(backend_name, settings) as store:
        yield store


RoundTrips = Callable[[Storage], AbstractContextManager[Counter[str]]]


@pytest.fixture
def round_trips(backend_name: str) -> RoundTrips:
    """`with round_trips(storage) as trips:` counts the backend's round trips in the block."""
    counter: RoundTrips = _backend_module(backend_name).round_trips
    return counter


@pytest.fixture
def sibling(backend_name: str, storage: Storage) -> Iterator[Callable[[], Storage]]:
    """Another adapter instance on the same store, as another function instance would have (its own
    connection). A backend without `sibling(storage)` shares the one instance (it is thread-safe)."""
    make = getattr(_backend_module(backend_name), "sibling", None)
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
