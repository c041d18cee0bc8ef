"""Build (and deploy) the Tencent SCF code bundle: the same functions/ and shared/ as on AWS Lambda.

    python infra/tencent/build.py build     # -> infra/tencent/.build/ (what SCF runs)
    python infra/tencent/build.py deploy    # build, then `scf deploy` once per function
    python infra/tencent/build.py routes    # the function -> path table it deploys

The bundle holds the runtime dependencies of requirements.txt as wheels for SCF's Python 3.10 on
x86_64 Linux (manylinux2014, glibc 2.17, unless --glibc says more), functions/ and shared/, and one
entry module per function at the top level (`scf_login.py`: `from functions.login import handler`,
`scf_sessionCheck.py`: `from functions.session_check import handler`), because SCF's handler setting
is `file.function` with no directory. The functions, their handlers, routes and memory sizes are read
from serverless.yml, so AWS and Tencent deploy the same set.

As on AWS (infra/bytecode.py), every module's bytecode is compiled into the bundle, by a Python 3.10
(`python3.10` on PATH, one installed by pyenv, or --bytecode-python) with `unchecked-hash`
invalidation, so that SCF's cold starts load it instead of compiling every module from source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = HERE / ".build"
PYTHON_VERSION = "3.10"  # SCF's newest Python runtime


def aws_config() -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]  # PyYAML is in the venv (moto's dependency)

    config: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text())
    return config


@dataclass(frozen=True)
class ScfFunction:
    """One function of serverless.yml, as SCF deploys it."""

    name: str  # serverless.yml key: login, sessionCheck, ...
    path: str  # its one API path: /api/v1/auth/session-check
    module: str  # the module of its handler: functions.session_check
    attribute: str  # handler
    memory_mb: int  # its memorySize, else the provider's


def scf_functions() -> dict[str, ScfFunction]:
    """Every function of serverless.yml, with its one path (SCF's API is `ANY <path>`)."""
    config = aws_config()
    default_memory = int(config["provider"].get("memorySize", 512))
    table: dict[str, ScfFunction] = {}
    for name, function in config["functions"].items():
        # Not the `$default` catch-all (`httpApi: "*"`): SCF has no such route; its API answers unknown paths.
        paths = {
            event["httpApi"]["path"]
            for event in function.get("events", [])
            if isinstance(event.get("httpApi"), dict)
        }
        if len(paths) != 1:
            raise SystemExit(f"{name}: SCF deploys one API path per function (method ANY), found {paths}")
        module, _, attribute = str(function["handler"]).rpartition(".")
        table[name] = ScfFunction(
            name=name,
            path=paths.pop(),
            module=module.replace("/", "."),
            attribute=attribute,
            memory_mb=int(function.get("memorySize", default_memory)),
        )
    return table


def platforms(glibc_minor: int) -> list[str]:
    tags = ["manylinux2014_x86_64"] + [f"manylinux_2_{m}_x86_64" for m in range(17, glibc_minor + 1)]
    return [option for tag in tags for option in ("--platform", tag)]


def pip_install(glibc_minor: int, *arguments: str) -> None:
    subprocess.run(  # noqa: S603 (fixed arguments)
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            *platforms(glibc_minor),
            "--target",
            str(BUILD),
            *arguments,
        ],
        check=True,
    )


def unmet_requirements() -> list[str]:
    """Requirements of the installed distributions that Python 3.10 needs but are not there.

    pip evaluates environment markers for the interpreter that runs it, not for --python-version:
    from Python 3.11 it skips `exceptiongroup; python_version < "3.11"`, which anyio needs on 3.10.
    """
    from email.parser import Parser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {
        "python_version": PYTHON_VERSION,
        "python_full_version": f"{PYTHON_VERSION}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "extra": "",
    }
    installed, wanted = set(), []
    for metadata_file in BUILD.glob("*.dist-info/METADATA"):
        metadata = Parser().parsestr(metadata_file.read_text(encoding="utf-8"))
        installed.add(canonicalize_name(metadata["Name"]))
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                wanted.append(requirement)
    # Without the marker: pip would evaluate it for its own interpreter again and skip it.
    return sorted(
        {
            f"{r.name}{'[' + ','.join(sorted(r.extras)) + ']' if r.extras else ''}{r.specifier}"
            for r in wanted
            if canonicalize_name(r.name) not in installed
        }
    )


