"""The generated CloudFormation template: cfn-lint, routes, least-privilege roles, tables, settings."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.package.packaged import PACKAGE_DIR, Package

# Raised on the framework's own resources, not ours: osls adds a DependsOn next to a Ref/GetAtt
# that already implies it (harmless; CloudFormation dedupes).
IGNORED_LINT_CHECKS = ["W3005"]

CONTRACT_ROUTES = {
    "POST /api/v1/auth/wx-login": "login",
    "POST /api/v1/auth/refresh": "refresh",
    "POST /api/v1/auth/logout": "logout",
    "GET /api/v1/user/profile": "profile",
    "PATCH /api/v1/user/profile": "profile",
}

# Replay claims, WeChat's shared access_token and its refresh lease: short-lived items, deleted too.
CACHE_USER = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
# The DynamoDB item actions each function may perform, by table: least privilege, as written down in
# infra/iam.yml. A new need shows up as AccessDenied in test_smoke.py; an excess shows up here.
DYNAMODB_ACCESS = {
    "login": {
        "UsersTable": {"GetItem", "PutItem", "UpdateItem"},
        "SessionsTable": {"PutItem"},
        "CacheTable": CACHE_USER,
    },
    "refresh": {"SessionsTable": {"GetItem", "UpdateItem"}, "UsersTable": {"GetItem"}},
    "logout": {"SessionsTable": {"GetItem", "UpdateItem"}, "UsersTable": {"GetItem", "UpdateItem"}},
    "profile": {
        "SessionsTable": {"GetItem"},
        "UsersTable": {"GetItem", "UpdateItem"},
        "CacheTable": CACHE_USER,  # WeChat's access_token (content-security check of a PATCH)
    },
}
SECRET_SETTINGS = [
    "WX_APPID",
    "WX_SECRET",
    "JWT_SECRET",
    "JWT_PREVIOUS_SECRETS",
    "SESSION_KEY_ENCRYPTION_KEY",
]


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(package: Package, role_id: str) -> list[dict[str, Any]]:
    role = package.resources[role_id]
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def sub(value: Any) -> str:
    assert isinstance(value, dict) and "Fn::Sub" in value, value
    return str(value["Fn::Sub"])


@pytest.mark.parametrize("template", ["update-stack", "create-stack"])
def test_cfn_lint_finds_nothing(package: Package, template: str) -> None:
    path = PACKAGE_DIR / f"cloudformation-template-{template}.json"
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))  # the venv's, pinned in requirements-dev
    ignored = ["--ignore-checks", *IGNORED_LINT_CHECKS]
    result = subprocess.run(
        [cfn_lint, "--regions", package.region, *ignored, "--", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit code bits: 2 errors, 4 warnings, 8 informational. None of them, apart from the ignored.
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_contract_route_belongs_to_exactly_one_function(package: Package) -> None:
    owners: dict[str, list[str]] = {}
    for name, function in package.functions.items():
        assert function.routes, f"{name} has no HTTP API route"
        for route in function.routes:
            owners.setdefault(route, []).append(name)
    assert all(len(names) == 1 for names in owners.values()), owners
    assert {route: names[0] for route, names in owners.items() if route in CONTRACT_ROUTES} == CONTRACT_ROUTES
    assert not [r for r in owners if not r.split(" ", 1)[1].startswith(("/api/v1/", "/.well-known/"))], owners


def test_runtime_and_architecture_match_this_machine(package: Package) -> None:
    """So that test_smoke.py imports the very wheels that Lambda will load."""
    machine = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    for function in package.functions.values():
        assert function.architecture == machine, function.name
        assert function.runtime == f"python{sys.version_info.major}.{sys.version_info.minor}", function.name


def test_each_function_has_a_role_of_its_own(package: Package) -> None:
    roles = [function.role_id for function in package.functions.values()]
    assert all(roles) and len(set(roles)) == len(roles), roles
    assert set(package.of_type("AWS::IAM::Role")) == set(roles), "a role that no function uses"


def test_roles_grant_only_what_their_function_does(package: Package, function_name: str) -> None:
    name = function_name
    assert name in DYNAMODB_ACCESS, f"write down the DynamoDB access of {name} in DYNAMODB_ACCESS"
    function = package.functions[name]
    stage = function.environment["STAGE"]
    service = package.state["service"]["service"]
    dynamodb: dict[str, set[str]] = {}
    for statement in statements(package, function.role_id):
        assert statement["Effect"] == "Allow"
        actions = listed(statement["Action"])
        assert not any("*" in action for action in actions), statement
        services = {action.split(":")[0] for action in actions}
        assert len(services) == 1, statement
        resources = listed(statement["Resource"])
        match services.pop():
            case "dynamodb":
                for resource in resources:
                    table, attribute = resource["Fn::GetAtt"]
                    assert attribute == "Arn" and package.resources[table]["Type"] == "AWS::DynamoDB::Table"
                    dynamodb.setdefault(table, set()).update(a.removeprefix("dynamodb:") for a in actions)
            case "logs":
                assert set(actions) <= {"logs:CreateLogStream", "logs:PutLogEvents"}
                assert [sub(r) for r in resources] == [
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                    f"/aws/lambda/{service}-{stage}-{name}:*"
                ]
            case "ssm":
                assert actions == ["ssm:GetParameters"]
                assert [sub(r) for r in resources] == [
                    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                    f"/{service}/{stage}/*"
                ]
            case "kms":
                assert actions == ["kms:Decrypt"]
                condition = statement["Condition"]["StringEquals"]["kms:ViaService"]
                assert sub(condition) == "ssm.${AWS::Region}.amazonaws.com"
            case other:  # a new service: check its resources here before granting it
                pytest.fail(f"{name} may use {other}, which this test does not check yet: {statement}")
    assert dynamodb == DYNAMODB_ACCESS[name]


def test_tables_are_on_demand_recoverable_encrypted_and_expire(package: Package) -> None:
    tables = {k: v["Properties"] for k, v in package.of_type("AWS::DynamoDB::Table").items()}
    keys = {k: [(a["AttributeName"], a["KeyType"]) for a in p["KeySchema"]] for k, p in tables.items()}
    assert keys == {
        "UsersTable": [("openid", "HASH")],
        "SessionsTable": [("sid", "HASH")],
        "CacheTable": [("pk", "HASH")],
    }
    for logical_id, props in tables.items():
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, logical_id
        assert props["SSESpecification"] == {"SSEEnabled": True}, logical_id
        resource = package.resources[logical_id]
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"], logical_id
    for logical_id in ("SessionsTable", "CacheTable"):
        assert tables[logical_id]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_functions_get_table_names_and_ssm_parameter_names_never_secrets(package: Package) -> None:
    text = json.dumps(package.template)
    assert "{{resolve:" not in text
    for function in package.functions.values():
        env = function.environment
        stage, service = env["STAGE"], package.state["service"]["service"]
        assert stage != "local", "the local stage has random secrets and no SSM"
        assert env["USERS_TABLE"] == package.table_name("UsersTable")
        assert env["SESSIONS_TABLE"] == package.table_name("SessionsTable")
        assert env["CACHE_TABLE"] == package.table_name("CacheTable")
        assert env["WX_API_BASE"].startswith("https://")
        for setting in SECRET_SETTINGS:
            assert setting not in env, f"{function.name}: {setting} is a value in the template"
            assert env[f"{setting}_SSM"] == f"/{service}/{stage}/{setting}"
        assert not [k for k in env if k.startswith(("AWS_", "DYNAMODB_ENDPOINT"))], env


def test_http_api_is_throttled_and_everything_logs_with_retention(package: Package) -> None:
    stage = package.resources["HttpApiStage"]["Properties"]
    settings = stage["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert "AccessLogSettings" in stage
    groups = package.of_type("AWS::Logs::LogGroup")
    assert len(groups) == len(package.functions) + 1  # one per function and the API's access log
    assert all(group["Properties"].get("RetentionInDays") for group in groups.values())
