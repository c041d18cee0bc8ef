"""Add compiled bytecode to deployment zips, so that a cold start imports instead of compiling.

    PYTHONHASHSEED=0 python3.11 infra/bytecode.py --python-version 3.11 .serverless/login.zip ...
    PYTHONHASHSEED=0 python3.11 infra/bytecode.py --python-version 3.11 \
        --layer .serverless/requirements .serverless/pythonRequirements.zip

Run by the osls plugin infra/bytecode.js: it builds the requirements layer's zip (what
serverless-python-requirements installed into .serverless/requirements, under `python/`, which
Lambda mounts as /opt/python, read-only too) and adds bytecode to each function's zip, with an
interpreter of the runtime's Python version (bytecode is version-specific) and a fixed hash seed (up
to Python 3.10, a set constant's order in bytecode follows the string hashes). Every zip is
rewritten sorted, with one date: the same sources give byte-identical zips.

Lambda's task directory is read-only, so without `__pycache__` in the zip every cold start compiles
every module it imports (2.5x the cold start of the same code with bytecode, `make bench`). Every
`.py` file of each zip (functions/ and shared/; the dependencies in the layer) gets its
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

# Every entry's date: the same sources give the same zip.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# zlib's default: within 1% of level 9's size, in a third of its time.
COMPRESS_LEVEL = 6
# Where Lambda's Python runtime finds a layer's modules: /opt/python.
LAYER_ROOT = "python/"


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
# A zip entry: name, content, unix mode (0: a regular file's default).
Entry = tuple[str, bytes, int]


def with_bytecode(entries: list[Entry], cache: Cache) -> tuple[list[Entry], list[str]]:
    """`entries` and the bytecode of each .py among them; and the .py that do not compile.

    `cache` is shared between zips: the functions' zips hold the same shared/.
    """
    sources = {name: content for name, content, _mode in entries if name.endswith(".py")}
    if any(name.endswith(".pyc") for name, _content, _mode in entries):
        raise SystemExit("the package already holds bytecode: package again")
    keys = {name: (name, hashlib.sha256(source).hexdigest()) for name, source in sources.items()}
    todo = {name: source for name, source in sources.items() if keys[name] not in cache}
    if todo:
        compiled = compile_sources(todo)
        for name in todo:
            cached = importlib.util.cache_from_source(name)
            cache[keys[name]] = (cached, compiled[cached]) if cached in compiled else None
    added, failed = list(entries), []
    for name in sorted(sources):
        entry = cache[keys[name]]
        if entry is None:
            failed.append(name)
        else:
            added.append((entry[0], entry[1], 0))
    return added, failed


def write_zip(zip_path: Path, entries: list[Entry]) -> None:
    """A reproducible zip: entries sorted by name, one fixed date, the same compression, so the same
    sources give the same bytes (osls does not upload a layer whose hash it has already deployed)."""
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, content, mode in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (mode or (0o40755 if name.endswith("/") else 0o100644)) << 16
            if not name.endswith("/"):
                info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content, compresslevel=COMPRESS_LEVEL)
    partial.replace(zip_path)


def add_bytecode(zip_path: Path, cache: Cache) -> tuple[int, list[str]]:
    """Rewrite `zip_path` with the bytecode of every .py in it; answers how many, and the .py that do not
    compile."""
    with zipfile.ZipFile(zip_path) as archive:
        entries = [(i.filename, archive.read(i), i.external_attr >> 16) for i in archive.infolist()]
    complete, failed = with_bytecode(entries, cache)
    write_zip(zip_path, complete)
    return len(complete) - len(entries), failed


def build_layer(directory: Path, zip_path: Path, cache: Cache) -> tuple[int, list[str]]:
    """The zip of a Python layer: the files under `directory` (installed requirements) under `python/`,
    where Lambda's runtime finds them (/opt/python), with their bytecode."""
    entries = [
        (f"{LAYER_ROOT}{path.relative_to(directory).as_posix()}", path.read_bytes(), path.stat().st_mode)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]
    complete, failed = with_bytecode(entries, cache)
    write_zip(zip_path, complete)
    return len(complete) - len(entries), failed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python-version", required=True, help="the runtime's Python, e.g. 3.11")
    parser.add_argument(
        "--layer",
        nargs=2,
        type=Path,
        metavar=("DIRECTORY", "ZIP"),
        help="build ZIP, a layer of the packages installed in DIRECTORY, with their bytecode",
    )
    parser.add_argument("zips", nargs="*", type=Path, help="zips to add bytecode to")
    args = parser.parse_args()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != args.python_version:
        raise SystemExit(f"bytecode for Python {args.python_version} needs that interpreter, not {running}")
    if sys.flags.hash_randomization:
        raise SystemExit("run with PYTHONHASHSEED=0: the same sources must give the same bytecode")
    cache: Cache = {}
    done = [(zip_path, *add_bytecode(zip_path, cache)) for zip_path in args.zips]
    if args.layer:
        directory, zip_path = args.layer
        done.append((zip_path, *build_layer(directory, zip_path, cache)))
    tag = sys.implementation.cache_tag
    for zip_path, added, failed in done:
        print(f"{zip_path.name}: bytecode of {added} modules ({tag}, unchecked-hash)")
        if failed:
            raise SystemExit(f"{zip_path}: these do not compile with Python {running}: {failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
