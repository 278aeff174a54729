"""What each provider is and can do, as its documentation says (kling-api.md §16, §18.2).

The runner asks a profile's `Capabilities`; it never assumes one. CometAPI documents only the
create and the query by task id (§17 E1–E3): no task list, no look-up by external_task_id,
and no promise that external ids are deduplicated (it retries failed requests on other
channels, E7). Kling's own API documents the task list, and a look-up by external id whose
location (path or query string) it does not give; neither documents that a reused external
id is refused (§18.2 (1), (2)). So a look-up is tried in every form on every provider
(runner/lookup.py), never assumed, and a resend on "not found" is safe only where the refusal
of a reused id is documented in so many words (`refuses_reused_ids`: nowhere yet) or has been
seen on the account.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can be asked beyond create and query-by-task-id."""

    task_list: bool = False  # documented: GET {route}?pageNum=&pageSize= lists the tasks
    refuses_reused_ids: bool = False  # documented: a create reusing an external id is refused


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
        "a create whose answer is lost is looked up by its external_task_id in every form; "
        "where none finds it, its job becomes `unknown` and is never sent again without you"
    ),
)

KLING = Profile(
    name="kling",
    default_base_url="https://api-singapore.klingai.com",
    route="/v1/videos/image2video",
    capabilities=Capabilities(task_list=True),
    key_hint="KLING_ACCESS_KEY and KLING_SECRET_KEY",
    guarantee=(
        "a create whose answer is lost is looked up by its external_task_id in every form and "
        "in the task list; where none finds it, its job becomes `unknown` and is never sent "
        "again without you"
    ),
    signs_jwt=True,
)

PROFILES = {profile.name: profile for profile in (COMETAPI, KLING)}
