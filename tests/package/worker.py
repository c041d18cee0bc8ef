"""Runs one unpacked Lambda artifact in a clean interpreter, like the Lambda runtime does.

Started as `python3.X -I -S worker.py <artifact dir> <handler> [--opt <layers dir>]` by
tests/package/test_smoke.py: `-I` ignores every PYTHON* variable and the user's site-packages and
does not put this file's directory on sys.path, `-S` skips site-packages altogether. So sys.path is
the artifact directory, then (with --opt, the function's layers unpacked as Lambda mounts them at
/opt) the two directories of /opt that Lambda's Python runtime puts there,
`/opt/python/lib/python3.X/site-packages` and `/opt/python`, plus the standard library, nothing else:
an import that the artifact and its layers cannot satisfy fails here as it would on Lambda. Standard
library only in this file, for that reason.

Protocol: one JSON line per event on stdin; one line per answer on stdout, prefixed with MARK
(the app may print to stdout too). The first answer reports the cold start; the event
`{"inspect": true}` answers where every loaded module came from.

Both also name the modules of the artifact and its layers that the import system compiled from
source (`compiled`): none when they ship bytecode for this interpreter that it accepts
(infra/bytecode.py).
An audit hook sees every `compile()`; the import system's are those called by `source_to_code`.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from types import FrameType, SimpleNamespace
from typing import Any

MARK = "@@worker@@ "
COMPILED: list[str] = []


def watch_compiles(*directories: str) -> None:
    """Record in COMPILED each module under `directories` that an import compiles from its source."""
    roots = tuple(os.path.join(directory, "") for directory in directories)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "compile" or not str(args[1]).startswith(roots):
            return
        # compile() <- _call_with_frames_removed <- SourceLoader.source_to_code (3.10 to 3.13)
        frame: FrameType | None = sys._getframe(1)
        for _ in range(3):
            if frame is None:
                return
            if frame.f_code.co_name == "source_to_code" and "importlib" in frame.f_code.co_filename:
                COMPILED.append(str(args[1]))
                return
            frame = frame.f_back

    sys.addaudithook(hook)


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def foreign_modules() -> list[str]:
    """Modules loaded from neither the artifact, its layers nor the standard library."""
    roots = tuple(os.path.join(p, "") for p in sys.path if p)  # the artifact, the layers, the stdlib
    foreign = []
    main = sys.modules["__main__"]
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        # This file, also under the alias `__mp_main__` once multiprocessing is imported (s3transfer).
        if module is main or not origin or origin.startswith(roots):
            continue
        foreign.append(f"{name}: {origin}")
    return sorted(foreign)


def context(function_name: str) -> Any:
    deadline = time.monotonic() + 12
    return SimpleNamespace(
        aws_request_id=str(uuid.uuid4()),
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:ap-east-1:123456789012:function:{function_name}",
        memory_limit_in_mb=512,
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="smoke",
        identity=None,
        client_context=None,
        get_remaining_time_in_millis=lambda: int((deadline - time.monotonic()) * 1000),
    )


def main() -> int:
    artifact, handler_name, options = sys.argv[1], sys.argv[2], sys.argv[3:]
    layers: list[str] = []
    if options:
        assert options[0] == "--opt" and len(options) == 2, options
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        layers = [os.path.join(options[1], "python", "lib", version, "site-packages")]
        layers.append(os.path.join(options[1], "python"))
    sys.path[0:0] = [artifact, *layers]
    watch_compiles(artifact, *([options[1]] if options else []))
    module_name, attribute = handler_name.rsplit(".", 1)
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name.replace("/", ".")), attribute)
    except BaseException:
        reply({"ready": False, "error": traceback.format_exc()})
        return 1
    reply(
        {
            "ready": True,
            "init_s": time.perf_counter() - started,
            "python": list(sys.version_info[:3]),
            "sys_path": sys.path,
            "flags": {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site},
            "compiled": list(COMPILED),
        }
    )
    for line in sys.stdin:
        event = json.loads(line)
        if event.get("inspect"):
            reply({"foreign_modules": foreign_modules(), "compiled": list(COMPILED)})
            continue
        started = time.perf_counter()
        try:
            response = handler(event, context(module_name.rsplit("/", 1)[-1]))
        except BaseException:
            reply({"error": traceback.format_exc()})
            continue
        reply({"response": response, "duration_s": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
