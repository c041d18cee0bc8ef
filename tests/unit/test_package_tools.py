"""The packaging tools on small trees: infra/bytecode.py (reproducible zips with bytecode, the requirements
layer) and infra/package_inputs.py (what makes `make package` build again). The real package is checked
by tests/package."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BYTECODE = ROOT / "infra" / "bytecode.py"
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# A set constant: up to Python 3.10, its order in the bytecode follows the string hashes (the seed).
SOURCE = b'def known(name):\n    return name in {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}\n'


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "infra" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bytecode(*arguments: str | Path, seed: str | None = "0") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONHASHSEED"}
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    command = [sys.executable, str(BYTECODE), "--python-version", VERSION, *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def installed_requirements(directory: Path) -> Path:
    """A directory like serverless-python-requirements' .serverless/requirements."""
    (directory / "pkg").mkdir(parents=True)
    (directory / "pkg" / "__init__.py").write_bytes(b"")
    (directory / "pkg" / "names.py").write_bytes(SOURCE)
    (directory / "pkg" / "data.json").write_bytes(b"{}")
    (directory / "pkg" / "_native.so").write_bytes(b"\x7fELF")
    (directory / "pkg" / "_native.so").chmod(0o755)
    (directory / "pkg-1.0.dist-info").mkdir()
    (directory / "pkg-1.0.dist-info" / "METADATA").write_bytes(b"Name: pkg\nVersion: 1.0\n")
    return directory


def test_the_layer_zip_holds_the_packages_under_python_with_their_bytecode(tmp_path: Path) -> None:
    source = installed_requirements(tmp_path / "requirements")
    layer = tmp_path / "layer.zip"
    result = bytecode("--layer", source, layer)
    assert result.returncode == 0, result.stderr
    assert "layer.zip: bytecode of 2 modules" in result.stdout
    with zipfile.ZipFile(layer) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        assert sorted(infos) == list(infos)  # sorted entries
        assert set(infos) == {
            "python/pkg/__init__.py",
            "python/pkg/names.py",
            "python/pkg/data.json",
            "python/pkg/_native.so",
            "python/pkg-1.0.dist-info/METADATA",
            f"python/pkg/__pycache__/__init__.{sys.implementation.cache_tag}.pyc",
            f"python/pkg/__pycache__/names.{sys.implementation.cache_tag}.pyc",
        }
        assert {info.date_time for info in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
        assert infos["python/pkg/_native.so"].external_attr >> 16 & 0o777 == 0o755
        pyc = archive.read(f"python/pkg/__pycache__/names.{sys.implementation.cache_tag}.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # unchecked-hash
    assert pyc[8:16] == importlib.util.source_hash(SOURCE)


def test_the_same_requirements_give_the_same_layer_zip(tmp_path: Path) -> None:
    """Whatever the files' times (pip writes its install time): osls then skips uploading the layer."""
    source = installed_requirements(tmp_path / "requirements")
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    assert bytecode("--layer", source, first).returncode == 0
    os.utime(source / "pkg" / "names.py", (1_000_000_000, 1_000_000_000))
    assert bytecode("--layer", source, second).returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_a_random_hash_seed_is_refused(tmp_path: Path) -> None:
    source = installed_requirements(tmp_path / "requirements")
    result = bytecode("--layer", source, tmp_path / "layer.zip", seed=None)
    assert result.returncode != 0 and "PYTHONHASHSEED=0" in result.stderr
    assert not (tmp_path / "layer.zip").exists()


def test_a_function_zip_gets_its_bytecode_once(tmp_path: Path) -> None:
    """As osls zips a function: its code only; rewritten sorted, dated and with the bytecode."""
    function = tmp_path / "login.zip"
    with zipfile.ZipFile(function, "w") as archive:
        archive.writestr(zipfile.ZipInfo("shared/names.py", (2024, 5, 6, 7, 8, 10)), SOURCE)
        archive.writestr(zipfile.ZipInfo("functions/login.py", (2024, 5, 6, 7, 8, 10)), b"handler = None\n")
        archive.writestr(zipfile.ZipInfo("functions/__init__.py", (2024, 5, 6, 7, 8, 10)), b"")
    result = bytecode(function)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(function) as archive:
        names = archive.namelist()
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    tag = sys.implementation.cache_tag
    assert names == sorted(names)
    assert set(names) == {
        "functions/__init__.py",
        "functions/login.py",
        "shared/names.py",
        f"functions/__pycache__/__init__.{tag}.pyc",
        f"functions/__pycache__/login.{tag}.pyc",
        f"shared/__pycache__/names.{tag}.pyc",
    }
    again = bytecode(function)
    assert again.returncode != 0 and "already holds bytecode" in again.stderr


def test_a_module_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    source = installed_requirements(tmp_path / "requirements")
    (source / "pkg" / "broken.py").write_bytes(b"def broken(:\n")
    result = bytecode("--layer", source, tmp_path / "layer.zip")
    assert result.returncode != 0 and "python/pkg/broken.py" in result.stderr


def service_tree(root: Path) -> Path:
    for name, content in {
        "requirements.txt": "fastapi==1\n",
        "serverless.yml": "service: x\n",
        "package.json": "{}",
        "package-lock.json": "{}",
        "functions/__init__.py": "",
        "functions/login.py": "handler = None\n",
        "shared/__init__.py": "",
        "shared/api/app.py": "app = None\n",
        "infra/bytecode.js": "",
        "infra/iam.yml": "Resources: {}\n",
        "infra/DEPLOY.md": "# not an input\n",
        "infra/tencent/build.py": "",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


@pytest.mark.parametrize("target", ["aws", "scf"])
def test_package_inputs_follow_contents_not_times(tmp_path: Path, target: str) -> None:
    inputs = load("package_inputs")
    root = service_tree(tmp_path)
    before = inputs.current(target, root)
    os.utime(root / "shared" / "api" / "app.py", (1_000_000_000, 1_000_000_000))  # a checkout's touch
    (root / "shared" / "__pycache__").mkdir()
    (root / "shared" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"local bytecode")
    (root / "shared" / ".env").write_text("SECRET=1\n")  # never packaged
    (root / "infra" / "DEPLOY.md").write_text("# edited\n")
    (root / "infra" / "tencent" / ".build").mkdir()
    (root / "infra" / "tencent" / ".build" / "out.py").write_text("built\n")
    assert inputs.current(target, root) == before

    (root / "shared" / "api" / "app.py").write_text("app = 1\n")
    changed = inputs.current(target, root)
    assert changed != before
    (root / "shared" / "api" / "app.py").write_text("app = None\n")
    assert inputs.current(target, root) == before
    (root / "shared" / "api" / "routes.py").write_text("")  # a new module
    assert inputs.current(target, root) != before
    (root / "shared" / "api" / "routes.py").unlink()
    (root / "requirements.txt").write_text("fastapi==2\n")
    assert inputs.current(target, root) != before


def test_each_package_follows_its_own_build_files(tmp_path: Path) -> None:
    inputs = load("package_inputs")
    root = service_tree(tmp_path)
    aws, scf = inputs.current("aws", root), inputs.current("scf", root)
    (root / "infra" / "tencent" / "build.py").write_text("# changed\n")
    assert (inputs.current("aws", root), inputs.current("scf", root) != scf) == (aws, True)
    (root / "infra" / "bytecode.js").write_text("// changed\n")
    assert (inputs.current("aws", root) != aws, inputs.current("scf", root) != scf) == (True, True)
    scf = inputs.current("scf", root)
    (root / "infra" / "bytecode.js").write_text("// changed again\n")
    assert inputs.current("scf", root) == scf
