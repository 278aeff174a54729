"""Which account a run sends to, as a fingerprint that names it without revealing it.

The fingerprint is the provider, its base URL and a slow one-way hash of the credential that
names the account (a CometAPI key, Kling's access key or API Key): PBKDF2-HMAC-SHA256 with a
fixed salt, so the ledger can tell two runs share an account while holding nothing that leads
back to the key (a short key is not found by hashing guesses quickly). The same credentials
always give the same fingerprint, on every machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from batchgen.providers.auth import Auth

_SALT = b"batchgen account fingerprint v1"
_ROUNDS = 20_000


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the ledger knows it."""

    fingerprint: str  #: 24 hex digits naming provider, base URL and credentials
    provider: str  #: cometapi or kling
    base_url: str  #: the API's base URL, as the run uses it

    @property
    def short(self) -> str:
        return self.fingerprint[:12]


def account_of(provider: str, base_url: str, auth: Auth) -> Account:
    """The account `auth` names at `base_url` of `provider`."""
    secret = hashlib.pbkdf2_hmac("sha256", auth.identity.encode(), _SALT, _ROUNDS)
    named = hashlib.sha256(f"{provider}\n{base_url.rstrip('/')}\n".encode() + secret)
    return Account(named.hexdigest()[:24], provider, base_url.rstrip("/"))
