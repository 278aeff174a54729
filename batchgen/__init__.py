"""batchgen: bulk image-to-video generation on the Kling API, resumable and reproducible.

The map: every module and package of batchgen, in the order a job passes through them (each
package's own docstring maps its modules the same way).

    errors.py       the whole exception tree; the CLI maps it to exit codes in one place
    status.py       a job's states and the one table of legal transitions between them
    jobs.py         a job: its request, its id (the hash of what is sent), its external id
    events.py       what a run reports while it works; progress bars and logs subscribe
    progress.py     those subscribers: the terminal bar, plain or JSON lines, run.log
    interrupts.py   Ctrl-C and SIGTERM taken as one interrupt, from the command's first moment
    settings.py     every setting of a run (flags, environment), checked once
    manifest/       a manifest file → rows → variants → checked requests → JobSpecs; its schema
    money/          the price table, what a batch costs, the budget, what was spent
    state/          the only SQL: a run's jobs and their lifecycle, durable; db.py is the seam
    load.py         a manifest into a state: validate, load or reuse, lock file, fingerprint
    providers/      the seam to the network: each provider's URLs, auth, answers, callbacks
    wire.py         the clients' connections: large reads off the socket, cheap checks of idle ones
    download.py     one video from a URL into place: streamed, sniffed, synced, renamed
    media/          what each downloaded video is, and whether it is what was asked for
    output.py       the run folder: videos named by row, sidecars, index.jsonl, failed.jsonl
    runner/         feed, poll and download stages in one task group; RunContext the one door
    pipeline.py     run a loaded state: the provider's clients, the run's config, its budget
    settle.py       what a run could not finish: retry, adopt, reconcile, unknown jobs
    results/        status, report and verify of a run, and which run a command names
    export/         a run's videos as a dataset (hf, csv, webdataset)
    gallery/        one offline page to look at every job of a run
    simulator/      the built-in Kling simulator: a real HTTP server on loopback
    demo.py         the demo: the packaged manifest against the built-in simulator
    cli/            the `batchgen` command: thin commands over the library
    __main__.py     `batchgen` and `python -m batchgen`

The names below load on first use, so that `import batchgen` (and the command's first moment,
when it must already answer SIGTERM) stays light.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchgen.errors import BatchgenError, ManifestInvalid, Problem
    from batchgen.jobs import JobSpec
    from batchgen.pipeline import run
    from batchgen.settings import Settings
    from batchgen.status import JobStatus

__all__ = [
    "BatchgenError",
    "JobSpec",
    "JobStatus",
    "ManifestInvalid",
    "Problem",
    "Settings",
    "run",
]

_HOMES = {
    "BatchgenError": "batchgen.errors",
    "ManifestInvalid": "batchgen.errors",
    "Problem": "batchgen.errors",
    "JobSpec": "batchgen.jobs",
    "JobStatus": "batchgen.status",
    "Settings": "batchgen.settings",
    "run": "batchgen.pipeline",
}


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` (PEP 562): each name of `homes` (name -> module)
    imported from its module when first asked for, and kept in `package` after."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__getattr__ = lazy_names(__name__, _HOMES)
