"""The providers the simulator can be: everything that differs between CometAPI's relay and
Kling's own API (routes, credentials, capabilities, wording) in one frozen `Profile` each
(kling-api.md §2, §16, §17 E1-E2, E12, E18, E20).

    cometapi  POST /kling/v1/videos/image2video, GET …/{task_id}; bearer key; no list, no
              look-up by external id, external ids neither deduplicated nor echoed
    kling     POST /v1/videos/image2video, GET …/{task_id}, GET the collection to list; HS256
              JWT; external ids echoed. A look-up by external id is documented without a
              location, and the refusal of a reused id not at all (§18.2 (1), (2)): by default
              neither happens; `SimulatorConfig.lookup_form` and `refuses_reused_ids` turn
              each on, for either profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from batchgen.simulator.auth import check_api_key, check_jwt, describe_api_key, describe_jwt
from batchgen.simulator.config import SimulatorConfig
from batchgen.simulator.dialects import Dialect, KlingDialect, RelayDialect

CredentialCheck = Callable[[str, SimulatorConfig, float], int | None]
CredentialHint = Callable[[SimulatorConfig], str]


class Route(Enum):
    """What a request to the API asks for."""

    CREATE = "create"  # POST {api_path}
    GET_ONE = "get_one"  # GET {api_path}/{id}
    LIST = "list"  # GET {api_path}[?pageNum=N&pageSize=M], where the provider lists
    TASKS = "tasks"  # kling: GET /tasks?task_ids=…|external_task_ids=… (API Key only)
    NOT_SERVED = "not_served"  # another method on {api_path}
    ELSEWHERE = "elsewhere"  # any other path or method


@dataclass(frozen=True)
class Profile:
    """One provider: its API path, credentials, capabilities and dialect."""

    name: str
    description: str
    api_path: str
    check_credentials: CredentialCheck
    describe_credentials: CredentialHint
    lists_tasks: bool
    lookup_form: str  # where a look-up by external id is answered (SimulatorConfig)
    dedupes_external_ids: bool  # a reused external_task_id is refused with 1201
    echoes_external_id: bool  # task_info carries the external_task_id
    text_limits: tuple[int, int]  # longest prompt and negative_prompt (§3)
    dialect: Dialect

    def route(self, method: str, path: str) -> tuple[Route, str]:
        """Which operation a request is, and the id its path names ("" if none)."""
        if path == self.api_path:
            if method == "POST":
                return Route.CREATE, ""
            if method == "GET":
                return Route.LIST, ""  # a list, a look-up in the query, or not served
            return Route.NOT_SERVED, ""
        if path == "/tasks" and method == "GET" and self.name == "kling":
            return Route.TASKS, ""
        key = path.removeprefix(self.api_path + "/")
        if method == "GET" and key != path and key and "/" not in key:
            return Route.GET_ONE, key
        return Route.ELSEWHERE, ""


COMETAPI = Profile(
    name="cometapi",
    description="CometAPI's relay of Kling",
    api_path="/kling/v1/videos/image2video",
    check_credentials=check_api_key,
    describe_credentials=describe_api_key,
    lists_tasks=False,
    lookup_form="none",
    dedupes_external_ids=False,
    echoes_external_id=False,
    text_limits=(500, 200),
    dialect=RelayDialect(),
)
KLING = Profile(
    name="kling",
    description="Kling's own API",
    api_path="/v1/videos/image2video",
    check_credentials=check_jwt,
    describe_credentials=describe_jwt,
    lists_tasks=True,
    lookup_form="none",
    dedupes_external_ids=False,
    echoes_external_id=True,
    text_limits=(2500, 2500),
    dialect=KlingDialect(),
)
PROFILES = {profile.name: profile for profile in (COMETAPI, KLING)}
