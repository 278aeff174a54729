"""Where an export may write: a folder it creates, or one that holds only its own earlier export.

An export records the files it published in `<out>/.batchgen-export.json`. The next export into
that folder may replace and remove those files, and nothing else: any other file in it is the
user's (a `videos/holiday.mp4`, a README.md), so the folder is refused unless `force` is given,
and even then no such file is ever deleted or replaced (a file the export would write where
one of them is refuses the export, naming it). A run folder is never a destination, nor a
folder holding it, nor a folder inside it other than under RUN/export/: exporting into the run
is how paid videos were once deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from batchgen.errors import UsageError
from batchgen.output import INDEX_NAME
from batchgen.state.connect import STATE_NAME

RECORD_NAME = ".batchgen-export.json"
STAGING = ".staging"
EXPORT_DIR = "export"
SHOWN = 5


@dataclass(frozen=True, slots=True)
class Target:
    """An output folder claimed for one export: the files its earlier export wrote (`ours`,
    which may be replaced or removed) and every other file in it (`foreign`, never touched)."""

    out: Path
    ours: frozenset[str]
    foreign: frozenset[str]

    @property
    def staging(self) -> Path:
        return self.out / STAGING

    def collisions(self, written: Iterable[str]) -> list[str]:
        """The foreign files at (or above) the paths this export would publish."""
        found = set()
        for relative in written:
            parents = PurePosixPath(relative).parents
            found |= {p for p in (relative, *map(str, parents)) if p in self.foreign}
        return sorted(found)

    def remove_stale(self, written: Iterable[str], owns: Callable[[str], bool]) -> set[str]:
        """Remove the earlier export's files that this one did not write and that its format
        `owns`; returns the earlier files kept (they stay on the record)."""
        kept = set()
        for relative in sorted(self.ours - set(written)):
            path = self.out / relative
            if owns(relative) and (path.is_symlink() or path.is_file()):
                path.unlink()
            elif path.exists():
                kept.add(relative)
        return kept

    def record(self, fmt: str, run: str, files: Iterable[str]) -> None:
        """Write the record of what this export published (atomically, last)."""
        document = {"batchgen_export": 1, "format": fmt, "run": run, "files": sorted(files)}
        tmp = self.out / (RECORD_NAME + ".tmp")
        tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.out / RECORD_NAME)


def claim(out: Path, run_dir: Path, *, force: bool) -> Target:
    """Check that `out` may receive an export of `run_dir`, create it if need be, and return
    what is in it. Raises UsageError naming the folder and why not."""
    _refuse_the_run(out, run_dir)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"export destination {out} is not a folder")
    if any((out / name).exists() for name in (STATE_NAME, INDEX_NAME)):
        raise UsageError(f"{out} is a run folder: export into a folder of its own")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the export folder {out}: {exc.strerror}") from None
    if created:  # the folder is the export's from now on, even if this one is killed
        Target(out, frozenset(), frozenset()).record("", "", ())
    ours = _recorded(out)
    foreign = frozenset(_entries(out, with_staging=ours is None)) - (ours or frozenset())
    target = Target(out, ours or frozenset(), foreign)
    if foreign and not force:
        raise UsageError(
            f"{out} holds files that no export of batchgen wrote ({_listed(foreign)}): "
            "export into a new or empty folder, or add --force to write beside them "
            "(nothing in it is deleted or replaced)"
        )
    _fresh_staging(target)
    return target


def refuse_collisions(target: Target, written: Iterable[str]) -> None:
    """UsageError if publishing `written` would replace a file that is not the export's."""
    collisions = target.collisions(written)
    if collisions:
        raise UsageError(
            f"{target.out} already holds {_listed(collisions)}, which no export of batchgen "
            "wrote: nothing was published; move it away or export into another folder"
        )


def _refuse_the_run(out: Path, run_dir: Path) -> None:
    where, run = out.resolve(), run_dir.resolve()
    if where == run or run.is_relative_to(where):
        raise UsageError(
            f"{out} is {'the' if where == run else 'above the'} run folder {run_dir}: an export "
            "goes into a folder of its own (-o is the export's destination; --runs is the "
            "folder holding the runs)"
        )
    if where.is_relative_to(run) and not where.is_relative_to(run / EXPORT_DIR):
        raise UsageError(
            f"{out} is inside the run folder {run_dir}: export there only under "
            f"{run_dir / EXPORT_DIR}, or into a folder of its own"
        )


def _recorded(out: Path) -> frozenset[str] | None:
    """The files the earlier export recorded, or None when there is no usable record."""
    try:
        document = json.loads((out / RECORD_NAME).read_text(encoding="utf-8"))
        files = document["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return frozenset(f for f in files if _inside(f))


def _entries(out: Path, *, with_staging: bool) -> Iterator[str]:
    """Every file, link and special file under `out` (relative), links not followed; the
    record and (unless `with_staging`) an earlier export's staging folder left out."""
    for root, dirs, names in os.walk(out):
        here = Path(root)
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        if here == out:
            names = [n for n in names if n not in (RECORD_NAME, RECORD_NAME + ".tmp")]
            if not with_staging:
                dirs[:] = [d for d in dirs if d != STAGING]
        for name in (*names, *links):
            yield (here / name).relative_to(out).as_posix()


def _fresh_staging(target: Target) -> None:
    staging = target.staging
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise UsageError(f"{staging} is not a folder: move it away")
    if staging.exists():
        if STAGING in target.foreign or any(f.startswith(STAGING + "/") for f in target.foreign):
            raise UsageError(f"{staging} is not an export's: move it away")
        shutil.rmtree(staging)
    staging.mkdir()


def _inside(relative: str) -> bool:
    path = PurePosixPath(relative)
    return bool(relative) and not path.is_absolute() and ".." not in path.parts


def _listed(names: Iterable[str]) -> str:
    names = sorted(names)
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")
