"""The provider client the runner uses: create, query, look up, list, each only where the
provider can do it (`capabilities`), each answer checked before it is believed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import quote

from batchgen.errors import (
    ContentRefused,
    OutcomeUnknown,
    ProviderUnreachable,
    RetryableError,
    TaskNotFound,
    Unsupported,
)
from batchgen.providers.answers import MODERATION, TOKEN_CODES, RequestKind
from batchgen.providers.auth import BearerKey
from batchgen.providers.profiles import Capabilities, Profile
from batchgen.providers.task import TaskInfo, task_in, tasks_in
from batchgen.providers.transport import Transport

LIST_PAGE_MAX = 500


LookupForm = Literal["path", "query"]


@dataclass(frozen=True, slots=True)
class Looked:
    """What one look-up by external id found: the task, when its answer echoes exactly that
    id, and what came back, in words (kept as the job's evidence)."""

    task: TaskInfo | None
    answer: str


class Provider:
    """One provider account, reached through `transport`, able to do what `capabilities`
    (its profile's) says beyond create, query and look-ups."""

    def __init__(self, profile: Profile, transport: Transport) -> None:
        self.profile = profile
        self.transport = transport
        self.capabilities: Capabilities = profile.capabilities
        self.list_refused: str | None = None  # why the documented list was not served here

    @property
    def has_api_key(self) -> bool:
        """Kling's own API reached with an API Key: the newer `/tasks` queries are open."""
        return self.profile.signs_jwt and isinstance(self.transport.auth, BearerKey)

    async def tasks_named(
        self, param: Literal["task_ids", "external_task_ids"], ids: list[str]
    ) -> list[TaskInfo]:
        """GET /tasks?task_ids=a,b or ?external_task_ids=a,b (API Key only, §18.2 (7)): the
        tasks the provider shows for those ids; whether legacy /v1 tasks appear there is not
        documented, so a run uses it only once it has seen one of its own there."""
        if not self.has_api_key:
            raise Unsupported("GET /tasks needs Kling's API Key (KLING_API_KEY)")
        doc = await self._call("lookup", "GET", "/tasks", params={param: ",".join(ids)})
        tasks = tasks_in(doc)
        if tasks is None:
            raise RetryableError("the /tasks answer holds no list")
        return [task for task in map(self._told, tasks) if task is not None]

    @property
    def lists_tasks(self) -> bool:
        """The provider documents a task list and has not refused to serve it."""
        return self.capabilities.task_list and self.list_refused is None

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def calls(self) -> int:
        return self.transport.calls

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def create(self, body: Mapping[str, Any]) -> TaskInfo:
        """Submit a task. A success whose answer holds no task id is an unknown outcome."""
        doc = await self._call("create", "POST", self.profile.route, json_body=body)
        task = self._told(task_in(doc))
        if task is None:
            said = doc.get("message") if isinstance(doc, Mapping) else None
            if isinstance(said, str) and MODERATION.search(said):
                # A "success" envelope that says moderation refused it, with no task (E34).
                raise ContentRefused(self.transport.redact(said))
            raise OutcomeUnknown("the answer to the create holds no task id")
        return task

    async def get(self, task_id: str) -> TaskInfo:
        """Query one task by its task id."""
        doc = await self._call("query", "GET", f"{self.profile.route}/{quote(task_id, safe='')}")
        task = self._told(task_in(doc))
        if task is None:
            raise RetryableError(f"the answer about task {task_id} holds no task")
        if task.task_id != task_id:
            raise RetryableError(f"asked for task {task_id}, the answer is about {task.task_id}")
        return task

    async def look_up(self, external_id: str, form: LookupForm) -> Looked:
        """Ask for the task held under `external_id` in one form: "path"
        (GET {route}/{id}) or "query" (GET {route}?external_task_id=). Only an answer that
        echoes exactly that id is a match; "not found", a list, or another task is said in
        words. Raises the ProviderError of an answer that is none of these."""
        if form == "path":
            path, params = f"{self.profile.route}/{quote(external_id, safe='')}", None
        else:
            path, params = self.profile.route, {"external_task_id": external_id}
        try:
            doc = await self._call("lookup", "GET", path, params=params)
        except TaskNotFound as error:
            return Looked(None, f"not found ({error.describe()})")
        listed = tasks_in(doc)
        if listed is not None:
            return Looked(None, f"a list of {len(listed)} task(s), not the task asked for")
        task = self._told(task_in(doc))
        if task is None:
            return Looked(None, "an answer holding no task")
        if task.external_task_id != external_id:
            echoed = task.external_task_id or "no external id"
            return Looked(None, f"task {task.task_id}, echoing {echoed}: not a match")
        return Looked(task, f"task {task.task_id}, echoing {external_id}")

    async def list_tasks(self, page: int = 1, page_size: int = LIST_PAGE_MAX) -> list[TaskInfo]:
        """One page of the account's tasks, newest first. Raises Unsupported where the
        provider has no task list, or answered a list call as a route it does not serve (from
        then on it is not asked again)."""
        if not self.lists_tasks:
            raise Unsupported(self.list_refused or f"{self.name} has no task list")
        params = {"pageNum": page, "pageSize": max(1, min(page_size, LIST_PAGE_MAX))}
        try:
            doc = await self._call("list", "GET", self.profile.route, params=params)
        except (TaskNotFound, ProviderUnreachable) as error:
            self.list_refused = f"the task list is not served here ({error.describe()})"
            raise Unsupported(self.list_refused) from None
        tasks = tasks_in(doc)
        if tasks is None:
            raise RetryableError("the task list answer holds no list")
        return [task for task in map(self._told, tasks) if task is not None]

    def _told(self, task: TaskInfo | None) -> TaskInfo | None:
        """A task as the provider told it, with credentials redacted from its message (a
        failure reason is stored and shown)."""
        if task is None or not task.message:
            return task
        return replace(task, message=self.transport.redact(task.message))

    async def _call(
        self,
        kind: RequestKind,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request; a token the provider calls expired or not yet valid is renewed and the
        request sent once more (a 401 means it was not carried out)."""
        try:
            return await self.transport.call(kind, method, path, json_body=json_body, params=params)
        except RetryableError as error:
            if error.code not in TOKEN_CODES:
                raise
        self.transport.auth.invalidate()
        return await self.transport.call(kind, method, path, json_body=json_body, params=params)
