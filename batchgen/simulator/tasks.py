"""The simulated account: tasks, their lifecycle and slots. Pure; the clock is a parameter."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Task:
    task_id: str
    external_task_id: str | None
    created: float
    finishes: float
    fails: bool
    image_key: str
    duration: str
    url_serial: int = 0

    def status(self, now: float) -> str:
        if now >= self.finishes:
            return "failed" if self.fails else "succeed"
        if now < self.created + 0.1 * (self.finishes - self.created):
            return "submitted"
        return "processing"


@dataclass
class Account:
    """Every task of the simulated account, and the counters tests read."""

    rng: random.Random
    tasks: dict[str, Task] = field(default_factory=dict)
    by_external: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # creation order
    counters: Counter[str] = field(default_factory=Counter)
    submissions: Counter[str] = field(default_factory=Counter)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    _active: list[float] = field(default_factory=list)  # heap of finish times
    _next_id: int = 2032273942220931072
    max_active: int = 0

    def active(self, now: float) -> int:
        while self._active and self._active[0] <= now:
            heapq.heappop(self._active)
        return len(self._active)

    def create(self, now: float, latency: tuple[float, float], fail_rate: float,
               external_id: str | None, image_key: str, duration: str) -> Task:
        self._next_id += self.rng.randint(1, 997)
        generation = self.rng.uniform(*latency)
        task = Task(str(self._next_id), external_id, now, now + generation,
                    self.rng.random() < fail_rate, image_key, duration)
        self.tasks[task.task_id] = task
        self.order.append(task.task_id)
        if external_id:
            self.by_external[external_id] = task.task_id
            self.submissions[external_id] += 1
        heapq.heappush(self._active, task.finishes)
        self.max_active = max(self.max_active, len(self._active))
        self.spans[task.task_id] = (task.created, task.finishes)
        self.counters["creates_accepted"] += 1
        return task

    def find(self, key: str) -> Task | None:
        """A task by task_id or by external_task_id."""
        task = self.tasks.get(key)
        if task is None and key in self.by_external:
            task = self.tasks[self.by_external[key]]
        return task

    def newest(self, page: int, size: int) -> list[Task]:
        end = len(self.order) - (page - 1) * size
        start = max(0, end - size)
        return [self.tasks[t] for t in reversed(self.order[start:max(0, end)])]

    def busy_seconds(self, now: float) -> float:
        return sum(min(end, now) - start for start, end in self.spans.values() if start <= now)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            **self.counters,
            "submissions_per_external_id": dict(self.submissions),
            "max_active": self.max_active,
            "active": self.active(now),
            "busy_seconds": self.busy_seconds(now),
            "tasks": {tid: list(span) for tid, span in self.spans.items()},
        }
