"""Helpers of the smoke tests: the AWS side in moto, the secrets, the contract's envelopes."""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from tests.package.conftest import SMOKE_APPID, SMOKE_SECRET, FakeWeChat, MotoServer
from tests.package.packaged import ROOT, Package

SECRETS = {
    "WX_APPID": SMOKE_APPID,
    "WX_SECRET": SMOKE_SECRET,
    "JWT_SECRET": secrets.token_urlsafe(48),
    "SESSION_KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
}
ENVELOPE_ERROR_KEYS = {"code", "message", "error", "reason", "timestamp"}
ENVELOPE_OK_KEYS = {"code", "message", "data", "timestamp"}
# This machine's ~/.aws files (a developer's profile, region, keys) must not reach the functions.
NO_AWS_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
# What CloudFormation would make of the template's references to the avatar resources (infra/avatars.yml):
# the bucket it would name (created in moto by setup_aws) and the distribution's domain.
PHYSICAL_IDS = {
    "AvatarBucket": "wx-login-smoke-avatarbucket-0123456789ab",
    "AvatarBucket.Arn": "arn:aws:s3:::wx-login-smoke-avatarbucket-0123456789ab",
    "AvatarDistribution": "E2SMOKE0123456",
    "AvatarDistribution.DomainName": "d111111abcdef8.cloudfront.net",
}
AVATAR_BUCKET = PHYSICAL_IDS["AvatarBucket"]
TRANSACTIONS = {
    "dynamodb:GetItem": "dynamodb:TransactGetItems",
    "dynamodb:PutItem": "dynamodb:TransactWriteItems",
    "dynamodb:UpdateItem": "dynamodb:TransactWriteItems",
    "dynamodb:DeleteItem": "dynamodb:TransactWriteItems",
    "dynamodb:ConditionCheckItem": "dynamodb:TransactWriteItems",
}


