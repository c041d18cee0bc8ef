"""What each function's zip holds: its handler, shared/, every runtime dependency, and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.package.packaged import ROOT, Function, Package, tag_fits, wheel_tags

# glibc of the Lambda runtime's OS (infra/pip-args.js keeps the same table for pip).
RUNTIME_GLIBC_MINOR = {"python3.10": 26, "python3.11": 26, "python3.12": 34, "python3.13": 34}
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
WHEEL_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
PYC_CHECK = Path(__file__).with_name("pyc_check.py")

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


def read_installed(function: Function) -> dict[str, tuple[str, str, list[str]]]:
    found: dict[str, tuple[str, str, list[str]]] = {}
    with zipfile.ZipFile(function.zip_path) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                metadata = Parser().parsestr(archive.read(name).decode())
                requires = metadata.get_all("Requires-Dist") or []
                found[canonicalize_name(metadata["Name"])] = (
                    metadata["Version"],
                    name.split("/")[0],
                    requires,
                )
    return found


def marker_environment(function: Function) -> dict[str, str]:
    version = function.runtime.removeprefix("python")
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": WHEEL_MACHINE[function.architecture],
        "extra": "",
    }


@pytest.fixture(scope="module")
def function(function_name: str, package: Package) -> Function:
    return package.functions[function_name]


def test_holds_its_handler_and_all_of_shared(function: Function, package: Package) -> None:
    names = set(function.names())
    assert function.handler_file in names
    assert "functions/__init__.py" in names
    for source in sorted((ROOT / "shared").rglob("*.py")):
        assert source.relative_to(ROOT).as_posix() in names, source
    others = {f.handler_file for f in package.functions.values()} - {function.handler_file}
    assert not others & names, f"other functions' handlers in {function.zip_path.name}: {others & names}"
    # (their bytecode: test_ships_the_runtimes_bytecode_of_every_module allows none without its .py)
    extra = {n for n in names if n.startswith("functions/") and not n.endswith(".pyc")} - {
        function.handler_file,
        "functions/__init__.py",
    }
    assert not extra, extra


def test_holds_nothing_that_is_not_deployed_code(function: Function) -> None:
    bad = []
    with zipfile.ZipFile(function.zip_path) as archive:
        for name in archive.namelist():
            parts = PurePosixPath(name).parts
            if parts[0] in FORBIDDEN_TOP or set(parts[:-1]) & FORBIDDEN_DIRS or FORBIDDEN_FILES.search(name):
                bad.append(name)
            elif not name.endswith((".py", ".pyc", ".pyi", ".so")) and PRIVATE_KEY.search(archive.read(name)):
                # CA bundles (*.pem) are fine, private keys are not
                bad.append(f"{name} (a private key)")
    assert bad == [], bad


def test_holds_every_runtime_dependency_at_its_pinned_version(function: Function) -> None:
    found = read_installed(function)
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in found, f"{requirement} is missing from {function.zip_path.name}"
        assert requirement.specifier.contains(found[name][0], prereleases=True), (requirement, found[name])


def test_dependencies_of_dependencies_are_there_too(function: Function) -> None:
    found = read_installed(function)
    environment = marker_environment(function)
    missing = []
    for name, (_version, _dist_info, requires) in found.items():
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue  # an extra we do not install, or another platform
            dependency = canonicalize_name(requirement.name)
            if dependency not in found or not requirement.specifier.contains(found[dependency][0], True):
                missing.append(f"{name} needs {requirement}")
    assert missing == [], missing


def test_wheels_fit_the_runtimes_python_architecture_and_glibc(function: Function) -> None:
    glibc = RUNTIME_GLIBC_MINOR[function.runtime]
    machine = WHEEL_MACHINE[function.architecture]
    python = function.runtime.removeprefix("python").replace(".", "")
    problems = []
    with zipfile.ZipFile(function.zip_path) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/WHEEL"):
                tags = wheel_tags(archive.read(name).decode())
                if not any(tag_fits(tag, python, machine, glibc) for tag in tags):
                    problems.append(f"{name}: {tags}")
            elif name.endswith(".so") or ".so." in name:
                header = archive.read(name)[:20]
                if header[:4] == b"\x7fELF":
                    e_machine = int.from_bytes(header[18:20], "little")
                    if e_machine != ELF_MACHINE[function.architecture]:
                        problems.append(f"{name}: ELF machine {e_machine}")
    assert problems == [], problems


def test_ships_the_runtimes_bytecode_of_every_module(function: Function, runtime_python: str) -> None:
    """Every .py (handler, shared/, dependencies) has the runtime Python's unchecked-hash bytecode of
    exactly that source, and there is no other bytecode: no cold start compiles (infra/bytecode.py)."""
    result = subprocess.run(
        [runtime_python, "-I", "-S", str(PYC_CHECK), str(function.zip_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["tag"] == "cpython-" + function.runtime.removeprefix("python").replace(".", "")
    assert report["modules"] > 500, report  # the dependencies are in
    assert report["problems"] == [], report["problems"][:20]


def test_fits_lambdas_size_limits(function: Function) -> None:
    with zipfile.ZipFile(function.zip_path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    zipped = function.zip_path.stat().st_size
    print(f"{function.zip_path.name}: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
    assert unzipped < LAMBDA_UNZIPPED_LIMIT
    assert zipped < LAMBDA_DIRECT_UPLOAD_LIMIT


def test_botocore_keeps_the_models_of_the_services_the_code_calls(function: Function) -> None:
    names = set(function.names())
    for service in ("dynamodb", "ssm"):
        assert any(n.startswith(f"botocore/data/{service}/") for n in names), service
    assert "botocore/data/endpoints.json" in names


def test_tag_rules() -> None:
    assert tag_fits("py3-none-any", "311", "x86_64", 26)
    assert tag_fits("cp311-abi3-manylinux2014_x86_64", "311", "x86_64", 26)
    assert tag_fits("cp39-abi3-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert tag_fits("cp311-cp311-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-manylinux_2_28_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp312-cp312-manylinux_2_17_x86_64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-manylinux_2_17_aarch64", "311", "x86_64", 26)
    assert not tag_fits("cp311-cp311-musllinux_1_2_x86_64", "311", "x86_64", 26)
