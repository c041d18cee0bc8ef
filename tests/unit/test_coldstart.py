"""The garbage collector is paused during a function's cold start and resumed when its handler exists."""

import gc

import pytest

from shared import coldstart
from tests.conftest import run_python


@pytest.fixture
def collector():
    """Leave the collector as the test found it (enabled, nothing frozen by the test)."""
    frozen = gc.get_freeze_count()
    yield
    gc.enable()
    if gc.get_freeze_count() > frozen:
        gc.unfreeze()


def test_pause_then_resume_freezes_what_is_loaded_and_enables_collection(collector):
    frozen = gc.get_freeze_count()
    coldstart.pause_gc()
    assert not gc.isenabled()
    coldstart.resume_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen


def test_resume_without_pause_changes_nothing(collector):
    frozen = gc.get_freeze_count()
    coldstart.resume_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_collector_paused_by_someone_else_stays_paused(collector):
    gc.disable()
    coldstart.pause_gc()
    coldstart.resume_gc()
    assert not gc.isenabled()


def test_importing_a_function_pauses_the_collector_until_its_handler_is_built():
    script = (
        "import gc, functions; paused = not gc.isenabled(); import functions.refresh; "
        "print(paused, gc.isenabled(), gc.get_freeze_count() > 0)"
    )
    out = run_python(script, {"STAGE": "local"})
    assert out.stdout.split() == ["True", "True", "True"]


def test_a_function_loads_its_storage_driver_during_its_cold_start_and_freezes_it():
    # Built by lambda_handler (no I/O), so the first request's time budget does not pay for the import,
    # and warm collections skip the driver's objects like the rest of the cold start's (frozen objects
    # are in no generation that gc.get_objects() lists).
    script = (
        "import gc, sys, functions.refresh; from pynamodb.models import Model; "
        "print('shared.storage.dynamodb' in sys.modules, all(o is not Model for o in gc.get_objects()))"
    )
    out = run_python(script, {"STAGE": "local"})
    assert out.stdout.split() == ["True", "True"]
