"""A manifest file resolved into jobs: the front of the manifest language.

`resolve_manifest` opens the file and reads its header (raising ManifestUnreadable if it cannot be
read or parsed); `ResolvedManifest.iter_jobs` then streams the rows in manifest order and yields,
for each variant of each row, its JobSpecs, or the Problems that stop it. Problems with the
header (defaults, matrix, CSV columns...) are yielded once, first; the rows are still checked
for their own problems, but no job is yielded. A row with problems of its own yields no job
either, only every problem found in it (see `validate` for what is left out as a consequence).
A manifest without a single row is a problem too (a ManifestUnreadable with `skip_invalid`: there is
nothing to skip to).

The images of the next rows are read and decoded in the catalog's threads while a row is
checked (`ImageCatalog.prefetch`), at most `LOOKAHEAD` lookups and `WINDOW_ROWS` rows ahead.

Across rows, ids must be unique and no two variants may resolve to the same job (same request,
same sample): the later one is refused, naming the first. Only these two sets grow with the
number of rows; `check_manifest` keeps at most `max_problems` problems and counts the rest.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batchgen.errors import ManifestUnreadable, Problem
from batchgen.jobs import JobSpec, make_job
from batchgen.manifest.expand import ExpandedRow, Expander, Variant
from batchgen.manifest.images import URL_DEADLINE, ImageCatalog, http_fetch
from batchgen.manifest.source import MANIFEST_ROW, ManifestSource, open_manifest
from batchgen.manifest.validate import check_request, image_sources

DEFAULTS = "defaults"  # a problem of a value a row took from the manifest's defaults
LOOKAHEAD = 64
WINDOW_ROWS = 256
NO_ROWS = "the manifest has no rows: list them under `rows:`, or give an `images:` glob"


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """How to resolve: `inline_urls` downloads URL images and sends them as base64;
    `skip_invalid` and `max_problems` are for the callers that act on the problems."""

    inline_urls: bool = False
    skip_invalid: bool = False
    max_problems: int = 200
    url_deadline: float = URL_DEADLINE  # seconds to download one URL image, all of it


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Every row checked: the number of valid jobs, the first problems and their total, and
    the first invalid rows (variant ids)."""

    jobs: int
    problems: list[Problem]
    total_problems: int
    invalid_rows: list[str]

    @property
    def ok(self) -> bool:
        return self.total_problems == 0


