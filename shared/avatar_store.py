"""Avatar objects in S3 (or any S3-compatible store): random keys, public URLs, bounded failures.

The bucket is private. Objects are read through `AVATAR_BASE_URL` (a CloudFront distribution with
origin access control in front of the bucket; docs/avatars.md says why not presigned URLs), so a
URL is `{AVATAR_BASE_URL}/{key}` and never expires. Keys are random and never reused, so an object
is immutable and cached for a year.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import botocore_session
from shared.errors import Reason, ServerMisconfigured, ServiceError
from shared.images import CleanImage
from shared.settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "avatars/"
CACHE_CONTROL = "public, max-age=31536000, immutable"


class S3Client(Protocol):
    """The three calls we make; botocore's S3 client (boto3's, moto's) satisfies it."""

    def put_object(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def delete_object(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class StoredObject:
    """What `get` answers: the bytes and their type."""

    content: bytes
    content_type: str


@contextmanager
def _s3_errors(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        logger.error("s3 %s failed: %s", action, code)
        raise ServiceError(Reason.STORAGE_UNAVAILABLE, "头像存储暂不可用, 请稍后重试") from exc
    except BotoCoreError as exc:
        logger.error("s3 %s failed: %s", action, type(exc).__name__)
        raise ServiceError(Reason.STORAGE_UNAVAILABLE, "头像存储暂不可用, 请稍后重试") from exc


class AvatarStore:
    """Puts, reads and deletes avatar objects under `KEY_PREFIX` in one bucket."""

    def __init__(self, client: S3Client, bucket: str, base_url: str) -> None:
        self._client = client
        self.bucket = bucket
        self.base_url = base_url.rstrip("/")

    def url_for(self, key: str) -> str:
        """The public URL of the object `key`."""
        return f"{self.base_url}/{key}"

    def put(self, image: CleanImage) -> str:
        """Store `image` under a new random key; answers the key."""
        # 144 random bits: unguessable, so the bucket cannot be listed by guessing.
        key = f"{KEY_PREFIX}{secrets.token_urlsafe(18)}.{image.extension}"
        with _s3_errors("put"):
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=image.content,
                ContentType=image.content_type,
                CacheControl=CACHE_CONTROL,
            )
        return key

    def delete(self, key: str) -> bool:
        """Delete our object `key`; answers False (logged) when S3 fails: an orphan is harmless."""
        if not is_avatar_key(key):
            return False
        try:
            with _s3_errors("delete"):
                self._client.delete_object(Bucket=self.bucket, Key=key)
        except ServiceError:
            return False
        return True

    def get(self, key: str) -> StoredObject | None:
        """The object `key`, or None when there is none (the dev server serves avatars with it)."""
        if not is_avatar_key(key):
            return None
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return StoredObject(answer["Body"].read(), str(answer.get("ContentType", "application/octet-stream")))


def is_avatar_key(key: str) -> bool:
    """Whether `key` is one that `put` could have made: the only objects we ever read or delete."""
    name = key.removeprefix(KEY_PREFIX)
    stem, _, extension = name.rpartition(".")
    return (
        key.startswith(KEY_PREFIX)
        and extension in ("jpg", "png", "webp")
        and len(stem) == 24
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in stem)
    )


def s3_client(settings: Settings) -> S3Client:
    """An S3 client with timeouts that answer within API Gateway's limits, on the session of the
    DynamoDB client (shared/aws.py): its credentials and loaders are not built a second time."""
    config = Config(
        connect_timeout=1,
        read_timeout=3,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "virtual"} if settings.avatar_s3_endpoint else None,
    )
    with botocore_session() as session:
        client = session.create_client(
            "s3", region_name=settings.aws_region, endpoint_url=settings.avatar_s3_endpoint, config=config
        )
    return cast("S3Client", client)


def avatar_store(settings: Settings, client: S3Client | None = None) -> AvatarStore:
    """The store configured by AVATAR_BUCKET and AVATAR_BASE_URL; SERVER_MISCONFIGURED without them."""
    required = {"AVATAR_BUCKET": settings.avatar_bucket, "AVATAR_BASE_URL": settings.avatar_base_url}
    missing = [name for name, value in required.items() if not value]
    if missing:
        logger.error("server misconfigured: %s", ", ".join(missing))
        raise ServerMisconfigured(missing)
    return AvatarStore(client or s3_client(settings), settings.avatar_bucket, settings.avatar_base_url)
