"""Add compiled bytecode to deployment zips, so that a cold start imports instead of compiling.

    python3.11 infra/bytecode.py --python-version 3.11 .serverless/login.zip ...

Run by the osls plugin infra/bytecode.js after serverless-python-requirements has injected the
requirements, with an interpreter of the runtime's Python version (bytecode is version-specific).

Lambda's task directory is read-only, so without `__pycache__` in the zip every cold start compiles
every module it imports (2.5x the cold start of the same code with bytecode, `make bench`). Every
`.py` file of each zip (functions/, shared/ and the dependencies) gets its
`__pycache__/<name>.cpython-3XX.pyc`, compiled by `compileall` from the zip's own bytes with
`--invalidation-mode unchecked-hash`: the interpreter uses it without looking at the source's
mtime (which unzipping does not preserve exactly) or hashing the source. The zip's sources are the
pyc's sources by construction; tests/package checks that every pyc matches its source's hash.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.util
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

# Like the entries serverless-python-requirements writes: fixed date, so the same sources give the same zip.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def compile_sources(sources: dict[str, bytes]) -> dict[str, bytes]:
    """{zip name of a .py: its source} -> {zip name of its .pyc: the bytecode} (uncompilable: left out)."""
    with tempfile.TemporaryDirectory(prefix="bytecode-") as scratch:
        root = Path(scratch)
        for name, source in sources.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source)
        # stripdir: code objects name the zip's relative paths, not this scratch directory (the import
        # system points them at the real file anyway), so the same sources give the same bytecode.
        compileall.compile_dir(
            root,
            quiet=1,
            stripdir=str(root),
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        compiled = {}
        for name in sources:
            cached = importlib.util.cache_from_source(name)
            if (root / cached).exists():
                compiled[cached] = (root / cached).read_bytes()
        return compiled


Cache = dict[tuple[str, str], tuple[str, bytes] | None]


def add_bytecode(zip_path: Path, cache: Cache) -> tuple[int, list[str]]:
    """Append the bytecode of every .py in `zip_path`; answers how many, and the .py that do not compile.

    `cache` is shared between zips: the functions' zips hold the same dependencies and shared/.
    """
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        if any(name.endswith(".pyc") for name in names):
            raise SystemExit(f"{zip_path} already holds bytecode: package again")
        sources = {name: archive.read(name) for name in names if name.endswith(".py")}
    keys = {name: (name, hashlib.sha256(source).hexdigest()) for name, source in sources.items()}
    todo = {name: source for name, source in sources.items() if keys[name] not in cache}
    if todo:
        compiled = compile_sources(todo)
        for name in todo:
            cached = importlib.util.cache_from_source(name)
            cache[keys[name]] = (cached, compiled[cached]) if cached in compiled else None
    added, failed = 0, []
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(sources):
            entry = cache[keys[name]]
            if entry is None:
                failed.append(name)
                continue
            info = zipfile.ZipInfo(entry[0], date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entry[1])
            added += 1
    return added, failed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python-version", required=True, help="the runtime's Python, e.g. 3.11")
    parser.add_argument("zips", nargs="+", type=Path)
    args = parser.parse_args()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != args.python_version:
        raise SystemExit(f"bytecode for Python {args.python_version} needs that interpreter, not {running}")
    cache: Cache = {}
    for zip_path in args.zips:
        added, failed = add_bytecode(zip_path, cache)
        tag = sys.implementation.cache_tag
        print(f"{zip_path.name}: bytecode of {added} modules ({tag}, unchecked-hash)")
        if failed:
            raise SystemExit(f"{zip_path}: these do not compile with Python {running}: {failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
