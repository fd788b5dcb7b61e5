import time
from uuid import uuid4

import jwt
import pytest

from chat_contracts.base import UserRef
from chat_devtools.seed import gateway_settings
from chat_gateway.auth import InvalidToken, TokenVerifier, bearer_token, mint_token


def _user() -> UserRef:
    return UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="Ada")


async def test_a_minted_token_verifies_to_its_user() -> None:
    settings = gateway_settings()
    user = _user()
    who = await TokenVerifier(settings).verify(mint_token(user, settings, 60))
    assert who.user == user and who.external is False and who.jti
    assert who.expires_at == pytest.approx(time.time() + 60, abs=5)


@pytest.mark.parametrize(
    "change",
    [
        {"exp": 1},
        {"iss": "someone-else"},
        {"aud": "another-app"},
        {"org_id": "not-a-uuid"},
    ],
)
async def test_tokens_with_wrong_claims_are_refused(change: dict[str, object]) -> None:
    settings = gateway_settings()
    claims = jwt.decode(mint_token(_user(), settings), options={"verify_signature": False})
    token = jwt.encode({**claims, **change}, settings.jwt_secret, algorithm="HS256")
    with pytest.raises(InvalidToken):
        await TokenVerifier(settings).verify(token)


async def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_token(_user(), gateway_settings(jwt_secret="x" * 40))
    with pytest.raises(InvalidToken):
        await TokenVerifier(gateway_settings()).verify(token)


async def test_a_token_without_expiry_is_refused() -> None:
    settings = gateway_settings()
    claims = jwt.decode(mint_token(_user(), settings), options={"verify_signature": False})
    del claims["exp"]
    with pytest.raises(InvalidToken):
        await TokenVerifier(settings).verify(
            jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
        )


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
    assert bearer_token("Bearer ") is None


def test_production_refuses_the_development_secret() -> None:
    from chat_gateway.settings import GatewaySettings

    with pytest.raises(ValueError, match="JWT_SECRET"):
        GatewaySettings(app_env="production")
