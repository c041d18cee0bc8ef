"""`python -m bench`: measure every function against floors taken in the same run, write bench/results.md.

Each cold-start sample is a fresh interpreter (bench/child.py). The rounds interleave the kinds of
process (each function, its floor (b), the hello-world floor (a)) in a rotating order, so a burst of
load from other work on the machine hits every kind alike; the report uses medians.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import subprocess
import sys
import time
from typing import Any

from bench.closure import build_site
from bench.report import FLOOR_B, HELLO_GC, NO_BYTECODE, NO_BYTECODE_FUNCTIONS, Cold, Results, render
from bench.scenarios import BENCH_ENV, ROOT, Endpoint, Plan, build_plan, discover_functions, event

RESULTS = ROOT / "bench" / "results.md"
OUT = ROOT / "bench" / ".out"
RAW = OUT / "results.json"
SITE = OUT / "site"
HOME = OUT / "home"


class BenchError(RuntimeError):
    """A child process failed or an endpoint did not answer 200."""


def child_env() -> dict[str, str]:
    """A clean environment: the bench settings, nothing from the caller's shell (DYNAMODB_ENDPOINT...)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        # An empty home: no ~/.aws/config of whoever runs this, and no password-database lookup for `~`.
        "HOME": str(HOME),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{SITE}",
        **BENCH_ENV,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run bench/child.py in a fresh interpreter and answer its JSON result."""
    proc = subprocess.run(
        # -S: no site-packages; the deployed-like SITE is on PYTHONPATH instead (bench/closure.py).
        [sys.executable, "-S", "-c", "from bench.child import main; main()"],
        input=marshal.dumps(spec),
        capture_output=True,
        env=child_env(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise BenchError(f"{spec['kind']} {spec.get('target', '')} failed:\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


def _first_event(endpoint: Endpoint) -> dict[str, Any]:
    found = dict(endpoint.event)
    if endpoint.unique:
        found["body"] = found["body"].replace("{n}", "0")
        found["headers"] = {**found["headers"], "content-length": str(len(found["body"].encode()))}
    return found


class Bench:
    """Runs every measurement of one `make bench`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        functions = discover_functions()
        if args.only:
            functions = [f for f in functions if f.rsplit(".", 1)[1] in args.only]
        self.plan: Plan = build_plan(functions)
        self.results = Results(
            functions=functions, plan=self.plan, runs=args.runs, iterations=args.iterations
        )
        self.base = {
            "key_names": self.plan.key_names,
            "items": self.plan.items,
            "appid": BENCH_ENV["WX_APPID"],
        }
        self.hello_event = event("GET", "/hello")

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def _cold_spec(self, key: str) -> dict[str, Any]:
        if key.startswith(NO_BYTECODE):
            return {**self._cold_spec(key.removeprefix(NO_BYTECODE)), "no_bytecode": True, "root": str(ROOT)}
        if key in ("hello", HELLO_GC):
            spec = {**self.base, "kind": "cold", "target": "bench.hello", "event": self.hello_event}
            return {**spec, "pause_gc": key == HELLO_GC}
        if key.endswith(FLOOR_B):
            # Floor (b), then, in the same process, the function itself: what its own code adds.
            function = key.removesuffix(FLOOR_B)
            return {
                **self._cold_spec(function),
                "kind": "imports",
                "modules": self.results.third_party[function],
                "pause_gc": self.results.first[function]["gc_frozen"],
            }
        first = _first_event(self.plan.endpoints[key][0])
        return {**self.base, "kind": "cold", "target": key, "event": first}

    def discover(self) -> None:
        """One cold run per function, not counted: its third-party modules, and warm caches."""
        run_child(self._cold_spec("hello"))
        for function in self.results.functions:
            result = run_child(self._cold_spec(function))
            if result["status"] != 200 and function not in self.plan.guessed:
                raise BenchError(f"{function}: first event answered {result['status']}: {result['body']}")
            self.results.first[function] = result
            self.results.third_party[function] = result["third_party"]

    def measure_cold(self) -> None:
        """`runs` rounds over every kind of process, in an order that rotates each round."""
        functions = self.results.functions
        keys = ["hello", HELLO_GC, *functions, *(function + FLOOR_B for function in functions)]
        self.results.cold = {key: Cold() for key in keys}
        for round_no in range(self.args.runs):
            shift = round_no % len(keys)
            for key in keys[shift:] + keys[:shift]:
                self.results.cold[key].add(run_child(self._cold_spec(key)))
            self.log(f"cold start: round {round_no + 1}/{self.args.runs}")

    def measure_without_bytecode(self) -> None:
        """A few cold starts compiling every module from source, as a package without bytecode does."""
        if self.args.no_bytecode_runs <= 0:
            return
        targets = ["hello", *(f for f in NO_BYTECODE_FUNCTIONS if f in self.results.functions)]
        keys = [NO_BYTECODE + target for target in targets]
        for key in keys:
            self.results.cold[key] = Cold()
        for round_no in range(self.args.no_bytecode_runs):
            for key in keys:
                self.results.cold[key].add(run_child(self._cold_spec(key)))
            self.log(f"cold start without bytecode: round {round_no + 1}/{self.args.no_bytecode_runs}")

    def measure_warm(self) -> None:
        """One warm process per function: round trips, latency, peak memory."""
        for function in self.results.functions:
            endpoints = [
                {"name": e.name, "event": e.event, "unique": e.unique} for e in self.plan.endpoints[function]
            ]
            spec = {
                **self.base,
                "kind": "warm",
                "target": function,
                "endpoints": endpoints,
                "hello_event": self.hello_event,
                "warmup": self.args.warmup,
                "iterations": self.args.iterations,
            }
            result = run_child(spec)
            if result["errors"] and function not in self.plan.guessed:
                raise BenchError(f"{function}: {result['errors']}")
            self.results.warm[function] = result
            self.log(f"warm: {function}")

    def run(self) -> str:
        """Every measurement, then the report."""
        started = time.time()
        build_site(ROOT, SITE)
        HOME.mkdir(parents=True, exist_ok=True)
        self.results.load.append(os.getloadavg()[0])
        self.discover()
        self.measure_cold()
        self.measure_without_bytecode()
        self.measure_warm()
        self.results.load.append(os.getloadavg()[0])
        self.results.elapsed_s = time.time() - started
        if not self.args.no_write:
            RAW.write_text(json.dumps(self.results.raw(), indent=1), encoding="utf-8")
        return render(self.results, site=SITE)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the report and write bench/results.md."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="cold-start samples per kind (default 7)")
    parser.add_argument("--iterations", type=int, default=300, help="warm calls per endpoint (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up calls per endpoint (default 30)")
    parser.add_argument(
        "--no-bytecode-runs",
        type=int,
        default=3,
        help="cold starts compiling from source, as a package without bytecode (default 3; 0: skip)",
    )
    parser.add_argument("--only", nargs="*", help="function names to measure (default: every one)")
    parser.add_argument(
        "--no-write", action="store_true", help="print only: no bench/results.md, no raw samples"
    )
    args = parser.parse_args(argv)
    try:
        report = Bench(args).run()
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(report)
    if not args.no_write:
        RESULTS.write_text(report, encoding="utf-8")
    return 0
