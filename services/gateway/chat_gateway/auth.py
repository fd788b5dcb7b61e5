"""Access tokens: minting (chatctl, sign-in) and verification (every request and socket).

Our own tokens are HS256 JWTs with `sub` (user id), `org_id`, `email`, `name`, `exp`, `iat`,
`iss`, `aud` and `jti`. When an external identity provider is configured (`OIDC_JWKS_URL`,
`OIDC_ISSUER`, `OIDC_AUDIENCE`), RS256/ES256 tokens signed by one of its keys are accepted too,
each key with the one algorithm it is published for. Identity and tenant come only from a
verified token, never from a client frame.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import jwt
from pydantic import ValidationError

from chat_contracts.base import UserRef
from chat_gateway.settings import GatewaySettings

LOCAL_ALGORITHM = "HS256"
EXTERNAL_ALGORITHMS = frozenset({"RS256", "ES256"})
LOCAL_CLAIMS = ["sub", "org_id", "email", "name", "exp", "iat", "iss", "aud", "jti"]


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not ours. Deliberately not more specific."""


@dataclass(frozen=True)
class Identity:
    user: UserRef
    expires_at: float
    jti: str | None
    external: bool


def mint_token(user: UserRef, settings: GatewaySettings, ttl_seconds: int | None = None) -> str:
    issued = int(time.time())
    claims = {
        "sub": str(user.user_id),
        "org_id": str(user.org_id),
        "email": user.email,
        "name": user.name,
        "iat": issued,
        "exp": issued + (ttl_seconds or settings.access_token_ttl_seconds),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=LOCAL_ALGORITHM)


def _external_id(issuer: str, kind: str, value: object) -> UUID:
    """A provider's id as a UUID: itself if it is one, else a stable name-based UUID."""
    try:
        return UUID(str(value))
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}#{kind}:{value}")


class TokenVerifier:
    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._jwks = (
            jwt.PyJWKClient(
                settings.oidc_jwks_url,
                cache_keys=True,
                lifespan=settings.oidc_jwks_cache_seconds,
                timeout=5,
            )
            if settings.oidc_jwks_url
            else None
        )

    async def verify(self, token: str) -> Identity:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm == LOCAL_ALGORITHM:
                return self._verify_local(token)
            if self._jwks is not None and algorithm in EXTERNAL_ALGORITHMS:
                return await self._verify_external(token, algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, ValidationError) as exc:
            raise InvalidToken from exc
        raise InvalidToken

    def _verify_local(self, token: str) -> Identity:
        settings = self._settings
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[LOCAL_ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": LOCAL_CLAIMS},
        )
        user = UserRef(
            user_id=UUID(claims["sub"]),
            org_id=UUID(claims["org_id"]),
            email=claims["email"],
            name=claims["name"],
        )
        return Identity(
            user=user, expires_at=float(claims["exp"]), jti=claims["jti"], external=False
        )

    async def _verify_external(self, token: str, algorithm: str) -> Identity:
        settings = self._settings
        assert self._jwks is not None and settings.oidc_issuer is not None
        # Keys are cached; a cache miss fetches the JWKS over HTTP, off the event loop.
        key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        if key.algorithm_name != algorithm:
            raise InvalidToken  # a key is used with the one algorithm it was published for
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=settings.oidc_audience,
            issuer=settings.oidc_issuer,
            options={
                "require": [
                    "exp",
                    "iat",
                    "iss",
                    "aud",
                    settings.oidc_user_claim,
                    settings.oidc_org_claim,
                ]
            },
        )
        issuer = settings.oidc_issuer
        user_value = claims[settings.oidc_user_claim]
        user = UserRef(
            user_id=_external_id(issuer, "user", user_value),
            org_id=_external_id(issuer, "org", claims[settings.oidc_org_claim]),
            email=str(claims.get(settings.oidc_email_claim, "")),
            name=str(claims.get(settings.oidc_name_claim) or user_value),
        )
        jti = claims.get("jti")
        return Identity(
            user=user, expires_at=float(claims["exp"]), jti=str(jti) if jti else None, external=True
        )


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
