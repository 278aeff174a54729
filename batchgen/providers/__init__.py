"""The seam to the network: one client over the providers batchgen speaks to.

profiles.py   what each provider is and can do (CometAPI's relay, Kling's own API)
answers.py    every answer classified: success or the ProviderError it means (pure)
task.py       a task as any answer describes it (pure)
auth.py       bearer key or Kling's JWT; credentials checked before any request
account.py    which account a run sends to, as a fingerprint that never reveals the key
transport.py  httpx: sends, reads, translates network errors, redacts credentials
client.py     `Provider`: create, get, look_up (by external id, in one form), list_tasks
callbacks.py  what a provider's callback says, and whether its signature holds
"""

from __future__ import annotations

from batchgen.errors import UsageError
from batchgen.providers.auth import Auth, BearerKey, KlingJwt, check_header_value
from batchgen.providers.client import LIST_PAGE_MAX, Looked, LookupForm, Provider
from batchgen.providers.profiles import COMETAPI, KLING, PROFILES, Capabilities, Profile
from batchgen.providers.task import TaskInfo, parse_task
from batchgen.providers.transport import RequestLimiter, Transport

__all__ = [
    "COMETAPI",
    "KLING",
    "LIST_PAGE_MAX",
    "PROFILES",
    "Auth",
    "BearerKey",
    "Capabilities",
    "KlingJwt",
    "Looked",
    "LookupForm",
    "Profile",
    "Provider",
    "TaskInfo",
    "auth_for",
    "connect",
    "parse_task",
]


def auth_for(
    profile: Profile,
    *,
    api_key: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    kling_api_key: str | None = None,
) -> Auth:
    """The credentials `profile` needs, checked; UsageError naming what to set otherwise. On
    Kling's own API an API Key (which serves every route, kling-api.md §18.2 (7)) is used
    where given, else the access and secret keys sign JWTs."""
    if profile.signs_jwt and kling_api_key:
        return BearerKey(check_header_value(kling_api_key, "KLING_API_KEY"))
    if profile.signs_jwt:
        if not access_key or not secret_key:
            raise UsageError(
                "no Kling credentials: set KLING_API_KEY, or KLING_ACCESS_KEY and "
                "KLING_SECRET_KEY (or pass --kling-api-key, or --access-key and --secret-key)"
            )
        return KlingJwt(
            check_header_value(access_key, "KLING_ACCESS_KEY"),
            check_header_value(secret_key, "KLING_SECRET_KEY"),
        )
    if not api_key:
        raise UsageError("no API key: set COMETAPI_KEY or pass --api-key")
    return BearerKey(check_header_value(api_key, "the API key (COMETAPI_KEY / --api-key)"))


def connect(
    profile: Profile,
    auth: Auth,
    base_url: str | None = None,
    *,
    timeout: float = 30.0,
    max_connections: int = 16,
    limiter: RequestLimiter | None = None,
) -> Provider:
    """A Provider for `profile` at `base_url` (default: the profile's own)."""
    transport = Transport(
        base_url or profile.default_base_url,
        auth,
        profile.key_hint,
        timeout=timeout,
        max_connections=max_connections,
        limiter=limiter,
    )
    return Provider(profile, transport)
