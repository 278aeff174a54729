"""Running a state's jobs: feed, poll and download stages over one provider, in one task group.

config.py        how a run behaves (RunConfig, Listen) and how it ended (RunOutcome)
policy.py        what to do after a provider error; when to poll a task (pure)
generation_times.py  how long a generation typically takes, by model, mode and duration
limits.py        the slots a run may hold, and requests per minute
gate.py          when the next create may leave: throttles and pauses after failures
reachability.py  whether the provider can be reached at all (pure)
sharing.py       what a run shares with its account's other runs: the ledger's claims, slots
context.py       what the stages share; `RunContext.record`, the one door for a job's change
lookup.py        a task found by its external id in every form the provider might answer
recovery.py      creates whose outcome is unknown, and what an earlier run left behind
rebuild.py       paid tasks the run folder names and the state lost, taken back before any create
reuse.py         a create another state of the account sent: followed, reused or pointed at
feed.py          pending jobs into the provider's slots
poll.py          every task followed until it ends
receiver.py      the callback receiver: a small HTTP server on the run's event loop
downloads.py     finished tasks' videos into the run folder, and `done`
in_place.py      done videos checked where they are (no download), at the depth asked
runner.py        a run: the stages in one task group, the commits, the signals
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchgen import lazy_names
from batchgen.runner.config import RunConfig, RunOutcome

if TYPE_CHECKING:
    from batchgen.runner.runner import Runner

__all__ = ["RunConfig", "RunOutcome", "Runner"]


# `Runner`, imported when first asked for: what reads a run's outcome (`report`) does not pay
# for importing everything a run does (the client, the downloads, PyAV).
__getattr__ = lazy_names(__name__, {"Runner": "batchgen.runner.runner"})
