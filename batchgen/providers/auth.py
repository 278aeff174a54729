"""How requests prove who sends them: a bearer key (CometAPI) or a short-lived HS256 JWT made
from an access key and a secret key (Kling's own API, kling-api.md §1).

Credentials are checked before any request: a value that cannot go into an HTTP header
(surrounding whitespace, a line break, a non-ASCII character) is refused with a message that
names the setting, never the value. `secrets` lists every string that must never appear in a
message, a log or the state (the transport redacts them).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from batchgen.errors import UsageError

Clock = Callable[[], float]
JWT_LIFETIME = 1800.0  # seconds, as Kling's docs and clients use
JWT_NOT_BEFORE_SLACK = 5.0
JWT_RENEW_BEFORE = 300.0  # a token is replaced this long before it expires


def check_header_value(value: str, setting: str) -> str:
    """`value` if it can be sent in an HTTP header; UsageError naming `setting` otherwise."""
    problem = None
    if not value:
        problem = "is empty"
    elif value != value.strip():
        problem = "has spaces or line breaks around it"
    elif not value.isascii():
        problem = "has a non-ASCII character"
    elif not value.isprintable():
        problem = "has a line break or another control character"
    if problem:
        raise UsageError(f"{setting} {problem}: it cannot be sent in an HTTP header")
    return value


@dataclass(frozen=True, slots=True)
class BearerKey:
    """`Authorization: Bearer <key>` on every request."""

    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def invalidate(self) -> None:
        """Nothing to renew: a bearer key does not expire."""

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.key,)

    @property
    def identity(self) -> str:
        """What names the account (hashed, never stored: providers/account.py)."""
        return self.key


@dataclass(slots=True)
class KlingJwt:
    """A JWT (`iss` = access key, `exp` = now + lifetime, `nbf` = now − 5 s), signed HS256 with
    the secret key and renewed `renew_before` seconds before it expires, or at once after the
    provider says it expired (`invalidate`)."""

    access_key: str
    secret_key: str
    lifetime: float = JWT_LIFETIME
    renew_before: float = JWT_RENEW_BEFORE
    clock: Clock = time.time
    renewals: int = 0
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    def headers(self) -> dict[str, str]:
        now = self.clock()
        if not self._token or now >= self._expires - self.renew_before:
            self._token, self._expires = self._sign(now), now + self.lifetime
            self.renewals += 1
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        self._token = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.access_key, self.secret_key, self._token) if s)

    @property
    def identity(self) -> str:
        """What names the account: its access key (hashed, never stored)."""
        return self.access_key

    def _sign(self, now: float) -> str:
        claims = {
            "iss": self.access_key,
            "exp": int(now + self.lifetime),
            "nbf": int(now - JWT_NOT_BEFORE_SLACK),
        }
        # The key's length is Kling's choice, not ours: PyJWT's advice is not the user's to act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(claims, self.secret_key, algorithm="HS256", headers={"typ": "JWT"})


Auth = BearerKey | KlingJwt