class _Seen:
    """Row ids and job ids met so far, to refuse duplicates."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.jobs: dict[str, str] = {}

    def row_problem(self, row_id: str, line: int) -> Problem | None:
        if row_id not in self.rows:
            self.rows[row_id] = line
            return None
        first = self.rows[row_id]
        where = f" at line {first}" if first else ""
        return Problem(row_id, line, "id", f"{row_id!r} is already the id of the row{where}")

    def job_problem(self, variant: Variant, jobs: list[JobSpec]) -> Problem | None:
        for job in jobs:
            other = self.jobs.get(job.job_id)
            if other is not None:
                message = (
                    f"same request and sample as row {other!r}: it would be paid for twice "
                    "(change a field, or use repeat for more samples)"
                )
                return Problem(variant.row_id, variant.line, "request", message)
        for job in jobs:
            self.jobs[job.job_id] = job.row_id
        return None


class ResolvedManifest:
    """An opened manifest; see the module docstring."""

    def __init__(
        self, source: ManifestSource, catalog: ImageCatalog, options: ResolveOptions
    ) -> None:
        self.source = source
        self.catalog = catalog
        self.options = options
        self.expander = Expander(source.header, source.lines, source.columns)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def header_problems(self) -> list[Problem]:
        return self.source.problems + self.expander.problems

    def iter_jobs(self) -> Iterator[JobSpec | Problem]:
        """Each variant's jobs, or its problems, in manifest order (streams the file)."""
        yield from self.header_problems
        sendable = not self.header_problems
        seen = _Seen()
        rows = 0
        expanded = (self.expander.expand(raw) for raw in self.source.rows())
        for row in self._prefetched(expanded):
            rows += 1
            yield from self._row(row, seen, sendable)
        if rows == 0 and sendable:
            if self.options.skip_invalid:  # nothing to skip to: as refused as without the flag
                raise ManifestUnreadable(f"{self.path}: {NO_ROWS}")
            yield Problem(MANIFEST_ROW, self.source.lines.get("rows", 0), "rows", NO_ROWS)

    def _prefetched(self, rows: Iterable[ExpandedRow]) -> Iterator[ExpandedRow]:
        """`rows`, with the images of the ones ahead already being read and decoded. A row is
        held back only while lookups it could overlap with are under way."""
        window: deque[ExpandedRow] = deque()
        catalog = self.catalog
        for row in rows:
            for variant in row.variants:
                for source in image_sources(variant.fields):
                    catalog.prefetch(source, variant.base)
            if not window and not catalog.pending:
                yield row
                continue
            window.append(row)
            while window and (len(window) > WINDOW_ROWS or not 0 < catalog.pending < LOOKAHEAD):
                yield window.popleft()
        yield from window

    def _row(self, row: ExpandedRow, seen: _Seen, sendable: bool) -> Iterator[JobSpec | Problem]:
        problems = list(row.problems)
        if row.source_row != MANIFEST_ROW:
            duplicate = seen.row_problem(row.source_row, row.line)
            problems += [duplicate] if duplicate is not None else []
        yield from problems
        send = sendable and not problems
        for variant in row.variants:
            yield from self._variant(variant, seen, row.suspects, send)

    def _variant(
        self, variant: Variant, seen: _Seen, suspects: frozenset[str], send: bool
    ) -> Iterator[JobSpec | Problem]:
        checked = check_request(variant.fields, self.catalog, variant.base, suspects)
        if isinstance(checked, list):
            for where, message in checked:
                inherited = where.split(".")[0] in variant.from_defaults
                field = f"{DEFAULTS}.{where}" if inherited else where
                yield Problem(variant.row_id, variant.line, field, message)
            return
        if not send:
            return
        jobs = [_job(variant, checked, sample) for sample in range(variant.repeat)]
        clash = seen.job_problem(variant, jobs)
        if clash is not None:
            yield clash
            return
        yield from jobs


def _job(variant: Variant, request: dict[str, object], sample: int) -> JobSpec:
    return make_job(
        request,
        variant.sample_id(sample),
        source_row=variant.source_row,
        line=variant.line,
        sample=sample,
        variant={**variant.labels, "sample": sample},
        metadata=variant.metadata,
    )


def resolve_manifest(path: Path, options: ResolveOptions | None = None) -> ResolvedManifest:
    """Open `path` (YAML or CSV). Raises ManifestUnreadable if it cannot be read or parsed."""
    options = options or ResolveOptions()
    source = open_manifest(path)
    fetch = functools.partial(http_fetch, deadline=options.url_deadline)
    catalog = ImageCatalog(path.parent, inline_urls=options.inline_urls, fetch=fetch)
    return ResolvedManifest(source, catalog, options)


def check_manifest(manifest: ResolvedManifest) -> ValidationReport:
    """Check every row (consumes `iter_jobs`); keeps the first `options.max_problems`."""
    return check_items(manifest.iter_jobs(), manifest.options.max_problems)


def check_items(items: Iterable[JobSpec | Problem], max_problems: int) -> ValidationReport:
    """The report of these resolved rows; keeps the first `max_problems` problems."""
    jobs = total = 0
    problems: list[Problem] = []
    invalid: list[str] = []
    for item in items:
        if isinstance(item, JobSpec):
            jobs += 1
            continue
        total += 1
        if len(problems) < max_problems:
            problems.append(item)
        if len(invalid) < max_problems and (not invalid or invalid[-1] != item.row):
            invalid.append(item.row)
    return ValidationReport(jobs, problems, total, invalid)
