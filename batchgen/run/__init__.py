"""Running a state's jobs: feed, poll and download stages over one provider (see runner.py)."""

from batchgen.run.config import RunConfig, RunOutcome
from batchgen.run.runner import Runner

__all__ = ["RunConfig", "RunOutcome", "Runner"]
