"""`batchgen export`: a run folder's finished videos as a dataset, one writer per format.

    hf          metadata.parquet + linked videos + a dataset card, for `load_dataset("videofolder")`
    csv         index.csv, one flat row per video
    webdataset  000000.tar, 000001.tar, ...: `<job id>.mp4` + `<job id>.json` per sample

The default output folder is RUN/export/<format>/. See exporter.py for how an export is
streamed, staged and published, and each format's module for its layout.
"""

from batchgen.export.entries import IndexInvalid
from batchgen.export.exporter import (
    FORMATS,
    ExportResult,
    MissingVideo,
    UnknownFormat,
    export_run,
)

__all__ = [
    "FORMATS",
    "ExportResult",
    "IndexInvalid",
    "MissingVideo",
    "UnknownFormat",
    "export_run",
]
