"""Cold start of a packaged artifact as shipped, and of the same artifact without its bytecode.

    .venv/bin/python -m bench.artifact               # .serverless/refresh.zip, 7 runs of each kind
    .venv/bin/python -m bench.artifact --runs 15 --python /path/to/python3.11

Unpacks the zip and the requirements layer (after `make package`) twice: as is, and with every
`__pycache__` removed (what a package without bytecode is on Lambda, where the read-only task
directory and /opt keep nothing between cold starts). Each sample is a fresh `python3.X -I -S -B`
(the runtime's version, nothing but the artifact, the layer's python/ and the standard library on
sys.path, no bytecode written) that imports the handler module
and answers one refresh event; DynamoDB is a stub on 127.0.0.1 answering `{}` to every call (a real
HTTP round trip, no data: the refresh is refused). The two kinds alternate; medians of CPU time of
the whole process (user + system) and of wall time from spawn to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from bench.scenarios import BENCH_ENV, ROOT, event

HANDLER = "functions.refresh.handler"
CHILD = """
import json, sys
sys.path[0:0] = [sys.argv[1] + "/task", sys.argv[1] + "/opt/python"]
module, attribute = sys.argv[2].rsplit(".", 1)
handler = getattr(__import__(module, fromlist=[attribute]), attribute)

class Context:
    function_name = "refresh"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:refresh"
    aws_request_id = "cold-0"
    def get_remaining_time_in_millis(self):
        return 10_000

print(handler(json.loads(sys.argv[3]), Context())["statusCode"])
"""


class DynamoDBStub(BaseHTTPRequestHandler):
    """DynamoDB without data: a conditional write fails its condition, a read finds nothing."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        target = self.headers.get("x-amz-target", "")
        DynamoDBStub.calls.append(target.rsplit(".", 1)[-1])
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, body = 200, b"{}"
        if target.endswith(("UpdateItem", "PutItem")):
            status = 400
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}'
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def sample(
    python: str, root: Path, handler: str, payload: str, env: dict[str, str]
) -> tuple[float, float, str]:
    """(CPU s, wall s, status code) of one cold start: import the handler, answer one event."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-I", "-S", "-B", "-c", CHILD, str(root), handler, payload],
        capture_output=True,
        env=env,
        cwd=root / "task",
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode(errors="replace")[-3000:])
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, wall, proc.stdout.decode().strip()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zip", type=Path, default=ROOT / ".serverless" / "refresh.zip", help="refresh's")
    parser.add_argument(
        "--layer", type=Path, default=ROOT / ".serverless" / "pythonRequirements.zip", help="its dependencies"
    )
    parser.add_argument("--python", default="python3.11", help="the runtime's interpreter")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), DynamoDBStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    payload = json.dumps(event("POST", "/auth/refresh", {"refresh_token": f"{'s' * 22}.{'r' * 43}"}))
    with tempfile.TemporaryDirectory(prefix="artifact-cold-") as scratch:
        shipped, source_only, home = Path(scratch, "shipped"), Path(scratch, "source"), Path(scratch, "home")
        home.mkdir()
        for zip_path, directory in ((args.zip, "task"), (args.layer, "opt")):
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(shipped / directory)
        shutil.copytree(shipped, source_only, ignore=shutil.ignore_patterns("__pycache__"))
        modules = sum(1 for _ in shipped.rglob("*.pyc"))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            **BENCH_ENV,
            "STAGE": "prod",
            "DYNAMODB_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        }
        kinds = {"with bytecode": shipped, "from source": source_only}
        samples: dict[str, list[tuple[float, float, str]]] = {kind: [] for kind in kinds}
        for root in kinds.values():  # warms the OS file cache
            sample(args.python, root, HANDLER, payload, env)
        DynamoDBStub.calls.clear()
        for run in range(args.runs):
            for kind in kinds if run % 2 == 0 else reversed(kinds):
                samples[kind].append(sample(args.python, kinds[kind], HANDLER, payload, env))
    server.shutdown()

    statuses = sorted({s[2] for runs in samples.values() for s in runs})
    calls = sorted(set(DynamoDBStub.calls))
    print(f"{args.zip.name} ({modules} .pyc shipped), {HANDLER}, {args.python}, medians of {args.runs}")
    per_start = len(DynamoDBStub.calls) / 2 / args.runs
    print(f"  answered {statuses}; DynamoDB calls per cold start: {per_start:g} ({', '.join(calls)})")
    cpu = {kind: statistics.median(s[0] for s in runs) * 1000 for kind, runs in samples.items()}
    for kind, runs in samples.items():
        wall = statistics.median(s[1] for s in runs) * 1000
        print(f"  {kind:14} {cpu[kind]:6.0f} ms CPU  {wall:6.0f} ms wall")
    print(f"  from source / with bytecode: {cpu['from source'] / cpu['with bytecode']:.2f}x (CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
