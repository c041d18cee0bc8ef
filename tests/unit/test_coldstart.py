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
