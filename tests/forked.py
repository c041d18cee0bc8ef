"""Run a function in a forked child and measure what it used, its own children included.

tracemalloc sees only Python's allocations, not a decoder's: memory is measured as the kernel counts it,
the peak resident set (`ru_maxrss`). A forked child starts with a fresh peak equal to what it inherited
resident, so the increase is the function's alone; the processes it forks and waits for (the image
sandbox) report theirs through RUSAGE_CHILDREN, from the same inherited baseline.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Measured:
    value: Any  # what the function returned
    cpu_seconds: float  # user + system, of the child and of every process it waited for
    peak_increase_bytes: int  # highest resident set above the child's start, of any of them

    @property
    def peak_increase_mb(self) -> float:
        return self.peak_increase_bytes / 1e6


def measured(function: Callable[[], Any], *, timeout: float = 60.0) -> Measured:
    """`function()` run in a fork of this process, with the CPU time and memory it took."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            value = function()
            own = resource.getrusage(resource.RUSAGE_SELF)
            waited = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime
            peak = max(own.ru_maxrss, waited.ru_maxrss) - baseline  # KiB on Linux
            payload = pickle.dumps(Measured(value, cpu, peak * 1024))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(0)
    os.close(write_end)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"no answer within {timeout} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            received += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not received:
        pytest.fail("the measured child failed without an answer")
    result: Measured = pickle.loads(bytes(received))  # noqa: S301 - our own child's answer
    return result
