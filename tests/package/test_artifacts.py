"""What each function's zip holds (its handler and shared/, nothing else) and what the layer that every
function uses holds (every runtime dependency, nothing else)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import subprocess
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.package.packaged import REQUIREMENTS_LAYER, ROOT, Function, Layer, Package, tag_fits, wheel_tags

# glibc of the Lambda runtime's OS (infra/pip-args.js keeps the same table for pip).
RUNTIME_GLIBC_MINOR = {"python3.10": 26, "python3.11": 26, "python3.12": 34, "python3.13": 34}
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
WHEEL_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
PYC_CHECK = Path(__file__).with_name("pyc_check.py")

# Where a Python layer's files go (Lambda mounts the layer at /opt and puts /opt/python on sys.path).
LAYER_ROOT = "python/"
# Excluded from every zip by serverless.yml's package patterns.
NOT_PACKAGED = re.compile(r"(^|/)(\.env[^/]*|[^/]*\.pem|[^/]*\.key)$")
# Top-level directories of this repository that are never deployed.
FORBIDDEN_TOP = {
    "tests",
    "local",
    "bench",
    "miniprogram",
    "infra",
    ".serverless",
    ".requirements-cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
}
# Anywhere in the zip. Bytecode is shipped (infra/bytecode.py): test_ships_the_runtimes_bytecode checks it.
FORBIDDEN_DIRS = {"node_modules", ".venv", "venv", ".git"}
FORBIDDEN_FILES = re.compile(
    r"(^|/)(\.env[^/]*|[^/]*\.key|id_rsa[^/]*|id_ed25519[^/]*|pyvenv\.cfg|serverless\.yml"
    r"|package(-lock)?\.json|Makefile|requirements[^/]*\.txt|\.DS_Store)$"
)
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def runtime_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]


@dataclass(frozen=True)
class Installed:
    """A distribution that pip installed into the layer."""

    version: str
    requires: list[str]  # its Requires-Dist lines
    files: set[str]  # its RECORD, as names in the layer's zip


def read_installed(layer: Layer) -> dict[str, Installed]:
    """{canonical name: what pip installed} from the *.dist-info of the layer's python/."""
    found: dict[str, Installed] = {}
    with zipfile.ZipFile(layer.zip_path) as archive:
        for name in archive.namelist():
            path = PurePosixPath(name)
            if len(path.parts) == 3 and name.startswith(LAYER_ROOT) and path.parent.suffix == ".dist-info":
                if path.name != "METADATA":
                    continue
                metadata = Parser().parsestr(archive.read(name).decode())
                record = archive.read(str(path.with_name("RECORD"))).decode()
                files = {LAYER_ROOT + row[0] for row in csv.reader(io.StringIO(record)) if row}
                found[canonicalize_name(metadata["Name"])] = Installed(
                    metadata["Version"], metadata.get_all("Requires-Dist") or [], files
                )
    return found


def marker_environment(runtime: str, architecture: str, extra: str = "") -> dict[str, str]:
    version = runtime.removeprefix("python")
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": WHEEL_MACHINE[architecture],
        "extra": extra,
    }


def needed(installed: Installed, extras: set[str], runtime: str, architecture: str) -> list[Requirement]:
    """What a distribution installed with `extras` requires on the runtime's platform."""
    wanted = []
    for line in installed.requires:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(
            marker.evaluate(marker_environment(runtime, architecture, extra)) for extra in {"", *extras}
        ):
            wanted.append(requirement)
    return wanted


@pytest.fixture(scope="module")
def function(function_name: str, package: Package) -> Function:
    return package.functions[function_name]


@pytest.fixture(scope="module")
def layer(package: Package) -> Layer:
    return package.requirements_layer


def packaged_sources(function: Function) -> set[str]:
    """What serverless.yml packages for `function`, read from the tree: its handler, functions/__init__.py,
    every file of shared/ (but bytecode caches and what the patterns exclude)."""
    shared = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "shared").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return {function.handler_file, "functions/__init__.py"} | {
        n for n in shared if not NOT_PACKAGED.search(n)
    }


