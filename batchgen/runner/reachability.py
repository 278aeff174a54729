"""Whether the provider can be reached at all. Pure: time is an argument.

Every request reports whether an answer arrived (any answer, an error included) or no
connection could be made. When nothing but failed connections has been seen for a stretch
(`at_start` seconds from the first request if no answer ever came, `later` seconds once one
has), the run stops: exit 3, nothing failed, the same command resumes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Reachability:
    at_start: float = 15.0
    later: float = 120.0
    answered_once: bool = False
    failing_since: float | None = None
    last_failure: str = ""

    def answered(self) -> None:
        self.answered_once = True
        self.failing_since = None

    def failed(self, now: float, reason: str) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.last_failure = reason

    def unreachable(self, now: float) -> bool:
        """Whether only failed connections have been seen for long enough to stop."""
        if self.failing_since is None:
            return False
        window = self.later if self.answered_once else self.at_start
        return now - self.failing_since >= window
