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
    "POST /api/v1/auth/phone": "phone",
    "POST /api/v1/wechat/decrypt": "decrypt",
    "GET /api/v1/auth/session-check": "sessionCheck",
    "GET /.well-known/jwks.json": "jwks",
    "POST /api/v1/user/avatar": "avatar",
}
# Every request that matches no route (API Gateway's `$default`) goes to this small function.
DEFAULT_ROUTE = "$default"
DEFAULT_ROUTE_FUNCTION = "jwks"

# WeChat's shared access_token (read, stored, invalidated) and its refresh lease (taken, released);
# for login also the code replay claims and the per-IP counters: short-lived items, deleted too.
CACHE_USER = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
# Every route behind a bearer token reads its session and user in one TransactGetItems (GetItem on both).
LIVE_SESSION = {"SessionsTable": {"GetItem"}, "UsersTable": {"GetItem"}}
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
    "phone": {
        "SessionsTable": {"GetItem"},
        "UsersTable": {"GetItem", "UpdateItem"},  # the encrypted number
        "CacheTable": CACHE_USER,  # WeChat's access_token (getuserphonenumber)
    },
    "decrypt": LIVE_SESSION,  # the user's session_key: read only
    "sessionCheck": {**LIVE_SESSION, "CacheTable": CACHE_USER},  # WeChat's access_token (checksession)
    "jwks": {},  # keys come from its settings: no table at all
    "avatar": {
        "SessionsTable": {"GetItem"},
        "UsersTable": {"GetItem", "UpdateItem"},  # conditional on the replaced key; re-read on a race
    },
}
# Object actions, on the avatar bucket's avatars/* only (infra/avatars.yml). Reads go through CloudFront.
S3_ACCESS = {"avatar": {"PutObject", "DeleteObject"}}
SECRET_SETTINGS = [
    "WX_APPID",
    "WX_SECRET",
    "JWT_SECRET",
    "JWT_PREVIOUS_SECRETS",
    "JWT_PRIVATE_KEY",
    "JWT_PREVIOUS_PUBLIC_KEYS",
    "SESSION_KEY_ENCRYPTION_KEY",
]
# Plain settings every function gets (serverless.yml params; defaults of the dev stage).
PLAIN_SETTINGS = {
    "JWT_ALGORITHM": "HS256",
    "LOG_LEVEL": "INFO",
    "LOGIN_LIMIT_PER_OPENID": "10",
    "LOGIN_FAILURE_LIMIT_PER_IP": "30",
    "RATE_LIMIT_WINDOW_S": "60",
}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(package: Package, role_id: str) -> list[dict[str, Any]]:
    role = package.resources[role_id]
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def sub(value: Any) -> str:
    assert isinstance(value, dict) and "Fn::Sub" in value, value
    return str(value["Fn::Sub"])


