"""Cold start: the cyclic garbage collector is paused while a function loads.

Loading a function creates a few hundred thousand objects that live as long as the process (FastAPI,
pydantic, botocore, PynamoDB); the collector would scan them again and again as they arrive, for
almost no garbage: a fifth of a cold start here (`make bench`). A function pauses it on its first
import (functions/__init__.py) and resumes it once its handler is built (shared.api.handler), after
moving everything loaded so far into the permanent generation (`gc.freeze`), so that later
collections, on warm invocations too, skip it. Behaviour is unchanged: nothing is freed late but the
few cycles that became garbage during the import itself.
"""

from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    """Pause the collector for the rest of the cold start (no-op if someone else already paused it)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """End of the cold start: freeze what is loaded and resume the collector, if `pause_gc` paused it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