def test_holds_its_handler_and_shared_and_nothing_else(function: Function) -> None:
    """The dependencies are in the layer: a function's zip is its own code and its bytecode only
    (the bytecode is checked by test_ships_the_runtimes_bytecode_of_every_module)."""
    names = {n for n in function.names() if not n.endswith("/")}
    sources = packaged_sources(function)
    assert "shared/api/handler.py" in sources
    assert {n for n in names if not n.endswith(".pyc")} == sources
    assert {n for n in names if n.endswith(".pyc")} <= {importlib.util.cache_from_source(n) for n in sources}


def test_every_function_runs_on_the_requirements_layer(package: Package, layer: Layer) -> None:
    """One layer, the same for every function: the dependencies are uploaded once, not once per function."""
    assert list(package.layers) == [REQUIREMENTS_LAYER]
    for function in package.functions.values():
        assert function.layers == [REQUIREMENTS_LAYER], function.name
        assert layer.runtimes == [function.runtime]
        assert layer.architectures == [function.architecture]


def test_layer_holds_python_packages_only(layer: Layer) -> None:
    names = layer.names()
    assert [n for n in names if not n.startswith(LAYER_ROOT)] == []
    tops = {PurePosixPath(n).parts[1] for n in names if n.count("/") >= 2}
    assert not tops & (FORBIDDEN_TOP | {"boto3", "s3transfer", "moto", "pytest", "test"}), tops


def test_zips_hold_nothing_that_is_not_deployed_code(package: Package) -> None:
    bad = []
    zips = [(f.zip_path, "") for f in package.functions.values()]
    zips.append((package.requirements_layer.zip_path, LAYER_ROOT))
    for zip_path, root in zips:
        with zipfile.ZipFile(zip_path) as archive:
            for name in archive.namelist():
                if name.endswith("/"):
                    continue  # a directory entry; its files are checked
                parts = PurePosixPath(name.removeprefix(root)).parts
                if (
                    parts[0] in FORBIDDEN_TOP
                    or set(parts[:-1]) & FORBIDDEN_DIRS
                    or FORBIDDEN_FILES.search(name)
                ):
                    bad.append(f"{zip_path.name}: {name}")
                elif not name.endswith((".py", ".pyc", ".pyi", ".so")) and PRIVATE_KEY.search(
                    archive.read(name)
                ):
                    # CA bundles (*.pem) are fine, private keys are not
                    bad.append(f"{zip_path.name}: {name} (a private key)")
    assert bad == [], bad


def test_layer_holds_every_runtime_dependency_at_its_pinned_version(layer: Layer) -> None:
    found = read_installed(layer)
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in found, f"{requirement} is missing from the layer"
        assert requirement.specifier.contains(found[name].version, prereleases=True), (
            requirement,
            found[name],
        )


def test_layer_holds_the_requirements_and_their_dependencies_and_nothing_else(layer: Layer) -> None:
    """Every distribution of the layer is a requirement or one's dependency (no boto3, no dev tool), every
    dependency is there at a version it accepts, and every file is one that pip installed for them
    (or its bytecode)."""
    runtime, architecture = layer.runtimes[0], layer.architectures[0]
    found = read_installed(layer)
    missing: list[str] = []
    wanted: dict[str, set[str]] = {}  # name: the extras asked for
    todo = [(requirement, "requirements.txt") for requirement in runtime_requirements()]
    while todo:
        requirement, by = todo.pop()
        name = canonicalize_name(requirement.name)
        if name not in found or not requirement.specifier.contains(found[name].version, prereleases=True):
            missing.append(f"{by} needs {requirement}")
            continue
        if name in wanted and requirement.extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | requirement.extras
        dependencies = needed(found[name], wanted[name], runtime, architecture)
        todo += [(dependency, name) for dependency in dependencies]
    assert missing == [], missing
    assert sorted(set(found) - set(wanted)) == [], "installed, but nothing requires them"
    assert not {"boto3", "s3transfer"} & set(found)  # the functions use botocore alone
    recorded = set().union(*(installed.files for installed in found.values()))
    sources = {n for n in layer.names() if n.endswith(".py")}
    bytecode = {importlib.util.cache_from_source(n) for n in sources}
    unknown = [n for n in layer.names() if not n.endswith("/") and n not in recorded | bytecode]
    assert unknown == [], unknown[:20]


