"""One measurement in a fresh interpreter, started by bench/run.py with the spec (a `marshal`led dict)
on stdin: `python -S -c "from bench.child import main; main()"`.

Before its timer starts this process imports only what the interpreter has already loaded (sys, time,
marshal, gc) plus bench/hooks.py; the spec arrives as `marshal` so not even `json` is pre-loaded.
Every kind of process (function, floor (a), floor (b)) runs this same code, so they carry the same
harness, and the time spent attaching the fakes is subtracted from every kind alike.

Kinds:
- `cold`: import `target`, call its `handler` with one event; report init and first-event times.
- `imports`: import the module names in `modules` (floor (b)); then, given a `target`, import it and
  answer its first event as a second lap (what the function's own code adds).
- `warm`: import `target`, warm it up, count round trips per endpoint, then time many calls of each
  endpoint interleaved with the hello-world handler (floor (a), in this same process).
"""

from __future__ import annotations

import gc
import marshal
import sys
import time

from bench import hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OWN_PACKAGES = {"shared", "functions", "bench", "local", "tests", "__main__"}
# Set when the hooks attach the fakes (bench.fakes.FakeDynamoDB / FakeWeChat).
FAKES: dict[str, Any] = {}
# Time spent creating botocore and httpx clients: part of the measured time, reported apart (the
# one-off cost of talking to DynamoDB and WeChat at all: service models, endpoint rules, TLS contexts).
CLIENT_SETUP = {"wall_s": 0.0, "cpu_s": 0.0, "count": 0}


class LambdaContext:
    """Enough of a Lambda context for Mangum and the service's request ids."""

    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"

    def __init__(self, request_id: str = "bench-0") -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _install_fakes(spec: dict[str, Any]) -> None:
    def dynamodb(module: Any) -> None:
        from bench.fakes import FakeDynamoDB, install_dynamodb

        FAKES["dynamodb"] = FakeDynamoDB(spec["key_names"], spec["items"])
        install_dynamodb(module, FAKES["dynamodb"])

    def wechat(module: Any) -> None:
        from bench.fakes import FakeWeChat, install_wechat

        FAKES["wechat"] = FakeWeChat(spec["appid"])
        install_wechat(module, FAKES["wechat"])
        _time_client_setup(module.Client, "__init__")

    def aws_clients(module: Any) -> None:
        _time_client_setup(module.Session, "create_client")

    hooks.after_import({"botocore.handlers": dynamodb, "httpx": wechat, "botocore.session": aws_clients})


def _time_client_setup(owner: Any, name: str) -> None:
    """Add the time spent in `owner.name` (creating a client) to CLIENT_SETUP."""
    create = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started, started_cpu = time.perf_counter(), time.process_time()
        try:
            return create(*args, **kwargs)
        finally:
            CLIENT_SETUP["wall_s"] += time.perf_counter() - started
            CLIENT_SETUP["cpu_s"] += time.process_time() - started_cpu
            CLIENT_SETUP["count"] += 1

    setattr(owner, name, timed)


def _third_party(before: set[str]) -> list[str]:
    """Modules loaded since `before` that are neither the standard library's nor the project's."""
    names = []
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if module is None or name in before or top in OWN_PACKAGES or top in sys.stdlib_module_names:
            continue
        if top.startswith("_sysconfigdata"):
            continue  # the interpreter's build configuration, part of the standard library
        if getattr(module, "__spec__", None) is None:
            continue  # registered by its package's code (cryptography's `_openssl`), not importable by name
        names.append(name)
    return names


def _wechat_modules() -> list[str]:
    """The WeChat client's modules (and its HTTP library) this process has loaded."""
    return [name for name in ("shared.wechat", "httpx") if name in sys.modules]


def _unique(endpoint: dict[str, Any], n: int) -> dict[str, Any]:
    if not endpoint["unique"]:
        return dict(endpoint["event"])
    event = dict(endpoint["event"])
    event["body"] = event["body"].replace("{n}", str(n))
    event["headers"] = {**event["headers"], "content-length": str(len(event["body"].encode()))}
    return event


def _pause_gc(spec: dict[str, Any]) -> None:
    """For a floor, do what the function does (shared/coldstart.py), so the floor stays a floor."""
    if spec.get("pause_gc"):
        gc.disable()


def _resume_gc(spec: dict[str, Any]) -> None:
    if spec.get("pause_gc"):
        gc.freeze()
        gc.enable()


