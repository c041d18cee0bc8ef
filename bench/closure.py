"""A deployed-like site directory: requirements.txt and its dependencies, nothing else, as links.

The virtualenv also holds the dev tools (moto, pytest, rich, flask...), and some runtime libraries
import optional packages when they are present (httpx its CLI's rich/click/pygments, PynamoDB
blinker), so a measurement in the virtualenv would load packages the deployed artifact does not
contain. And the virtualenv's botocore carries the data of every AWS service, which botocore lists
on each new client, while the package keeps only the services serverless.yml names. The benchmark's
processes therefore run with `python -S` on a directory of symlinks into the virtualenv holding just
what a `pip install -r requirements.txt` brings, with botocore's data slimmed the way the package is.
"""

from __future__ import annotations

import re
import shutil
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# serverless.yml `custom.botocoreServices`, when it cannot be read from there.
DEFAULT_BOTOCORE_SERVICES = ("dynamodb", "ssm", "s3", "sts")


def _requirements(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def deployed_distributions(requirements: Path) -> list[metadata.Distribution]:
    """The installed distributions a `pip install -r requirements` brings, on this Python."""
    seen: dict[str, metadata.Distribution] = {}
    queue = [(req, sorted(req.extras) or [""]) for req in _requirements(requirements)]
    while queue:
        req, extras = queue.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for text in dist.requires or ():
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                queue.append((sub, sorted(sub.extras) or [""]))
    return list(seen.values())


def _entries(dist: metadata.Distribution) -> set[str]:
    """The names directly under site-packages that belong to `dist` (packages, modules, dist-info)."""
    names = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first in ("..", "__pycache__", "bin") or first.endswith(".pth"):
            continue
        names.add(first)
    return names


def botocore_services(root: Path) -> tuple[str, ...]:
    """The AWS services whose botocore data the package keeps (serverless.yml custom.botocoreServices)."""
    config = root / "serverless.yml"
    if config.exists():
        match = re.search(r"^\s*botocoreServices:\s*([\w|-]+)\s*$", config.read_text(encoding="utf-8"), re.M)
        if match:
            return tuple(match[1].split("|"))
    return DEFAULT_BOTOCORE_SERVICES


def _link_botocore(source: Path, target: Path, services: tuple[str, ...]) -> None:
    target.mkdir()
    for child in source.iterdir():
        if child.name not in ("data", "__pycache__"):
            (target / child.name).symlink_to(child)
    data = target / "data"
    data.mkdir()
    for child in (source / "data").iterdir():
        if child.suffix == ".json" or child.name in services:
            (data / child.name).symlink_to(child)


def build_site(root: Path, target: Path) -> Path:
    """(Re)build `target` from root/requirements.txt; unchanged inputs keep it (and its bytecode)."""
    dists = deployed_distributions(root / "requirements.txt")
    services = botocore_services(root)
    plan = sorted({(str(dist.locate_file("")), entry) for dist in dists for entry in _entries(dist)})
    manifest = "\n".join([*services, *(f"{base}/{entry}" for base, entry in plan)])
    stamp = target / ".manifest"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == manifest:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for base, entry in plan:
        source = Path(base) / entry
        if not source.exists() or (target / entry).exists():
            continue
        if entry == "botocore":
            _link_botocore(source, target / entry, services)
        else:
            (target / entry).symlink_to(source)
    stamp.write_text(manifest, encoding="utf-8")
    return target
