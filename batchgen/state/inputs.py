"""What a state's jobs were loaded from: the files read (for the fingerprint of
manifest/fingerprint.py), the size and source of every input image, and the rows a load left
out (`--skip-invalid`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from batchgen.jobs import SHA_PREFIX
from batchgen.state.db import Database

InputFile = tuple[str, int | None, int | None, str | None]  # path, size, mtime_ns, image ref
InputImage = tuple[str, int | None, int | None, str | None]  # ref, width, height, source
SkippedRow = tuple[str, int, str, str]  # row, line, field, message
FINGERPRINT_KEY = "inputs"  # the meta key of the fingerprint's document
SKIPPED_KEY = "skipped_rows"  # the meta key of how many rows the last load left out
SIZES_KEPT = 4096  # image sizes an Inputs keeps in memory


class Inputs:
    """The `inputs`, `images` and `skipped` tables of one state."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Sizes of images named by their bytes' hash (which cannot change), as read: every
        # video's check asks for its input image's, and rows share images.
        self._sizes: dict[str, tuple[int, int]] = {}

    def record_fingerprint(self, files: Iterable[InputFile], document: str) -> None:
        """(path, size, mtime_ns, image ref or None) of every file the jobs came from, and the
        fingerprint's document ('' when the load cannot be fingerprinted)."""
        with self._db.transaction():
            self._db.write("DELETE FROM inputs")
            self._db.write_many(
                "INSERT INTO inputs (path, size, mtime_ns, ref) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, ref = excluded.ref",
                files,
            )
            self._db.set_meta(FINGERPRINT_KEY, document)

    def fingerprint(self) -> tuple[str | None, list[InputFile]]:
        """The fingerprint's document (None if never recorded) and the files it covers."""
        files = self._db.all("SELECT path, size, mtime_ns, ref FROM inputs")
        return self._db.get_meta(FINGERPRINT_KEY), [(str(p), s, m, r) for p, s, m, r in files]

    def record_images(self, rows: Iterable[InputImage]) -> None:
        """(ref, width, height, source) of input images: `source` is the absolute path of a
        local file, the URL the provider fetches, or None (base64 from the manifest)."""
        with self._db.transaction():
            self._db.write_many(
                "INSERT INTO images (ref, width, height, source) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ref) DO UPDATE SET width = excluded.width, "
                "height = excluded.height, source = excluded.source",
                rows,
            )

    def image(self, ref: str) -> InputImage | None:
        row = self._db.one("SELECT ref, width, height, source FROM images WHERE ref = ?", (ref,))
        return None if row is None else (str(row[0]), row[1], row[2], row[3])

    def image_size(self, ref: str) -> tuple[int, int] | None:
        """(width, height) of the input image `ref`, if it was read when the jobs loaded."""
        known = self._sizes.get(ref)
        if known is not None:
            return known
        found = self.image(ref)
        if found is None or found[1] is None or found[2] is None:
            return None
        size = found[1], found[2]
        if ref.startswith(SHA_PREFIX) and len(self._sizes) < SIZES_KEPT:
            self._sizes[ref] = size
        return size

    def replace_skipped(self, problems: Iterable[SkippedRow], rows: int) -> None:
        """(row, line, field, message) of the first problems of the rows the last load left out
        (--skip-invalid), and how many rows it left out in all."""
        with self._db.transaction():
            self._db.write("DELETE FROM skipped")
            self._db.write_many(
                "INSERT INTO skipped (row, line, field, message) VALUES (?, ?, ?, ?)", problems
            )
            self._db.set_meta(SKIPPED_KEY, str(rows))

    def skipped_rows(self) -> int:
        """How many rows the last load left out (their problems listed may be fewer)."""
        total = self._db.get_meta(SKIPPED_KEY)
        if total is not None:
            return int(total)
        row = self._db.one("SELECT count(DISTINCT row) FROM skipped")
        return int(row[0]) if row else 0

    def skipped(self) -> Iterator[SkippedRow]:
        cursor = self._db.rows("SELECT row, line, field, message FROM skipped ORDER BY rowid")
        return ((str(r), int(n), str(f), str(m)) for r, n, f, m in cursor)
