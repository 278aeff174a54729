"""Limits on what the run asks of the provider: concurrent task slots, and requests per minute.

The rate limiter is a token bucket written here rather than taken from aiolimiter because it
must run under anyio (aiolimiter is asyncio-only) and take an injected clock.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from batchgen.state.leases import SlotLeases

SHARED_RETRY = 0.25  # seconds between asks for an account slot other runs hold

Clock = Callable[[], float]


class SlotLimiter:
    """At most `cap` provider tasks in flight. The cap starts at the configured concurrency and
    drops to what is actually held when the provider says its slots are full (1303). It then
    probes one slot higher after `patience` tasks finish cleanly; each refused probe doubles the
    patience, each probe that holds resets it, so a hard account limit costs a handful of
    refused creates per run rather than one per wave."""

    def __init__(self, limit: int, *, floor: int = 1, shared: SlotLeases | None = None) -> None:
        self.shared = shared  # the account's slots, shared with its other runs (leases.py)
        self.limit = max(1, limit)
        self.cap = self.limit
        self.floor = floor
        self.in_use = 0
        self.refusals = 0
        self._patience = self.limit
        self._proven = 0
        self._clean_finishes = 0
        self._changed = anyio.Event()

    async def acquire(self) -> None:
        while self.in_use >= self.cap:
            await self._wait_for_change()
        self.in_use += 1
        try:
            while self.shared is not None and not self.shared.try_take():
                with anyio.move_on_after(SHARED_RETRY):
                    await self._wait_for_change()
        except BaseException:
            self.in_use -= 1
            raise

    def take_free(self, most: int) -> int:
        """Take up to `most` more slots that are free now, without waiting: the slots of
        creates that leave together. How many were taken."""
        free = min(most, self.cap - self.in_use)
        if free <= 0:
            return 0
        if self.shared is not None:
            free = self.shared.take(free)
        self.in_use += free
        return free

    def trim(self) -> None:
        """Nothing more to create for now: the account's slots this run kept go back."""
        if self.shared is not None:
            self.shared.trim()

    def adopt(self) -> None:
        """Count a task the provider already holds (found on resume), even past the cap."""
        self.in_use += 1
        if self.shared is not None:
            self.shared.adopt()

    def accepted(self) -> None:
        """A create holding a slot was accepted: `in_use` tasks are known to fit."""
        if self.shared is not None:
            self.shared.accepted()
        if self.in_use > self._proven:
            self._proven = self.in_use
            self._patience = max(1, self.cap)

    def release(self, *, finished: bool = True) -> None:
        """A held task ended (`finished`) or a slot was given back unused."""
        self.in_use = max(0, self.in_use - 1)
        if self.shared is not None:
            self.shared.give_back(finished=finished)
        if finished and self.cap < self.limit:
            self._clean_finishes += 1
            if self._clean_finishes >= self._patience:
                self.cap += 1
                self._clean_finishes = 0
        self._notify()

    def throttled(self) -> None:
        """The provider refused a create for lack of slots; the caller still releases the
        slot that create held."""
        self.refusals += 1
        if self.shared is not None:
            self.shared.throttled()
        self.cap = max(self.floor, min(self.cap, self.in_use - 1))
        self._clean_finishes = 0
        self._patience = min(self._patience * 2, 1024)

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class RateLimiter:
    """A token bucket: `per_minute` requests a minute, in bursts of at most `burst`."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int | None = None,
        clock: Clock = anyio.current_time,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute // 60) or 1))
        self._tokens = self.burst
        self._clock = clock
        self._stamp: float | None = None
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                wait = self._take()
                if wait <= 0:
                    return
                await anyio.sleep(wait)

    def _take(self) -> float:
        """Take a token if one is there (returns 0), else the seconds until one is."""
        now = self._clock()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate
