"""shared.sandbox: work in a child process under hard limits on CPU time, memory and wall time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from shared.sandbox import LimitExceeded, Limits, run_confined
from tests.forked import measured

MiB = 1024 * 1024
LIMITS = Limits(cpu_seconds=0.2, memory_bytes=64 * MiB, wall_seconds=5.0, max_output_bytes=MiB)


def spin() -> bytes:
    while True:
        pass


def allocate_in_python() -> bytes:
    return bytes(bytearray(1024 * MiB))


def allocate_in_c() -> bytes:
    return Image.new("RGBA", (8192, 8192)).tobytes()[:1]  # 256 MB in Pillow's own allocator


def sleep() -> bytes:
    time.sleep(60)
    return b""


def fail() -> bytes:
    raise ValueError("decoder exploded")


def refused(work, limits: Limits = LIMITS) -> str:
    with pytest.raises(LimitExceeded) as caught:
        run_confined(work, limits)
    return caught.value.why


def test_the_answer_comes_back_from_the_child():
    assert run_confined(lambda: b"pixels" * 1000, LIMITS) == b"pixels" * 1000
    assert run_confined(lambda: b"", LIMITS) == b""


def test_a_child_out_of_cpu_time_is_stopped_at_its_limit():
    run = measured(lambda: refused(spin))
    assert run.value == "cpu time limit"
    assert LIMITS.cpu_seconds <= run.cpu_seconds < LIMITS.cpu_seconds + 0.3, run


@pytest.mark.parametrize("allocate", [allocate_in_python, allocate_in_c], ids=["python", "pillow"])
def test_a_child_out_of_memory_fails_without_growing_past_its_allowance(allocate):
    run = measured(lambda: refused(allocate))
    assert run.value == "memory limit"
    assert run.peak_increase_bytes < LIMITS.memory_bytes, run


def test_a_stuck_child_is_killed_at_the_wall_time_limit():
    started = time.monotonic()
    assert refused(sleep, Limits(1.0, 64 * MiB, wall_seconds=0.3, max_output_bytes=MiB)) == "wall time limit"
    assert time.monotonic() - started < 3.0


def test_a_failing_child_or_an_oversized_answer_is_refused():
    assert refused(fail) == "failed"
    assert refused(lambda: b"x" * (LIMITS.max_output_bytes + 1)) == "answer too large"


def test_concurrent_work_from_worker_threads_gets_its_own_answers():
    # FastAPI runs the avatar route in a worker thread; a dev server serves requests in parallel. Each
    # child inherits the others' pipes, so an answer is read by its length, not by waiting for EOF.
    def work(index: int) -> bytes:
        return run_confined(lambda: str(index).encode() * 50_000, LIMITS)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(work, range(12)))
    assert answers == [str(index).encode() * 50_000 for index in range(12)]
