"""Post-import hooks: install the in-memory fakes the moment the function imports botocore or httpx.

The cold-start measurement must not pre-import anything the function would import itself, so the
harness imports only the standard library before its timer starts. The fakes are attached from
inside the function's own import of `botocore.handlers` / `httpx` (however lazily it happens), and the
time spent attaching them is added to `overhead_s`, which the measurement subtracts. Every process of
a run (functions and floors alike) installs the same hooks.
"""

from __future__ import annotations

import sys
import time

# Not `typing.TYPE_CHECKING`: importing typing (or importlib, types) here would pre-load, before the timer,
# modules the measured code imports itself. mypy treats this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

    Callback = Callable[[ModuleType], None]

# Seconds spent inside callbacks (attaching fakes), wall-clock and CPU: harness time, not the function's.
overhead_s = 0.0
overhead_cpu_s = 0.0


class _Loader:
    """Runs the real loader, then the callback; everything else is the real loader's."""

    def __init__(self, loader: Any, callback: Callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        global overhead_s, overhead_cpu_s
        self._loader.exec_module(module)
        started, started_cpu = time.perf_counter(), time.process_time()
        self._callback(module)
        overhead_s += time.perf_counter() - started
        overhead_cpu_s += time.process_time() - started_cpu

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """A meta-path finder that only wraps the loaders of the watched modules."""

    def __init__(self, callbacks: dict[str, Callback]) -> None:
        self._callbacks = callbacks

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        callback = self._callbacks.get(fullname)
        if callback is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, callback)  # type: ignore[assignment]
                return spec
        return None


def after_import(callbacks: dict[str, Callback]) -> None:
    """Call `callbacks[name](module)` right after module `name` is first imported (or now, if it was)."""
    pending: dict[str, Callback] = {}
    for name, callback in callbacks.items():
        module = sys.modules.get(name)
        if module is not None:
            callback(module)
        else:
            pending[name] = callback
    if pending:
        sys.meta_path.insert(0, _Finder(pending))


def compile_from_source(root: str) -> None:
    """Import every module under `root` from its source, ignoring (and not writing) cached bytecode.

    How a Lambda package without `__pycache__` behaves: the task directory is read-only, so every cold
    start compiles every module again. The standard library keeps its bytecode, as in the runtime.
    """
    from importlib.machinery import (
        BYTECODE_SUFFIXES,
        EXTENSION_SUFFIXES,
        SOURCE_SUFFIXES,
        ExtensionFileLoader,
        FileFinder,
        SourceFileLoader,
        SourcelessFileLoader,
    )

    class SourceOnlyLoader(SourceFileLoader):
        def get_code(self, fullname: str) -> Any:
            path = self.get_filename(fullname)
            return self.source_to_code(self.get_data(path), path)

    def hook(entry: str) -> FileFinder:
        if not entry.startswith(root):
            raise ImportError("not under the measured root")
        return FileFinder(
            entry,
            (ExtensionFileLoader, EXTENSION_SUFFIXES),
            (SourceOnlyLoader, SOURCE_SUFFIXES),
            (SourcelessFileLoader, BYTECODE_SUFFIXES),
        )

    sys.path_hooks.insert(0, hook)
    for entry in list(sys.path_importer_cache):
        if entry.startswith(root):
            del sys.path_importer_cache[entry]
