"""Credential checks: CometAPI's bearer key and Kling's HS256 JWT (kling-api.md §1, §6). Pure:
each check takes the Authorization header, the settings and `now` (Unix seconds), and answers
None to let the request in or the Kling code refusing it (1000-1004). Each has a one-line
description for the `simulate` banner.
"""

from __future__ import annotations

import json
from typing import Any

from jwt import InvalidTokenError, PyJWS
from jwt.algorithms import HMACAlgorithm

from batchgen.simulator.config import SimulatorConfig


class _HS256(HMACAlgorithm):
    """HS256 without PyJWT's warning about keys under 32 bytes: the simulator's default secret
    is a short test value."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)

    def check_key_length(self, key: Any) -> str | None:
        return None


_SIGNATURES = PyJWS(algorithms=[])
_SIGNATURES.register_algorithm("HS256", _HS256())


def check_api_key(authorization: str, config: SimulatorConfig, now: float) -> int | None:
    """`Bearer <key>`; any non-empty key when `config.api_key` is None, else exactly it."""
    key = _bearer(authorization)
    if isinstance(key, int):
        return key
    if config.api_key is not None and key != config.api_key:
        return 1000
    return None


def check_jwt(authorization: str, config: SimulatorConfig, now: float) -> int | None:
    """`Bearer <jwt>`: HS256 signed with `secret_key`, `iss` = `access_key`, a numeric `exp`
    after `now` (else 1004) and, if present, a numeric `nbf` not after `now` (else 1003)."""
    token = _bearer(authorization)
    if isinstance(token, int):
        return token
    if token == config.kling_api_key:
        return None  # an API Key serves every route (kling-api.md §18.2 (7))
    claims = _verified_claims(token, config.secret_key)
    if claims is None or claims.get("iss") != config.access_key:
        return 1000
    expires: Any = claims.get("exp")
    not_before: Any = claims.get("nbf", now)
    if not _is_number(expires) or not _is_number(not_before):
        return 1000
    if now >= expires:
        return 1004
    if not_before > now:
        return 1003
    return None


def describe_api_key(config: SimulatorConfig) -> str:
    """How to authenticate, for the banner."""
    key = "any non-empty key" if config.api_key is None else "the key set with --api-key"
    return f"Authorization: Bearer <key>, {key}"


def describe_jwt(config: SimulatorConfig) -> str:
    """How to authenticate, for the banner (the keys are simulator test values, not secrets)."""
    return (
        f"Authorization: Bearer <HS256 JWT>, access key (iss) {config.access_key!r}, "
        f"secret key {config.secret_key!r}"
    )


def _bearer(authorization: str) -> str | int:
    """The credential after `Bearer `, or 1001 (none given) / 1002 (another scheme)."""
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme in ("", "Bearer") and not credential.strip():
        return 1001
    if scheme != "Bearer":
        return 1002
    return credential.strip()


def _verified_claims(token: str, secret: str) -> dict[str, Any] | None:
    """The claims of a token whose HS256 signature holds, else None."""
    try:
        decoded = _SIGNATURES.decode_complete(token, secret, algorithms=["HS256"])
        claims = json.loads(decoded["payload"])
    except (InvalidTokenError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def holds_api_key(authorization: str, config: SimulatorConfig) -> bool:
    """Whether the request carries Kling's API Key (what GET /tasks asks for)."""
    return _bearer(authorization) == config.kling_api_key
