"""Running a state's jobs: feed, poll and download stages over one provider (runner.py)."""

from batchgen.runner.config import RunConfig, RunOutcome
from batchgen.runner.runner import Runner

__all__ = ["RunConfig", "RunOutcome", "Runner"]
