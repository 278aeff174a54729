"""What each provider is and can do, as its documentation says (kling-api.md §16).

The runner asks a profile's `Capabilities`; it never assumes one. CometAPI documents only the
create and the query by task id (§17 E1–E3): no task list, no look-up by external_task_id,
and no promise that external ids are deduplicated (it retries failed requests on other
channels, E7). Kling's own API documents all three (§1, §2, E13–E25).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can be asked beyond create and query-by-task-id."""

    external_lookup: bool = False  # GET {route}/{external_task_id} answers that task
    task_list: bool = False  # GET {route}?pageNum=&pageSize= lists the account's tasks
    dedupes_external_ids: bool = False  # a create reusing an external_task_id is refused

    def with_confirmed_lookup(self) -> Capabilities:
        return replace(self, external_lookup=True)


@dataclass(frozen=True, slots=True)
class Profile:
    """A provider: where it lives, its image2video route, its capabilities, its credentials."""

    name: str
    default_base_url: str
    route: str
    capabilities: Capabilities
    key_hint: str  # what the user sets to fix credentials
    guarantee: str  # what a run on this provider promises, for messages and docs
    signs_jwt: bool = False  # credentials: an access and secret key signing JWTs, not a key


COMETAPI = Profile(
    name="cometapi",
    default_base_url="https://api.cometapi.com",
    route="/kling/v1/videos/image2video",
    capabilities=Capabilities(),
    key_hint="COMETAPI_KEY / --api-key",
    guarantee=(
        "a create whose answer is lost cannot be looked up, so its job becomes `unknown` and "
        "is never sent again without you"
    ),
)

KLING = Profile(
    name="kling",
    default_base_url="https://api-singapore.klingai.com",
    route="/v1/videos/image2video",
    capabilities=Capabilities(external_lookup=True, task_list=True, dedupes_external_ids=True),
    key_hint="KLING_ACCESS_KEY and KLING_SECRET_KEY",
    guarantee="every lost create is looked up by its external_task_id: no job is left unknown",
    signs_jwt=True,
)

PROFILES = {profile.name: profile for profile in (COMETAPI, KLING)}