class _Clock:
    """Wall-clock and CPU time (all threads) since start, less the harness's own time."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.overhead, self.overhead_cpu = hooks.overhead_s, hooks.overhead_cpu_s

    def lap(self) -> tuple[float, float]:
        """(wall ms, CPU ms) since the previous lap, and start the next one."""
        now = _Clock()
        wall = now.wall - self.wall - (now.overhead - self.overhead)
        cpu = now.cpu - self.cpu - (now.overhead_cpu - self.overhead_cpu)
        self.__dict__.update(now.__dict__)
        return 1000 * wall, 1000 * cpu


def cold(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the import of the target and its first answer, minus the harness's own time."""
    before = set(sys.modules)
    status = None
    body = ""
    failed = []
    clock = _Clock()
    own = (0.0, 0.0)
    if spec["kind"] == "imports":
        _pause_gc(spec)
        for name in spec["modules"]:
            try:
                __import__(name)
            except Exception:
                failed.append(name)
        _resume_gc(spec)
        init = clock.lap()
        first = (0.0, 0.0)
        if "target" in spec:
            # Then the function, with everything it needs from others already loaded: what its own
            # code (and its first request, creating its clients) adds.
            __import__(spec["target"])
            response = sys.modules[spec["target"]].handler(spec["event"], LambdaContext())
            status = response["statusCode"]
            own = clock.lap()
    else:
        _pause_gc(spec)
        __import__(spec["target"])
        _resume_gc(spec)
        init = clock.lap()
        response = sys.modules[spec["target"]].handler(spec["event"], LambdaContext())
        first = clock.lap()
        status, body = response["statusCode"], response.get("body", "")
    return {
        "init_ms": init[0],
        "first_ms": first[0],
        "init_cpu_ms": init[1],
        "first_cpu_ms": first[1],
        "own_ms": own[0],
        "own_cpu_ms": own[1],
        "harness_ms": 1000 * hooks.overhead_s,
        "client_setup_ms": 1000 * CLIENT_SETUP["wall_s"],
        "client_setup_cpu_ms": 1000 * CLIENT_SETUP["cpu_s"],
        "clients": CLIENT_SETUP["count"],
        "status": status,
        "body": body[:300] if status != 200 else "",
        "third_party": _third_party(before),
        "failed_imports": failed,
        "loaded": _wechat_modules(),
        # The function paused the collector during its import (shared/coldstart.py).
        "gc_frozen": gc.get_freeze_count() > 0,
    }


def _peak_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def warm(spec: dict[str, Any]) -> dict[str, Any]:
    """Round trips and latency of each endpoint of the target, and the hello-world floor's."""
    __import__(spec["target"])
    handler = sys.modules[spec["target"]].handler
    endpoints: list[dict[str, Any]] = spec["endpoints"]
    context = LambdaContext()
    errors: dict[str, str] = {}
    counter = 0

    def call(call_handler: Any, endpoint: dict[str, Any]) -> tuple[float, float]:
        nonlocal counter
        counter += 1
        event = _unique(endpoint, counter)
        started, started_cpu = time.perf_counter(), time.process_time()
        response = call_handler(event, context)
        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        if response["statusCode"] != 200:
            errors.setdefault(endpoint["name"], f"{response['statusCode']} {response.get('body', '')[:300]}")
        return 1000 * elapsed, 1000 * elapsed_cpu

    # The first call of each endpoint, in order: which one first loads the WeChat client, if any.
    loaded_by: dict[str, list[str]] = {}
    for endpoint in endpoints:
        call(handler, endpoint)
        loaded_by[endpoint["name"]] = _wechat_modules()
    for _ in range(spec["warmup"]):
        for endpoint in endpoints:
            call(handler, endpoint)
    rss_kb = _peak_rss_kb()

    round_trips = {}
    for endpoint in endpoints:
        for fake in FAKES.values():
            fake.calls.clear()
        call(handler, endpoint)
        round_trips[endpoint["name"]] = {kind: dict(fake.calls) for kind, fake in FAKES.items()}

    __import__("bench.hello")
    hello = sys.modules["bench.hello"].handler
    hello_endpoint = {"name": "hello", "event": spec["hello_event"], "unique": False}
    for _ in range(spec["warmup"]):
        call(hello, hello_endpoint)
    samples: dict[str, list[float]] = {endpoint["name"]: [] for endpoint in [*endpoints, hello_endpoint]}
    cpu: dict[str, list[float]] = {name: [] for name in samples}
    for _ in range(spec["iterations"]):
        for endpoint in endpoints:
            for name, sample in (
                (endpoint["name"], call(handler, endpoint)),
                ("hello", call(hello, hello_endpoint)),
            ):
                samples[name].append(sample[0])
                cpu[name].append(sample[1])
    return {
        "rss_kb": rss_kb,
        "samples_ms": samples,
        "cpu_ms": cpu,
        "round_trips": round_trips,
        "errors": errors,
        "loaded_by": loaded_by,
    }


def main() -> None:
    spec = marshal.loads(sys.stdin.buffer.read())  # noqa: S302 (written by bench/run.py, our parent)
    if spec.get("no_bytecode"):
        hooks.compile_from_source(spec["root"])
    _install_fakes(spec)
    result = warm(spec) if spec["kind"] == "warm" else cold(spec)
    import json

    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
