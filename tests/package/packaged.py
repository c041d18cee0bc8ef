"""What `make package` (osls package) left in .serverless/, read from the generated template.

The template is the ground truth: which functions exist, their handler, runtime, architecture,
environment, role and routes, and which zip is uploaded for each. The tests here check and run
exactly what `sls deploy` would upload.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / ".serverless"
TEMPLATE = PACKAGE_DIR / "cloudformation-template-update-stack.json"
STATE = PACKAGE_DIR / "serverless-state.json"

# The digest of the inputs `make package` built .serverless/ from (infra/package_inputs.py).
INPUTS_DIGEST = PACKAGE_DIR / "inputs.sha256"
REQUIREMENTS_LAYER = "PythonRequirementsLambdaLayer"
# Set by `make test-package`: a missing or stale package is then a failure, not a skip.
REQUIRE_ENV = "WX_LOGIN_REQUIRE_PACKAGE"


@dataclass(frozen=True)
class Function:
    """One Lambda function of the template."""

    name: str  # serverless.yml key: login, profile, ...
    logical_id: str  # LoginLambdaFunction
    handler: str  # functions/login.handler
    runtime: str
    architecture: str
    environment: dict[str, Any]  # values are strings, or references (AVATAR_BUCKET: {"Ref": ...})
    role_id: str  # logical id of its IAM role
    zip_path: Path
    layers: list[str]  # logical ids of its layers: [PythonRequirementsLambdaLayer]
    routes: list[str] = field(default_factory=list)  # "POST /api/v1/auth/wx-login"

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0].replace("/", ".")

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    @property
    def handler_file(self) -> str:
        return self.handler.rsplit(".", 1)[0] + ".py"

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.zip_path) as archive:
            return archive.namelist()


@dataclass(frozen=True)
class Layer:
    """One Lambda layer of the template: a zip that Lambda unpacks into /opt."""

    logical_id: str  # PythonRequirementsLambdaLayer
    runtimes: list[str]
    architectures: list[str]
    zip_path: Path

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.zip_path) as archive:
            return archive.namelist()


class Package:
    def __init__(self) -> None:
        self.template: dict[str, Any] = json.loads(TEMPLATE.read_text())
        self.state: dict[str, Any] = json.loads(STATE.read_text())

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def of_type(self, kind: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    @property
    def region(self) -> str:
        return str(self.state["service"]["provider"]["region"])

    @cached_property
    def functions(self) -> dict[str, Function]:
        by_logical_id: dict[str, Function] = {}
        names = {
            f"{name[0].upper()}{name[1:]}LambdaFunction": name for name in self.state["service"]["functions"]
        }
        for logical_id, resource in self.of_type("AWS::Lambda::Function").items():
            props = resource["Properties"]
            role = props["Role"]
            by_logical_id[logical_id] = Function(
                name=names[logical_id],
                logical_id=logical_id,
                handler=props["Handler"],
                runtime=props["Runtime"],
                architecture=props.get("Architectures", ["x86_64"])[0],
                environment=dict(props.get("Environment", {}).get("Variables", {})),
                role_id=role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else "",
                zip_path=PACKAGE_DIR / Path(props["Code"]["S3Key"]).name,
                layers=[layer["Ref"] for layer in props.get("Layers", [])],
            )
        integrations = {
            logical_id: resource["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
            for logical_id, resource in self.of_type("AWS::ApiGatewayV2::Integration").items()
        }
        for route in self.of_type("AWS::ApiGatewayV2::Route").values():
            target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
            by_logical_id[integrations[target]].routes.append(route["Properties"]["RouteKey"])
        return {function.name: function for function in by_logical_id.values()}

    @cached_property
    def layers(self) -> dict[str, Layer]:
        return {
            logical_id: Layer(
                logical_id=logical_id,
                runtimes=resource["Properties"].get("CompatibleRuntimes", []),
                architectures=resource["Properties"].get("CompatibleArchitectures", []),
                zip_path=PACKAGE_DIR / Path(resource["Properties"]["Content"]["S3Key"]).name,
            )
            for logical_id, resource in self.of_type("AWS::Lambda::LayerVersion").items()
        }

    @property
    def requirements_layer(self) -> Layer:
        """The layer of the runtime dependencies (serverless-python-requirements, `layer:`)."""
        return self.layers[REQUIREMENTS_LAYER]

    def table_name(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Properties"]["TableName"])


def inputs_digest() -> str:
    """The digest of the inputs of `osls package` in the working tree, as `make package` computes it."""
    spec = importlib.util.spec_from_file_location("package_inputs", ROOT / "infra" / "package_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    digest: str = module.current("aws")
    return digest


def stale_reason() -> str | None:
    """Why .serverless/ does not hold a package of the current working tree, or None if it does."""
    if not TEMPLATE.exists() or not STATE.exists():
        return "no package in .serverless/ (run `make package`)"
    if not INPUTS_DIGEST.exists():
        return ".serverless/ was not built by `make package` (no inputs.sha256): run `make package`"
    if INPUTS_DIGEST.read_text().strip() != inputs_digest():
        return "the package was built from other sources than the working tree's (run `make package`)"
    package = Package()
    functions, layers = package.functions.values(), package.layers.values()
    for zip_path in [*(f.zip_path for f in functions), *(layer.zip_path for layer in layers)]:
        if not zip_path.exists():
            return f"{zip_path.name} is missing (run `make package`)"
    return None


def package_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def wheel_tags(wheel_file: str) -> list[str]:
    """The `Tag:` lines of a *.dist-info/WHEEL file."""
    return [line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")]


def tag_fits(tag: str, python: str, machine: str, glibc: int) -> bool:
    """Whether a wheel tag runs on CPython `python` ("311"), `machine`, glibc 2.`glibc`."""
    interpreter, abi, platform_tag = tag.split("-")
    if interpreter not in ("py3", f"cp{python}") and not (abi == "abi3" and interpreter.startswith("cp3")):
        return False
    if interpreter.startswith("cp3") and abi == "abi3" and int(interpreter[3:]) > int(python[1:]):
        return False
    if platform_tag == "any":
        return True
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform_tag) or re.fullmatch(
        r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", platform_tag
    )
    if not match:
        return False
    minor = legacy[match.group(1)] if match.group(1) in legacy else int(match.group(1))
    return match.group(2) == machine and minor <= glibc
