"""Tasks of the simulated account and their lifecycle. Pure: time is the `now` argument and
randomness the `rng` given at construction.

A task is `submitted` for the first tenth of its generation time, then `processing`, then
`succeed` or `failed` at `created + generation`. It holds one slot from creation until then.
Slots are counted with a heap of finish times, so each request costs O(log n) in the number of
tasks however many there are.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from batchgen.simulator.footage import VideoSpec

SUBMITTED_SHARE = 0.1
FIRST_TASK_ID = 2032273942220931072  # 19 digits, like the ids in the docs
MAX_ID_STEP = 997


@dataclass(frozen=True, slots=True)
class Task:
    """One accepted generation: what was asked and when it ends."""

    task_id: str
    external_task_id: str | None
    created: float
    generation: float
    fails: bool
    image_key: str
    duration: str
    units: str  # charged on success
    video: VideoSpec | None = None  # what its video shows; None: the image at image_key

    @property
    def finishes(self) -> float:
        return self.created + self.generation

    def status(self, now: float) -> str:
        """`submitted`, `processing`, `succeed` or `failed` at `now`."""
        if now >= self.finishes:
            return "failed" if self.fails else "succeed"
        if now < self._processing_from:
            return "submitted"
        return "processing"

    def updated(self, now: float) -> float:
        """When the status seen at `now` began."""
        if now >= self.finishes:
            return self.finishes
        return self.created if now < self._processing_from else self._processing_from

    @property
    def _processing_from(self) -> float:
        return self.created + SUBMITTED_SHARE * self.generation


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a create asks for, as the book needs it."""

    external_task_id: str | None
    image_key: str
    duration: str
    units: str
    video: VideoSpec | None = None


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
        fails = self.rng.random() < fail_rate
        task = Task(
            str(self._last_id),
            new.external_task_id,
            now,
            generation,
            fails,
            new.image_key,
            new.duration,
            new.units,
            new.video,
        )
        self.tasks[task.task_id] = task
        self.order.append(task.task_id)
        if task.external_task_id:
            self._by_external[task.external_task_id] = task.task_id
        heapq.heappush(self._running, (task.finishes, generation))
        self.max_active = max(self.max_active, len(self._running))
        return task

    def has_external(self, external_task_id: str) -> bool:
        return external_task_id in self._by_external

    def by_external(self, external_task_id: str) -> Task | None:
        task_id = self._by_external.get(external_task_id)
        return None if task_id is None else self.tasks[task_id]

    def page(self, number: int, size: int) -> list[Task]:
        """Page `number` (from 1) of `size` tasks, newest first."""
        end = len(self.order) - (number - 1) * size
        start = max(0, end - size)
        return [self.tasks[t] for t in reversed(self.order[start : max(0, end)])]

    def spans(self) -> Iterator[tuple[str, float, float]]:
        """(task_id, created, finishes) of every task, oldest first."""
        for task_id in self.order:
            task = self.tasks[task_id]
            yield task_id, task.created, task.finishes

    def external_ids(self) -> Iterator[str]:
        return iter(self._by_external)
