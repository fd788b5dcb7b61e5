"""Access tokens: minting (for `chatctl` and login) and verification (every request and socket).

Tokens are HS256 JWTs with `sub` (user id), `org_id`, `email`, `name`, `exp`, `iat`, `iss` and
`aud`. Identity and tenant are taken only from a verified token, never from a client frame.
"""

from __future__ import annotations

import time
from uuid import UUID, uuid4

import jwt
from pydantic import ValidationError

from chat_gateway.settings import GatewaySettings
from chat_shared.contracts import UserRef

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "org_id", "email", "name", "exp", "iat", "iss", "aud"]


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not ours. Deliberately not more specific."""


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
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_token(token: str, settings: GatewaySettings) -> tuple[UserRef, float]:
    """The user a token names and when it expires; `InvalidToken` for anything else."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        user = UserRef(
            user_id=UUID(claims["sub"]),
            org_id=UUID(claims["org_id"]),
            email=claims["email"],
            name=claims["name"],
        )
    except (jwt.PyJWTError, ValueError, TypeError, ValidationError) as exc:
        raise InvalidToken from exc
    return user, float(claims["exp"])


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