def for_moto(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A role's statements as moto can enforce them: actions only, transactions by API name."""
    translated = []
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        actions = [a for a in actions if a.split(":")[0] in ("dynamodb", "ssm", "s3")]
        if statement["Effect"] != "Allow" or not actions:
            continue
        actions += sorted({TRANSACTIONS[a] for a in actions if a in TRANSACTIONS})
        translated.append({"Effect": "Allow", "Action": actions, "Resource": "*"})
    return translated


def role_statements(package: Package, role_id: str) -> list[dict[str, Any]]:
    role = package.resources[role_id]
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def resolve(package: Package, value: Any) -> Any:
    """A template value as CloudFormation would resolve it in this stack (Ref, GetAtt, Sub, If, Not,
    And, Equals), with PHYSICAL_IDS for the resources whose names only a deployment knows."""
    if isinstance(value, list):
        return [resolve(package, item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: resolve(package, item) for key, item in value.items()}
    ((function, argument),) = value.items()
    pseudo = {"AWS::Region": package.region, "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    # Stack parameters: their defaults (osls passes none).
    pseudo |= {name: str(p["Default"]) for name, p in package.template.get("Parameters", {}).items()}
    match function:
        case "Ref":
            return pseudo[argument] if argument in pseudo else PHYSICAL_IDS[argument]
        case "Fn::GetAtt":
            return PHYSICAL_IDS[".".join(argument)]
        case "Fn::Sub":
            assert isinstance(argument, str), value

            def name(match: re.Match[str]) -> str:
                key = match.group(1)
                return pseudo[key] if key in pseudo else PHYSICAL_IDS[key]

            return re.sub(r"\$\{([^}!]+)\}", name, argument)
        case "Fn::If":
            condition, if_true, if_false = argument
            chosen = if_true if resolve(package, package.template["Conditions"][condition]) else if_false
            return resolve(package, chosen)
        case "Fn::Not":
            return not resolve(package, argument[0])
        case "Fn::And":
            return all(resolve(package, item) for item in argument)
        case "Fn::Equals":
            left, right = resolve(package, argument)
            return bool(left == right)
        case "Condition":
            return resolve(package, package.template["Conditions"][argument])
    return {function: resolve(package, argument)}


def function_environment(package: Package, environment: dict[str, Any]) -> dict[str, str]:
    """A function's environment from the template, references resolved (AVATAR_BUCKET: !Ref ...)."""
    resolved = {name: resolve(package, value) for name, value in environment.items()}
    assert all(isinstance(value, str) for value in resolved.values()), resolved
    return resolved


def create_tables(package: Package, moto: MotoServer) -> None:
    dynamodb = moto.client("dynamodb")
    for table in package.of_type("AWS::DynamoDB::Table").values():
        props = table["Properties"]
        dynamodb.create_table(
            TableName=props["TableName"],
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props["BillingMode"],
        )
        if "TimeToLiveSpecification" in props:
            dynamodb.update_time_to_live(
                TableName=props["TableName"], TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )


def scf_policy_statements() -> list[dict[str, Any]]:
    """The IAM policy infra/DEPLOY.md gives the AWS user of the Tencent SCF functions."""
    policy = json.loads((ROOT / "infra" / "tencent" / "aws-iam-policy.json").read_text())
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def scf_env(package: Package, moto: MotoServer, wechat: FakeWeChat, keys: dict[str, str]) -> dict[str, str]:
    """A function's environment on Tencent SCF: plain variables (no SSM), DynamoDB by endpoint."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "STAGE": "prod",
        **SECRETS,
        "USERS_TABLE": package.table_name("UsersTable"),
        "SESSIONS_TABLE": package.table_name("SessionsTable"),
        "CACHE_TABLE": package.table_name("CacheTable"),
        "DYNAMODB_ENDPOINT": moto.url,
        "AWS_REGION": package.region,
        "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
        **NO_AWS_FILES,
        "WX_API_BASE": wechat.url,
        "SSL_CERT_FILE": str(wechat.ca_file),
        # Avatars stay in the AWS stack's bucket, written with the same IAM user's keys (infra/DEPLOY.md);
        # the SDK's S3-only endpoint override stands in for AWS's S3 here, nothing else changes.
        "AVATAR_BUCKET": AVATAR_BUCKET,
        "AVATAR_BASE_URL": f"https://{PHYSICAL_IDS['AvatarDistribution.DomainName']}",
        "AWS_ENDPOINT_URL_S3": moto.url,
    }


def setup_aws(package: Package, moto: MotoServer) -> None:
    """Tables of the template, SSM parameters, one IAM user per role; then IAM is enforced."""
    moto.add_user("admin", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    create_tables(package, moto)
    if "AvatarBucket" in package.resources:
        moto.client("s3").create_bucket(
            Bucket=AVATAR_BUCKET, CreateBucketConfiguration={"LocationConstraint": package.region}
        )
    ssm = moto.client("ssm")
    parameters = {}
    for function in package.functions.values():
        for name, value in function.environment.items():
            if name.endswith("_SSM") and name.removesuffix("_SSM") in SECRETS:
                parameters[value] = SECRETS[name.removesuffix("_SSM")]
    for name, value in parameters.items():  # JWT_PREVIOUS_SECRETS is left out: optional
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    for name, function in package.functions.items():
        moto.add_user(name, for_moto(role_statements(package, function.role_id)))
    moto.add_user("scf", for_moto(scf_policy_statements()))
    moto.enforce_iam()


def assert_ok(status: int, body: Any) -> dict[str, Any]:
    if status == 500 and body.get("reason") == "SERVER_MISCONFIGURED":
        raise AssertionError(
            "the packaged function is SERVER_MISCONFIGURED with the template's environment: are the "
            "*_SSM parameters resolved (shared.ssm_params.resolve_ssm_env in shared/settings.py)? "
            f"{body}"
        )
    assert status == 200, body
    assert set(body) == ENVELOPE_OK_KEYS, body
    data: dict[str, Any] = body["data"]
    return data


def avatar_keys(moto: MotoServer) -> list[str]:
    """The objects in the avatar bucket."""
    listing = moto.client("s3").list_objects_v2(Bucket=AVATAR_BUCKET)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def assert_error(status: int, body: Any, expected: int, reason: str) -> None:
    assert (status, body.get("reason")) == (expected, reason), body
    assert set(body) == ENVELOPE_ERROR_KEYS and body["code"] == expected, body
