"""Work on untrusted input in a child process under hard limits on CPU time and memory.

Decoders (libjpeg, zlib, libwebp) spend time and memory as the input tells them to; header checks cap
what is known, the limits here cap everything else. The work runs in a `fork()` of the calling process:
nothing to start or import (a few ms, measured in docs/avatars.md), and the kernel enforces the limits:

- CPU: an `ITIMER_PROF` timer whose signal ends the child when its CPU time runs out, with
  `RLIMIT_CPU` a second later as a backstop;
- memory: `RLIMIT_AS`, the child's address space at the fork plus the allowance. Resident memory never
  exceeds the address space, so the child's RSS grows by at most the allowance; an allocation beyond it
  fails (MemoryError, or the decoder's own out-of-memory error);
- wall time: the parent kills the child when it has not answered in time (a stuck child uses no CPU).

The child answers through a pipe: a length and the bytes `work` returned; it never returns into the
caller's stack (it leaves with `os._exit`). Linux only (Lambda, SCF, `make dev`): elsewhere without
`fork` the work runs in-process, bounded only by the caller's header checks.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

_LENGTH_BYTES = 8
_EXIT_OK = 0
_EXIT_FAILED = 1
_EXIT_OUT_OF_MEMORY = 3


@dataclass(frozen=True)
class Limits:
    """What one piece of work may use."""

    cpu_seconds: float
    memory_bytes: int  # address space the child may add to what it inherited
    wall_seconds: float
    max_output_bytes: int


class LimitExceeded(Exception):
    """The work was stopped by a limit, or failed without answering."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def run_confined(work: Callable[[], bytes], limits: Limits) -> bytes:
    """What `work()` returns, computed in a child process under `limits`.

    Raises LimitExceeded when the child ran out of CPU time, memory or wall time, raised, or answered
    more than `limits.max_output_bytes`.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - not a platform we deploy to
        return work()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its behaviour is what the tests measure
        _child(work, limits, read_end, write_end)
    os.close(write_end)
    answer: bytes | None = None
    problem: str | None = None
    try:
        answer, problem = _read_answer(read_end, limits)
    finally:
        os.close(read_end)
        if answer is None:
            _kill(pid)  # ended already, or out of wall time, or answering too much
        status = _wait(pid)
    if answer is not None:
        return answer
    raise LimitExceeded(problem or _why(status))


def _child(work: Callable[[], bytes], limits: Limits, read_end: int, write_end: int) -> None:
    code = _EXIT_FAILED
    try:
        os.close(read_end)
        _confine(limits)
        output = work()
        _write_all(write_end, len(output).to_bytes(_LENGTH_BYTES, "big") + output)
        code = _EXIT_OK
    except MemoryError:
        code = _EXIT_OUT_OF_MEMORY
    except BaseException:  # whatever happens, the child must not return into the caller's code
        code = _EXIT_FAILED
    finally:
        os._exit(code)


def _confine(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # SIGPROF's default action ends the process; a Python handler (a profiler's) would wait for the C code.
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)
    backstop = math.ceil(limits.cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (backstop, backstop))
    address_space = _address_space()
    if address_space is not None:
        ceiling = address_space + limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None where /proc does not say."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_answer(fd: int, limits: Limits) -> tuple[bytes | None, str | None]:
    """The child's complete answer; else None and what the parent saw go wrong (None: the child ended)."""
    deadline = time.monotonic() + limits.wall_seconds
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    received = bytearray()
    expected: int | None = None
    while expected is None or len(received) < _LENGTH_BYTES + expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None, "wall time limit"
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None, None
        received += chunk
        if expected is None and len(received) >= _LENGTH_BYTES:
            expected = int.from_bytes(received[:_LENGTH_BYTES], "big")
            if expected > limits.max_output_bytes:
                return None, "answer too large"
    if len(received) != _LENGTH_BYTES + expected:
        return None, "answer too large"
    return bytes(received[_LENGTH_BYTES:]), None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # not reaped yet, so never someone else's
        os.kill(pid, signal.SIGKILL)


def _wait(pid: int) -> int:
    """The child's wait status, once it has ended."""
    _, status = os.waitpid(pid, 0)
    return status


def _why(status: int) -> str:
    """Why a child that did not answer ended."""
    if os.WIFSIGNALED(status):
        stopped_by = os.WTERMSIG(status)
        if stopped_by in (signal.SIGPROF, signal.SIGXCPU):
            return "cpu time limit"
        return f"signal {stopped_by}"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _EXIT_OUT_OF_MEMORY:
        return "memory limit"
    return "failed"
