"""A local identity provider's key set (JWKS over HTTP), and tokens signed by its keys."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from chat_devtools.stack import free_port
from tests.support.http_server import serving

ISSUER = "https://idp.test.example"
AUDIENCE = "agentchat-tests"


class IdentityProvider:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.port = free_port()
        keys = [
            {
                **json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())),
                "kid": "rsa-1",
                "alg": "RS256",
                "use": "sig",
            },
            {
                **json.loads(ECAlgorithm.to_jwk(self.ec.public_key())),
                "kid": "ec-1",
                "alg": "ES256",
                "use": "sig",
            },
        ]
        self.app = Starlette(
            routes=[Route("/jwks.json", lambda request: JSONResponse({"keys": keys}))]
        )

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "sub": f"idp-user-{uuid4().hex[:8]}",
            "org_id": "idp-org-1",
            "email": "external@example.com",
            "name": "External User",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "jti": uuid4().hex,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(
        self, kind: str = "rsa", kid: str | None = None, alg: str | None = None, **claims: Any
    ) -> str:
        key: Any = self.rsa if kind == "rsa" else self.ec
        algorithm = alg or ("RS256" if kind == "rsa" else "ES256")
        return jwt.encode(
            self.claims(**claims), key, algorithm=algorithm, headers={"kid": kid or f"{kind}-1"}
        )


@contextmanager
def running_identity_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    with serving(provider.app, provider.port, "the test identity provider"):
        yield provider