def test_cfn_lint_finds_nothing(package: Package) -> None:
    templates = [PACKAGE_DIR / f"cloudformation-template-{kind}-stack.json" for kind in ("update", "create")]
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))  # the venv's, pinned in requirements-dev
    ignored = ["--ignore-checks", *IGNORED_LINT_CHECKS]
    result = subprocess.run(  # one run for both: cfn-lint takes seconds to load its specifications
        [cfn_lint, "--regions", package.region, *ignored, "--", *map(str, templates)],
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
    assert owners.pop(DEFAULT_ROUTE, None) == [DEFAULT_ROUTE_FUNCTION], owners
    assert {route: names[0] for route, names in owners.items() if route in CONTRACT_ROUTES} == CONTRACT_ROUTES
    assert not [r for r in owners if not r.split(" ", 1)[1].startswith(("/api/v1/", "/.well-known/"))], owners


def test_requests_that_match_no_route_reach_a_function_not_api_gateways_own_answer(package: Package) -> None:
    """The HTTP API's `$default` route: unknown paths and wrong methods are answered 404/405 in the
    envelope by a function (tests/integration/test_routes.py), never by API Gateway's bare
    `{"message":"Not Found"}`. Its function touches no table (DYNAMODB_ACCESS) and has no S3 access."""
    routes = [r["Properties"] for r in package.of_type("AWS::ApiGatewayV2::Route").values()]
    [default] = [route for route in routes if route["RouteKey"] == DEFAULT_ROUTE]
    integration_id = default["Target"]["Fn::Join"][1][1]["Ref"]
    integration = package.resources[integration_id]["Properties"]
    function = package.functions[DEFAULT_ROUTE_FUNCTION]
    assert integration["IntegrationUri"]["Fn::GetAtt"] == [function.logical_id, "Arn"]
    assert integration["PayloadFormatVersion"] == "2.0"
    assert DYNAMODB_ACCESS[DEFAULT_ROUTE_FUNCTION] == {} and DEFAULT_ROUTE_FUNCTION not in S3_ACCESS
    permissions = [p["Properties"] for p in package.of_type("AWS::Lambda::Permission").values()]
    assert any(p["FunctionName"] == {"Fn::GetAtt": [function.logical_id, "Arn"]} for p in permissions)


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
    s3: set[str] = set()
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
            case "s3":
                assert [sub(r) for r in resources] == ["${AvatarBucket.Arn}/avatars/*"], statement
                s3.update(a.removeprefix("s3:") for a in actions)
            case other:  # a new service: check its resources here before granting it
                pytest.fail(f"{name} may use {other}, which this test does not check yet: {statement}")
    assert dynamodb == DYNAMODB_ACCESS[name]
    assert s3 == S3_ACCESS.get(name, set())


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
        assert {k: env.get(k) for k in PLAIN_SETTINGS} == PLAIN_SETTINGS, function.name
        assert not [k for k in env if k.startswith(("AWS_", "DYNAMODB_ENDPOINT"))], env
        avatar_settings = {k for k in env if k.startswith("AVATAR_")}
        assert avatar_settings == (
            {"AVATAR_BUCKET", "AVATAR_BASE_URL"} if function.name == "avatar" else set()
        )


def test_avatar_function_gets_the_bucket_the_cdn_url_and_more_cpu(package: Package) -> None:
    function = package.functions["avatar"]
    assert function.environment["AVATAR_BUCKET"] == {"Ref": "AvatarBucket"}
    # https://<CloudFront's domain>, or https://<avatarDomain> when that parameter is set: decided by
    # CloudFormation from a stack parameter whose default is the serverless.yml param.
    condition, own, default = function.environment["AVATAR_BASE_URL"]["Fn::If"]
    assert package.template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AvatarDomain"}, ""]}]
    }
    assert package.template["Parameters"]["AvatarDomain"]["Default"] == ""
    assert (
        sub(own) == "https://${AvatarDomain}" and sub(default) == "https://${AvatarDistribution.DomainName}"
    )
    memory = {
        f.name: package.resources[f.logical_id]["Properties"]["MemorySize"]
        for f in package.functions.values()
    }
    assert memory.pop("avatar") == 1024
    assert set(memory.values()) == {512}


def test_avatar_bucket_is_private_and_read_by_its_distribution_only(package: Package) -> None:
    bucket = package.resources["AvatarBucket"]
    assert (
        bucket["DeletionPolicy"]
        == bucket["UpdateReplacePolicy"]
        == package.resources["UsersTable"]["DeletionPolicy"]
    )
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in encryption] == ["AES256"]

    oac = package.resources["AvatarOAC"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    config = package.resources["AvatarDistribution"]["Properties"]["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["AvatarBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["AvatarOAC", "Id"]}
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert behaviour["AllowedMethods"] == behaviour["CachedMethods"] == ["GET", "HEAD"]
    assert behaviour["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"  # CachingOptimized
    assert not config.get("CacheBehaviors")

    policies = package.of_type("AWS::S3::BucketPolicy").values()  # also osls's deployment bucket's
    [policy] = [p for p in policies if p["Properties"]["Bucket"] == {"Ref": "AvatarBucket"}]
    allow, deny = policy["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject" and sub(allow["Resource"]) == "${AvatarBucket.Arn}/avatars/*"
    source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert (
        sub(source)
        == "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${AvatarDistribution}"
    )
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Nothing else may read the bucket: the only roles with S3 actions are in S3_ACCESS.
    for role_id in package.of_type("AWS::IAM::Role"):
        for statement in statements(package, role_id):
            for action in listed(statement["Action"]):
                assert action not in ("s3:GetObject", "s3:ListBucket", "s3:*"), (role_id, statement)


def test_http_api_is_throttled_and_everything_logs_with_retention(package: Package) -> None:
    stage = package.resources["HttpApiStage"]["Properties"]
    settings = stage["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert "AccessLogSettings" in stage
    groups = package.of_type("AWS::Logs::LogGroup")
    assert len(groups) == len(package.functions) + 1  # one per function and the API's access log
    assert all(group["Properties"].get("RetentionInDays") for group in groups.values())