def bytecode_python(given: str | None) -> str:
    """An interpreter of SCF's Python version: `given`, else python3.10 on PATH, else pyenv's."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [given] if given else [f"python{PYTHON_VERSION}"]
    if not given:
        candidates += [str(p) for p in sorted(pyenv.glob(f"{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"))]
    for candidate in candidates:
        try:
            result = subprocess.run(  # noqa: S603 (an interpreter, fixed arguments)
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError:
            continue
        if result.returncode == 0 and result.stdout.strip() == PYTHON_VERSION:
            return candidate
    raise SystemExit(
        f"compiling the bundle's bytecode needs Python {PYTHON_VERSION} (SCF's runtime): install it "
        "or pass --bytecode-python"
    )


def build(glibc_minor: int, python: str | None = None) -> None:
    compiler = bytecode_python(python)
    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir()
    pip_install(glibc_minor, "--requirement", str(ROOT / "requirements.txt"))
    for _ in range(5):
        missing = unmet_requirements()
        if not missing:
            break
        print(f"adding what Python {PYTHON_VERSION} needs besides: {', '.join(missing)}")
        pip_install(glibc_minor, "--no-deps", *missing)  # their own needs: next round
    else:
        raise SystemExit(f"unmet requirements: {unmet_requirements()}")
    shutil.rmtree(BUILD / "bin", ignore_errors=True)
    # As on AWS: only the botocore service models the code uses (custom.botocoreServices).
    keep = set(aws_config()["custom"]["botocoreServices"].split("|"))
    for model in (BUILD / "botocore" / "data").iterdir():
        if model.is_dir() and model.name not in keep:
            shutil.rmtree(model)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("functions", "shared"):
        shutil.copytree(ROOT / package, BUILD / package, ignore=ignore)
    for name, function in scf_functions().items():
        (BUILD / f"scf_{name}.py").write_text(
            f'"""SCF entry point of the {name} function (SCF handlers cannot name a directory)."""\n\n'
            f"from {function.module} import app, {function.attribute}\n\n"
            f'__all__ = ["app", "{function.attribute}"]\n'
        )
    # unchecked-hash: SCF unzips the code without exact mtimes; -s: the bundle's relative paths.
    compileall = ["-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", "-s", str(BUILD)]
    subprocess.run([compiler, "-I", *compileall, str(BUILD)], check=True)  # noqa: S603
    print(f"built {BUILD.relative_to(ROOT)} for Python {PYTHON_VERSION} (glibc <= 2.{glibc_minor}, bytecode)")


def deploy(glibc_minor: int, scf: str, python: str | None) -> None:
    build(glibc_minor, python)
    for name, function in scf_functions().items():
        print(f"deploying {name}: ANY {function.path} ({function.memory_mb} MB)", flush=True)
        env = {
            **os.environ,
            "FUNCTION": name,
            "ROUTE_PATH": function.path,
            "MEMORY_SIZE": str(function.memory_mb),
        }
        subprocess.run([scf, "deploy"], cwd=HERE, env=env, check=True)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "deploy", "routes"])
    parser.add_argument("--glibc", default="2.17", help="newest glibc of the SCF runtime (default 2.17)")
    parser.add_argument("--scf", default="scf", help="the serverless-cloud-framework CLI (default: scf)")
    parser.add_argument(
        "--bytecode-python", help=f"the Python {PYTHON_VERSION} that compiles the bundle's bytecode"
    )
    args = parser.parse_args()
    glibc_minor = int(args.glibc.split(".")[1])
    if args.command == "routes":
        for name, function in scf_functions().items():
            print(f"{name}\tscf_{name}.{function.attribute}\tANY {function.path}\t{function.memory_mb} MB")
    elif args.command == "build":
        build(glibc_minor, args.bytecode_python)
    else:
        deploy(glibc_minor, args.scf, args.bytecode_python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
