"""Checks the bytecode shipped in an artifact, run by the runtime's interpreter (it knows the runtime's
magic number, cache tag and source hash): `python3.X -I -S pyc_check.py <zip or directory>`.

Prints one JSON object: `{"tag": "cpython-311", "modules": <.py files>, "problems": [...]}`. A problem
is a .py without its `__pycache__/<name>.<tag>.pyc`, a .pyc that is not one of those (another
Python's, an optimised one, an orphan), or one that this interpreter would not load without looking
at the source: wrong magic number, not `unchecked-hash`, a hash that is not its source's, bad code.
Standard library only, like worker.py.
"""

import importlib.util
import json
import marshal
import os
import sys
import types
import zipfile

UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, do not check the source


def read_all(artifact: str) -> dict[str, bytes]:
    """{posix path inside the artifact: content} of its .py and .pyc files."""
    wanted = (".py", ".pyc")
    if zipfile.is_zipfile(artifact):
        with zipfile.ZipFile(artifact) as archive:
            return {name: archive.read(name) for name in archive.namelist() if name.endswith(wanted)}
    files = {}
    for directory, _, names in os.walk(artifact):
        for name in names:
            if name.endswith(wanted):
                path = os.path.join(directory, name)
                with open(path, "rb") as file:
                    files[os.path.relpath(path, artifact).replace(os.sep, "/")] = file.read()
    return files


def problems(files: dict[str, bytes]) -> list[str]:
    found = []
    expected = {importlib.util.cache_from_source(name): name for name in files if name.endswith(".py")}
    for pyc in sorted(name for name in files if name.endswith(".pyc")):
        if pyc not in expected:
            found.append(f"{pyc}: not the bytecode of a .py of the artifact for this Python")
    for pyc, source in sorted(expected.items()):
        data = files.get(pyc)
        if data is None:
            found.append(f"{source}: no {pyc}")
            continue
        if data[:4] != importlib.util.MAGIC_NUMBER:
            found.append(f"{pyc}: magic number {data[:4].hex()}, not this Python's")
        elif int.from_bytes(data[4:8], "little") != UNCHECKED_HASH:
            found.append(f"{pyc}: flags {int.from_bytes(data[4:8], 'little')}, not unchecked-hash")
        elif data[8:16] != importlib.util.source_hash(files[source]):
            found.append(f"{pyc}: compiled from another source than {source}")
        elif not isinstance(marshal.loads(data[16:]), types.CodeType):  # noqa: S302 (the artifact's own)
            found.append(f"{pyc}: no code object")
    return found


def main() -> int:
    files = read_all(sys.argv[1])
    report = {
        "tag": sys.implementation.cache_tag,
        "modules": sum(1 for name in files if name.endswith(".py")),
        "problems": problems(files),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
