"""Which run a command means, given as MANIFEST, RUN or STATE:

MANIFEST   a YAML or CSV manifest: its run is OUTPUT/NAME (OUTPUT from `-o`)
RUN        a run folder: the one holding state.sqlite, index.jsonl and videos/
STATE      a state file (.sqlite or .db): its run is the folder it is in

With `--database` the state is the run's schema in that PostgreSQL database, named by its run
folder (MANIFEST or RUN); a STATE file then names nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchgen.errors import UsageError
from batchgen.state.connect import STATE_NAME
from batchgen.state.store import Store

STATE_SUFFIXES = (".sqlite", ".db")


@dataclass(frozen=True, slots=True)
class RunTarget:
    """A run's folder and its state file (which may not exist yet)."""

    run_dir: Path
    state: Path
    manifest: Path | None = None  # when the run was named by its manifest
    database: str | None = None  # a PostgreSQL database holding the state instead of `state`

    @property
    def output(self) -> Path:
        """The folder holding the run's folder (`-o`)."""
        return self.run_dir.parent

    @property
    def state_elsewhere(self) -> Path | None:
        """The state file when it is not RUN/state.sqlite (what `--state` would say)."""
        return None if self.state == self.run_dir / STATE_NAME else self.state

    def existing_state(self) -> Path:
        """The state file; UsageError if there is none (on PostgreSQL, `open_state` says)."""
        if self.database is None and not self.state.is_file():
            raise UsageError(
                f"no state found at {self.state}: has this manifest been run? Runs are looked "
                f"for in the folder -o names (here {self.output}); give the one the run was "
                "given, or the run folder itself"
            )
        return self.state

    def open_state(self) -> Store:
        """The run's state, which must exist (UsageError or StateError if there is none)."""
        if self.database is None:
            return Store.open(self.existing_state())
        return Store.open(self.state, self.database, create=False)


def resolve_target(
    target: Path, output: Path, state: Path | None = None, database: str | None = None
) -> RunTarget:
    """The run `target` names (see the module's docstring); `state` overrides its state file,
    `database` keeps it there instead."""
    if database is not None:
        if state is not None or (not target.is_dir() and target.suffix in STATE_SUFFIXES):
            raise UsageError(
                "with --database the state is the run's, in that database: name the run by "
                "its folder or its manifest, not by a state file"
            )
        found = resolve_target(target, output)
        return RunTarget(found.run_dir, found.state, found.manifest, database)
    if target.is_dir():
        found = RunTarget(target, target / STATE_NAME)
    elif target.suffix in STATE_SUFFIXES:
        found = RunTarget(target.parent, target)
    else:
        name = _run_name(target, output)
        found = RunTarget(output / name, output / name / STATE_NAME, target)
    return found if state is None else RunTarget(found.run_dir, state, found.manifest)


def _run_name(manifest: Path, output: Path) -> str:
    """The name of `manifest`'s run, as the manifest says (the manifest's modules load only
    here: a run named by its folder, as a big run's `status` is, never needs them)."""
    from batchgen.load import open_manifest
    from batchgen.settings import Settings

    return open_manifest(manifest, Settings(output=output)).name
