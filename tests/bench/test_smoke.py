"""`make bench` runs end to end (one function, a handful of samples) and checks what it reports."""

import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from bench.closure import deployed_distributions

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployed_packages_are_the_requirements_and_their_dependencies_only():
    names = {canonicalize_name(d.metadata["Name"]) for d in deployed_distributions(ROOT / "requirements.txt")}
    assert {"fastapi", "pynamodb", "botocore", "pyjwt", "starlette", "pydantic-core"} <= names
    assert not names & {"pytest", "moto", "mypy", "ruff", "uvicorn", "rich"}


def test_bench_measures_a_function_against_its_floors():
    command = [sys.executable, "-m", "bench", "--runs", "1", "--iterations", "5", "--warmup", "1"]
    out = subprocess.run(
        [*command, "--only", "refresh", "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = out.stdout
    headings = ("## Cold start", "## Warm invocation", "## Round trips per request", "## Memory and size")
    assert all(heading in report for heading in headings)
    assert "| refresh, refresh token | 2: UpdateItem, GetItem | 0:  |" in report
    assert "| refresh, access token | 2: TransactGetItems, UpdateItem | 0:  |" in report
    assert "| refresh | never ✅ |" in report
