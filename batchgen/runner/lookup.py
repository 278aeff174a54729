"""Finding the task a provider may hold for a job whose create may have been accepted: tried,
never assumed (kling-api.md §18.2 (1)).

The external id is asked for in every form a provider might answer: in the path
(GET {route}/{id}), in the query string (GET {route}?external_task_id=) and, where the
provider documents a task list, by scanning the list for `task_info.external_task_id`. With
Kling's API Key, the newer `GET /tasks?external_task_ids=` is asked too, once the run has seen
one of its own tasks appear there (whether legacy tasks do is not documented, §18.2 (7)). Only
an exact echo of the id is a match. The form that first finds a task on a provider is
recorded in the state and asked first from then on. Every answer, found or not, is kept as the
job's evidence (state/lookups.py); a negative answer is evidence, never a licence to resend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from batchgen.errors import (
    AccountError,
    OutcomeUnknown,
    ProviderError,
    RetryableError,
    ThrottledError,
    Unsupported,
)
from batchgen.providers import LIST_PAGE_MAX, Provider, TaskInfo
from batchgen.state.lookups import Sighting
from batchgen.state.store import Store

FORMS = ("tasks", "path", "query", "list")
LIST_PAGES = 20  # pages of the task list scanned (newest first): 10,000 tasks
LIST_FRESH = 2.0  # seconds one scan of the list answers for the jobs sent before it began


@dataclass(slots=True)
class ListScan:
    """One scan of the task list: external id → the newest task under it, and what the scan
    saw."""

    at: float  # monotonic
    began: float  # wall clock: a create sent after this may be missing from the scan
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    seen: int = 0
    failure: str | None = None  # the list could not be read this time
    refused: str | None = None  # the list is not served at all


@dataclass(frozen=True, slots=True)
class Found:
    """What the look-ups of one job found: the task (an exact echo), in which form, and every
    answer on the way."""

    task: TaskInfo | None
    form: str | None
    sightings: list[Sighting]
    unanswered: int = 0  # forms that gave no answer to believe (a 5xx, a timeout...)


class Finder:
    """Looks jobs' external ids up on one provider, recording what it finds."""

    def __init__(self, provider: Provider, store: Store, wall: Callable[[], float]) -> None:
        self.provider = provider
        self.store = store
        self.wall = wall
        self._scan: ListScan | None = None
        self._scanning = anyio.Lock()

    @property
    def confirmed_key(self) -> str:
        """The state's meta key of the form confirmed on this provider and base URL."""
        return f"lookup_form:{self.provider.name}:{self.provider.transport.base_url}"

    @property
    def tasks_key(self) -> str:
        """The state's meta key saying whether GET /tasks shows this run's legacy tasks."""
        return f"tasks_show_legacy:{self.provider.transport.base_url}"

    async def forms(self) -> list[str]:
        """The forms to ask in, the confirmed one first; the list only where documented,
        /tasks only where it has shown one of the run's own tasks."""
        usable = {"list": self.provider.lists_tasks, "tasks": await self._tasks_show_ours()}
        forms = [f for f in FORMS if usable.get(f, True)]
        confirmed = self.store.get_meta(self.confirmed_key)
        if confirmed in forms:
            forms.remove(confirmed)
            forms.insert(0, confirmed)
        return forms

    async def find(self, job_id: str, external_id: str, sent_at: float | None = None) -> Found:
        """Ask for `external_id` (whose create was sent at `sent_at`, wall clock) in each form
        until one finds its task; the answers are recorded as the job's evidence. AccountError
        is raised (no look-up can get past it); any other refusal is an answer like the
        others."""
        sightings: list[Sighting] = []
        unanswered = 0
        found = None
        for form in await self.forms():
            task, answer, answered = await self._ask(form, external_id, sent_at)
            sightings.append(Sighting(self.wall(), form, answer))
            unanswered += not answered
            if task is not None:
                found = Found(task, form, sightings)
                self.store.set_meta(self.confirmed_key, form)
                break
        found = found or Found(None, None, sightings, unanswered)
        self.store.lookups.record(job_id, sightings)
        return found

    async def _ask(
        self, form: str, external_id: str, sent_at: float | None
    ) -> tuple[TaskInfo | None, str, bool]:
        """The task (or None), what came back, and whether it was an answer at all."""
        try:
            if form == "list":
                return await self._in_list(external_id, sent_at)
            if form == "tasks":
                return await self._in_tasks(external_id)
            looked = await self.provider.look_up(external_id, "path" if form == "path" else "query")
        except AccountError:
            raise
        except (RetryableError, ThrottledError, OutcomeUnknown) as error:
            return None, f"no answer to believe ({error.describe()})", False
        except ProviderError as error:
            return None, f"refused ({error.describe()})", True
        return looked.task, looked.answer, True

    async def _in_tasks(self, external_id: str) -> tuple[TaskInfo | None, str, bool]:
        tasks = await self.provider.tasks_named("external_task_ids", [external_id])
        task = next((t for t in tasks if t.external_task_id == external_id), None)
        if task is None:
            return None, f"/tasks shows none of {len(tasks)} task(s) echoing it", True
        return task, f"task {task.task_id} in /tasks, echoing {external_id}", True

    async def _tasks_show_ours(self) -> bool:
        """Whether GET /tasks shows this run's legacy tasks: asked once, with a task id the
        state holds, and the answer kept in the state."""
        if not self.provider.has_api_key:
            return False
        said = self.store.get_meta(self.tasks_key)
        if said is not None:
            return said == "yes"
        known = self.store.any_task_id()
        if known is None:
            return False
        try:
            shown = await self.provider.tasks_named("task_ids", [known])
        except AccountError:
            raise
        except ProviderError:
            return False
        seen = any(task.task_id == known for task in shown)
        self.store.set_meta(self.tasks_key, "yes" if seen else "no")
        return seen

    async def _in_list(
        self, external_id: str, sent_at: float | None
    ) -> tuple[TaskInfo | None, str, bool]:
        scan = await self._fresh_scan(sent_at)
        task = scan.tasks.get(external_id)
        if task is not None:
            return task, f"task {task.task_id} in the list, echoing {external_id}", True
        if scan.refused is not None:
            return None, scan.refused, True
        if scan.failure is not None:
            return None, f"the list could not be read: {scan.failure}", False
        return None, f"not among the {scan.seen} newest task(s) of the list", True

    async def _fresh_scan(self, sent_at: float | None) -> ListScan:
        """A scan of the list begun after `sent_at` (None: now) and no older than LIST_FRESH
        seconds: the jobs settled together share one."""
        async with self._scanning:
            now = anyio.current_time()
            scan = self._scan
            stale = scan is None or now - scan.at > LIST_FRESH
            if stale or sent_at is None or scan is None or scan.began <= sent_at:
                self._scan = scan = await self._read_list(now)
            return scan

    async def _read_list(self, now: float) -> ListScan:
        return await read_list(self.provider, now, self.wall())


async def read_list(provider: Provider, now: float, began: float) -> ListScan:
    """The newest LIST_PAGES pages of the provider's task list, by external id (`now`: the
    event loop's clock, `began`: the wall clock). AccountError is raised; any other refusal
    is kept in the scan with what was read before it."""
    scan = ListScan(now, began)
    try:
        for page in range(1, LIST_PAGES + 1):
            tasks = await provider.list_tasks(page, LIST_PAGE_MAX)
            scan.seen += len(tasks)
            for task in tasks:
                if task.external_task_id and task.external_task_id not in scan.tasks:
                    scan.tasks[task.external_task_id] = task
            if len(tasks) < LIST_PAGE_MAX:
                break
    except AccountError:
        raise
    except Unsupported as error:
        scan.refused = str(error)
    except ProviderError as error:
        scan.failure = error.describe()
    return scan
