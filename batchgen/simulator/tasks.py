"""Tasks of the simulated account and their lifecycle. Pure: time is the `now` argument and
randomness the `rng` given at construction.

A task is `submitted` for the first tenth of its generation time, then `processing`, then
`succeed` or `failed` at `created + generation`. A task whose input image is unusable is
accepted all the same (kling-api.md §17 E17): it stays `submitted` and fails after
IMAGE_CHECK_SECONDS (or its generation time, if shorter). A task holds one slot from creation
until it ends. Slots are counted with a heap of finish times, so each request costs O(log n)
in the number of tasks however many there are.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from batchgen.simulator.footage import VideoSpec

SUBMITTED_SHARE = 0.1
IMAGE_CHECK_SECONDS = 1.65  # E17: "Image pixel is invalid" 1.65 s after the create
FIRST_TASK_ID = 2032273942220931072  # 19 digits, like the ids in the docs
MAX_ID_STEP = 997


class Outcome(Enum):
    """How a task ends."""

    SUCCEED = "succeed"
    FAILED = "failed"  # the generation fails (e.g. moderation)
    IMAGE_REJECTED = "image_rejected"  # the input image is unusable; nothing is charged
    NO_SLOT = "no_slot"  # accepted with every slot taken, then failed (a relay's 1303)


@dataclass(frozen=True, slots=True)
class Task:
    """One accepted generation: what was asked, when it ends and how."""

    task_id: str
    external_task_id: str | None
    created: float
    generation: float
    outcome: Outcome
    image_key: str
    duration: str
    units: str  # charged on success
    callback_url: str | None = None
    video: VideoSpec | None = None  # what its video shows; None: the image at image_key
    watermarked: bool = False  # watermark_info asked for a watermarked copy too
    no_video: bool = False  # a fault: it succeeds with no video in its result

    @property
    def finishes(self) -> float:
        return self.created + self.generation

    @property
    def processing_from(self) -> float:
        """When the task turns `processing` (its end, for a rejected image: it never does)."""
        if self.outcome in (Outcome.IMAGE_REJECTED, Outcome.NO_SLOT):
            return self.finishes
        return self.created + SUBMITTED_SHARE * self.generation

    def status(self, now: float) -> str:
        """`submitted`, `processing`, `succeed` or `failed` at `now`."""
        if now >= self.finishes:
            return "succeed" if self.outcome is Outcome.SUCCEED else "failed"
        return "submitted" if now < self.processing_from else "processing"

    def updated(self, now: float) -> float:
        """When the status seen at `now` began."""
        if now >= self.finishes:
            return self.finishes
        return self.created if now < self.processing_from else self.processing_from

    def changes(self) -> list[float]:
        """The moments its status changes, creation first: one for each status it takes."""
        moments = [self.created, self.processing_from, self.finishes]
        return sorted(set(moments))


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a create asks for, as the book needs it."""

    external_task_id: str | None
    image_key: str
    duration: str
    units: str
    image_rejected: bool = False
    no_slot: bool = False
    fails: bool | None = None  # decided by the prompt (fail_mode "prompt"); None: drawn
    callback_url: str | None = None
    video: VideoSpec | None = None
    watermarked: bool = False
    no_video: bool = False


@dataclass
class TaskBook:
    """Every task of the account, in creation order, with slot accounting.

    `active(now)` settles the tasks that ended by `now`: their generation time joins
    `busy_seconds`. Calls must come with non-decreasing `now`.
    """

    rng: random.Random
    tasks: dict[str, Task] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    max_active: int = 0
    busy_seconds: float = 0.0
    _created: list[float] = field(default_factory=list)  # parallel to `order`
    _by_external: dict[str, str] = field(default_factory=dict)
    _running: list[tuple[float, float]] = field(default_factory=list)  # (finishes, generation)
    _last_id: int = FIRST_TASK_ID

    def active(self, now: float) -> int:
        """Tasks holding a slot at `now`."""
        while self._running and self._running[0][0] <= now:
            self.busy_seconds += heapq.heappop(self._running)[1]
        return len(self._running)

    def create(
        self, new: NewTask, now: float, latency: tuple[float, float], fail_rate: float
    ) -> Task:
        """Record a task; its generation time and outcome are drawn from the book's rng."""
        self.active(now)
        self._last_id += self.rng.randint(1, MAX_ID_STEP)
        generation = self.rng.uniform(*latency)
        drawn = self.rng.random() < fail_rate
        fails = drawn if new.fails is None else new.fails
        outcome = Outcome.FAILED if fails else Outcome.SUCCEED
        if new.image_rejected:
            generation, outcome = min(IMAGE_CHECK_SECONDS, generation), Outcome.IMAGE_REJECTED
        elif new.no_slot:
            generation, outcome = min(IMAGE_CHECK_SECONDS, generation), Outcome.NO_SLOT
        task = Task(
            str(self._last_id),
            new.external_task_id,
            now,
            generation,
            outcome,
            new.image_key,
            new.duration,
            new.units,
            new.callback_url,
            new.video,
            new.watermarked,
            new.no_video,
        )
        self._record(task)
        return task

    def has_external(self, external_task_id: str) -> bool:
        return external_task_id in self._by_external

    def by_external(self, external_task_id: str) -> Task | None:
        """The newest task with this external id."""
        task_id = self._by_external.get(external_task_id)
        return None if task_id is None else self.tasks[task_id]

    def page(self, number: int, size: int, created_by: float) -> list[Task]:
        """Page `number` (from 1) of `size` tasks created by `created_by`, newest first."""
        end = bisect_right(self._created, created_by) - (number - 1) * size
        start = max(0, end - size)
        return [self.tasks[t] for t in reversed(self.order[start : max(0, end)])]

    def external_ids(self) -> dict[str, list[str]]:
        """external_task_id → the ids of every task created under it, oldest first (what a
        person sees in the provider's dashboard)."""
        found: dict[str, list[str]] = {}
        for task_id in self.order:
            external = self.tasks[task_id].external_task_id
            if external:
                found.setdefault(external, []).append(task_id)
        return found

    def spans(self) -> Iterator[tuple[str, float, float]]:
        """(task_id, created, finishes) of every task, oldest first."""
        for task_id in self.order:
            task = self.tasks[task_id]
            yield task_id, task.created, task.finishes

    def _record(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.order.append(task.task_id)
        self._created.append(task.created)
        if task.external_task_id:
            self._by_external[task.external_task_id] = task.task_id
        heapq.heappush(self._running, (task.finishes, task.generation))
        self.max_active = max(self.max_active, len(self._running))
