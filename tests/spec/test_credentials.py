"""Credentials: checked before any request, renewed before they expire, never shown."""

from __future__ import annotations

import jwt
import pytest

from batchgen.errors import AccountError, UsageError
from batchgen.providers import COMETAPI, KLING, auth_for
from batchgen.providers.auth import KlingJwt, check_header_value
from batchgen.providers.transport import Transport

SECRET = "sk-secret-of-a-realistic-length-32b"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (" sk-abc", "spaces or line breaks around it"),
        ("sk-abc\n", "spaces or line breaks around it"),
        ("sk-a\nbc", "line break"),
        ("sk-äbc", "non-ASCII"),
        ("", "empty"),
    ],
)
def test_a_key_that_cannot_go_into_a_header_is_refused_without_showing_it(value, problem):
    """The refusal names the setting and the problem, never the value."""
    with pytest.raises(UsageError) as caught:
        check_header_value(value, "COMETAPI_KEY")
    message = str(caught.value)
    assert problem in message and "COMETAPI_KEY" in message
    if value.strip():
        assert value.strip() not in message


def test_missing_credentials_name_the_variables_to_set():
    """Each provider says which environment variables it needs."""
    with pytest.raises(UsageError, match="COMETAPI_KEY"):
        auth_for(COMETAPI)
    with pytest.raises(UsageError, match="KLING_ACCESS_KEY and KLING_SECRET_KEY"):
        auth_for(KLING, access_key="ak")


def test_the_kling_token_carries_the_documented_claims():
    """HS256, iss = access key, exp = now + 1800 s, nbf = now - 5 s (kling-api.md §1)."""
    auth = KlingJwt("ak-1", SECRET, clock=lambda: 1_000_000.0)
    token = auth.headers()["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    assert claims == {"iss": "ak-1", "exp": 1_001_800, "nbf": 999_995}


def test_the_kling_token_is_renewed_well_before_it_expires():
    """The same token is reused, then replaced 5 minutes before its 30 minutes are up."""
    now = [0.0]
    auth = KlingJwt("ak", "sk", clock=lambda: now[0])
    first = auth.headers()
    now[0] = 1400.0
    assert auth.headers() == first
    now[0] = 1501.0
    assert auth.headers() != first and auth.renewals == 2


def test_an_invalidated_token_is_signed_again():
    """After the provider calls a token expired, the next request carries a new one."""
    now = [0.0]
    auth = KlingJwt("ak", "sk", clock=lambda: now[0])
    first = auth.headers()
    now[0] = 10.0
    auth.invalidate()
    assert auth.headers() != first


def test_messages_echoing_credentials_are_redacted():
    """Whatever the provider echoes, the key never reaches a message."""
    auth = auth_for(COMETAPI, api_key="sk-verysecret123")
    transport = Transport("http://127.0.0.1:9", auth, COMETAPI.key_hint)
    error = transport.redacted(AccountError("invalid token sk-verysecret123 (check it)", code=1000))
    assert "sk-verysecret123" not in str(error) and "***" in str(error)
    assert isinstance(error, AccountError) and error.code == 1000
