"""The input images of each exported sample: the input, its end frame and its masks, as files.

An image is found where the run kept the bytes it sent (RUN/inputs/, see output.py), else, for
a run made before batchgen kept them, at the source the state recorded when the jobs were
loaded, if that file still holds the same bytes (its sha256 is checked). An image the provider
fetched from a URL itself was never in our hands: it has no file, and the export counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.download import file_sha256
from batchgen.export.entries import open_run_state
from batchgen.jobs import SHA_PREFIX, is_content_ref
from batchgen.output import kept_input
from batchgen.state.store import Store

IMAGE_FIELDS = ("image", "image_tail", "static_mask")  # one image each
DYNAMIC_MASKS = "dynamic_masks"  # a list of groups, each with its mask image
DYNAMIC_MASK = "dynamic_mask_{}"  # the name of the i-th one among a sample's inputs


@dataclass(frozen=True, slots=True)
class SampleInputs:
    """The files of one sample's input images by name (`image`, `image_tail`, `static_mask`,
    `dynamic_mask_0`...), and how many of its images have none (given to the provider as URLs,
    or gone since)."""

    files: Mapping[str, Path]  # in the request's order: image, image_tail, masks
    without_file: int = 0

    @property
    def dynamic_masks(self) -> list[Path]:
        return [path for name, path in self.files.items() if name.startswith("dynamic_mask_")]


NO_INPUTS = SampleInputs({})


def input_refs(request: Mapping[str, Any]) -> dict[str, str]:
    """The images of a request by name (see SampleInputs), each as the request holds it."""
    refs = {name: request[name] for name in IMAGE_FIELDS if isinstance(request.get(name), str)}
    groups = request.get(DYNAMIC_MASKS)
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(group, Mapping) and isinstance(group.get("mask"), str):
            refs[DYNAMIC_MASK.format(i)] = group["mask"]
    return refs


class InputFiles:
    """Finds the file of each input image of a run; open it as a context manager."""

    def __init__(
        self, run_dir: Path, state: Path | None = None, database: str | None = None
    ) -> None:
        self.run_dir = run_dir
        self.state = state
        self.database = database
        self._opened = False
        self._found: dict[str, Path | None] = {}
        self._held = ExitStack()
        self._store: Store | None = None

    def __enter__(self) -> InputFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.close()

    def of(self, request: Mapping[str, Any]) -> SampleInputs:
        """The files of `request`'s input images."""
        found = {name: self.file(ref) for name, ref in input_refs(request).items()}
        files = {name: path for name, path in found.items() if path is not None}
        return SampleInputs(files, len(found) - len(files))

    def file(self, ref: str) -> Path | None:
        """The file holding the bytes sent for `ref`, or None (a URL, or bytes no longer
        anywhere)."""
        if ref not in self._found:
            self._found[ref] = self._find(ref)
        return self._found[ref]

    def _find(self, ref: str) -> Path | None:
        if not is_content_ref(ref):
            return None
        kept = kept_input(self.run_dir, ref)
        return kept if kept is not None else self._source(ref)

    def _source(self, ref: str) -> Path | None:
        store = self._open_store()
        found = store.inputs.image(ref) if store is not None else None
        source = Path(found[3]) if found is not None and found[3] else None
        if source is None or not source.is_file():
            return None
        return source if SHA_PREFIX + file_sha256(source) == ref else None

    def _open_store(self) -> Store | None:
        """The run's state (see entries.open_run_state), opened on first use."""
        if not self._opened:
            self._opened = True
            store = open_run_state(self.run_dir, self.state, self.database)
            self._store = None if store is None else self._held.enter_context(store)
        return self._store


def suffix_of(path: Path) -> str:
    """The file name suffix an input keeps in an export (`.jpg`, `.png`)."""
    return path.suffix.lower() or ".img"