def test_wheels_fit_the_runtimes_python_architecture_and_glibc(layer: Layer) -> None:
    runtime, architecture = layer.runtimes[0], layer.architectures[0]
    glibc = RUNTIME_GLIBC_MINOR[runtime]
    machine = WHEEL_MACHINE[architecture]
    python = runtime.removeprefix("python").replace(".", "")
    problems = []
    with zipfile.ZipFile(layer.zip_path) as archive:
        for name in archive.namelist():
            if name.count("/") == 2 and name.endswith(".dist-info/WHEEL"):
                tags = wheel_tags(archive.read(name).decode())
                if not any(tag_fits(tag, python, machine, glibc) for tag in tags):
                    problems.append(f"{name}: {tags}")
            elif name.endswith(".so") or ".so." in name:
                header = archive.read(name)[:20]
                if header[:4] == b"\x7fELF":
                    e_machine = int.from_bytes(header[18:20], "little")
                    if e_machine != ELF_MACHINE[architecture]:
                        problems.append(f"{name}: ELF machine {e_machine}")
    assert problems == [], problems


def check_bytecode(zip_path: Path, runtime: str, runtime_python: str) -> dict[str, Any]:
    result = subprocess.run(
        [runtime_python, "-I", "-S", str(PYC_CHECK), str(zip_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["tag"] == "cpython-" + runtime.removeprefix("python").replace(".", "")
    assert report["problems"] == [], report["problems"][:20]
    return report


def test_ships_the_runtimes_bytecode_of_every_module(function: Function, runtime_python: str) -> None:
    """Every .py (handler, shared/) has the runtime Python's unchecked-hash bytecode of exactly that
    source, and there is no other bytecode: no cold start compiles (infra/bytecode.py)."""
    report = check_bytecode(function.zip_path, function.runtime, runtime_python)
    assert report["modules"] == len({n for n in packaged_sources(function) if n.endswith(".py")}), report


def test_layer_ships_the_runtimes_bytecode_of_every_module(layer: Layer, runtime_python: str) -> None:
    """The same for the dependencies: Lambda's /opt is read-only too."""
    report = check_bytecode(layer.zip_path, layer.runtimes[0], runtime_python)
    assert report["modules"] > 500, report  # the dependencies are in


def test_fits_lambdas_size_limits(function: Function, layer: Layer) -> None:
    """Lambda's limits: 250 MB unzipped for the function and its layers together, 50 MB per zip
    uploaded directly (osls uploads through S3, but a zip that large is a mistake here)."""
    sizes = {}
    for zip_path in (function.zip_path, layer.zip_path):
        with zipfile.ZipFile(zip_path) as archive:
            sizes[zip_path] = (zip_path.stat().st_size, sum(info.file_size for info in archive.infolist()))
    for zip_path, (zipped, unzipped) in sizes.items():
        print(f"{zip_path.name}: {zipped / 1e6:.2f} MB zipped, {unzipped / 1e6:.2f} MB unzipped")
        assert zipped < LAMBDA_DIRECT_UPLOAD_LIMIT
    assert sum(unzipped for _zipped, unzipped in sizes.values()) < LAMBDA_UNZIPPED_LIMIT


def test_botocore_keeps_the_models_of_the_services_the_code_calls(layer: Layer) -> None:
    names = set(layer.names())
    for service in ("dynamodb", "ssm", "s3"):
        assert any(n.startswith(f"{LAYER_ROOT}botocore/data/{service}/") for n in names), service
    assert f"{LAYER_ROOT}botocore/data/endpoints.json" in names
    assert not any(n.startswith(f"{LAYER_ROOT}botocore/data/ec2/") for n in names)  # slimmed


def test_tag_rules() -> None:
    assert tag_fits("py3-none-any", "311", "x86_64", 26)
    assert tag_fits("cp311-abi3-manylinux2014_x86_64", "311", "x86_64", 26)
    assert tag_fits("cp39-abi3-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert tag_fits("cp311-cp311-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-manylinux_2_28_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp312-cp312-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-manylinux_2_17_aarch64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-musllinux_1_2_x86_64", "311", "x86_64", 26)
