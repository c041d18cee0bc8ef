"""A digest of everything that goes into a package, so that `make package` rebuilds only when it changed.

    python infra/package_inputs.py aws     # prints the digest of what `osls package` builds from
    python infra/package_inputs.py scf     # ... and infra/tencent/build.py

The Makefile computes it before a build and stores it next to the output once the build succeeded
(.serverless/inputs.sha256, infra/tencent/.build-inputs.sha256); the next `make package` builds
again only if the digest changed. tests/package compares .serverless/'s with the tree's.

`aws` is `osls package` (.serverless/): serverless.yml and what it includes, requirements.txt, the
osls/plugin versions (package-lock.json), infra/'s plugins and scripts, functions/ and shared/.
`scf` is infra/tencent/build.py (infra/tencent/.build/): requirements.txt, serverless.yml (the
functions and the botocore services), infra/tencent/, functions/ and shared/. The digest covers the
files' paths and contents (not their times: a checkout or a merge that changes nothing rebuilds
nothing); files added or removed change it too.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tree(root: Path, *directories: str) -> list[Path]:
    """The files under `directories`, but bytecode caches and dotfiles (.build/, the digest, .env)."""
    files = []
    for directory in directories:
        for path in (root / directory).rglob("*"):
            parts = path.relative_to(root).parts
            hidden = any(part.startswith(".") or part == "__pycache__" for part in parts)
            if path.is_file() and not hidden and path.suffix != ".pyc":
                files.append(path)
    return files


def inputs(target: str, root: Path = ROOT) -> list[Path]:
    """The files that `target` ("aws" or "scf") builds from, sorted."""
    common = [root / "requirements.txt", root / "serverless.yml", *_tree(root, "functions", "shared")]
    if target == "aws":
        infra = [p for p in (root / "infra").iterdir() if p.is_file() and p.suffix in (".yml", ".js", ".py")]
        files = [*common, root / "package.json", root / "package-lock.json", *infra]
    elif target == "scf":
        files = [*common, *_tree(root, "infra/tencent")]
    else:
        raise ValueError(target)
    return sorted(set(files))


def current(target: str, root: Path = ROOT) -> str:
    """sha256 over the target's name and each input's path and content (a missing one: its path alone)."""
    hasher = hashlib.sha256(f"{target}\n".encode())
    for path in inputs(target, root):
        name = path.relative_to(root).as_posix()
        content = path.read_bytes() if path.exists() else None
        hasher.update(f"{name}\n{-1 if content is None else len(content)}\n".encode())
        hasher.update(content or b"")
    return hasher.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", choices=["aws", "scf"])
    print(current(parser.parse_args().target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
