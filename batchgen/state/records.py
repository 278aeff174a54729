"""What the state holds, as values: a job (`JobRecord`), the check of its video
(`CheckRecord`), and the columns and clauses they are read with. No SQL runs here."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from batchgen.jobs import external_task_id
from batchgen.status import JobStatus

JOB_COLUMNS = (
    "job_id, seq, row_id, request, metadata, variant, status, generation, external_task_id, "
    "task_id, attempts, not_before, last_error, error_kind, video_url, output_path, sha256, "
    "bytes, submitted_at, finished_at, task_created_at, task_updated_at, unit_deduction, "
    "video_duration, watermark_url, watermark_path, moderation_retries, cash_deduction, "
    "reused_from"
)
# The jobs of a run, as a WHERE clause: those of the current manifest, and those of earlier
# manifests the provider still works on.
CURRENT = "(seq >= 0 OR status NOT IN ('pending', 'done', 'failed'))"


class JobRecord(NamedTuple):
    """A job as the state holds it. (A named tuple: made from a row of the state at a tuple's
    cost, which a frozen dataclass of this many fields is not: some 7 us a job, on every read
    of a million jobs.)"""

    job_id: str  #: the hash of its request and sample index (jobs.py)
    seq: int  #: its place in the manifest; -1 once it left the manifest (an edited row)
    row_id: str  #: the manifest row it came from
    request_json: str  #: what is sent to the provider, as canonical JSON
    metadata_json: str  #: the row's fields that are not the provider's
    variant_json: str  #: the matrix values and sample index that made this job
    status: JobStatus  #: where it is in its lifecycle (status.py)
    generation: int  #: how many times it was sent again under a fresh external id
    external_task_id: str | None  #: the id sent with its create (None until submitted)
    task_id: str | None  #: the provider's id of its task, once known
    attempts: int  #: failed tries of the current step
    not_before: float  #: wall time before which it is not acted on (back-off, lease)
    last_error: str | None  #: what went wrong last, as shown to the user
    error_kind: str | None  #: the kind of that error (retry and report group by it)
    video_url: str | None  #: where its video can be fetched, while it is being downloaded
    output_path: str | None  #: its video, relative to the run folder, once done
    sha256: str | None  #: of its video
    bytes: int | None  #: of its video
    submitted_at: float | None  #: wall time its create was committed (in a run: sent)
    finished_at: float | None  #: wall time it reached done, failed or unknown
    task_created_at: int | None  #: the provider's created_at of its task (ms)
    task_updated_at: int | None  #: the provider's updated_at of its task (ms)
    unit_deduction: str | None  #: what the provider says the task cost, in units
    video_duration: str | None  #: the video's length as the provider reported it
    watermark_url: str | None  #: the watermarked copy's URL, when one was asked for
    watermark_path: str | None  #: the watermarked copy, relative to the run folder
    moderation_retries: int  #: new generations sent after moderation refused (--retry-moderation)
    cash_deduction: str | None  #: the cash the provider says the task cost ("USD 0.42")
    reused_from: str | None  #: the state that paid for the task it took (ledger.py), if not this

    @property
    def request(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.request_json)
        return value

    @property
    def metadata(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.metadata_json)
        return value

    @property
    def variant(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.variant_json)
        return value

    @property
    def current_external_id(self) -> str:
        return self.external_task_id or external_task_id(self.job_id, self.generation)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """The probe and QA findings of a job's current video (media/), as the state holds them."""

    probe_json: str
    findings_json: str

    @property
    def probe(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.probe_json)
        return value

    @property
    def findings(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = json.loads(self.findings_json)
        return value

    def as_json(self) -> dict[str, Any]:
        """{"probe": ..., "qa": [...]}, as the index and the sidecars write it."""
        return {"probe": self.probe, "qa": self.findings}


_STATUS_OF = {status.value: status for status in JobStatus}  # (a third of a record's making)


def job_record(row: tuple[Any, ...]) -> JobRecord:
    """A JobRecord from a row of JOB_COLUMNS."""
    values = list(row)
    values[6] = _STATUS_OF.get(values[6]) or JobStatus(values[6])  # (a bad value: ValueError)
    return JobRecord._make(values)


def price_key(request: Mapping[str, Any]) -> str:
    """The fields a request is priced by, as SQLite's json_array writes them."""
    get = request.get
    fields = (
        get("model_name"),
        get("mode"),
        get("duration"),
        get("sound"),
        int(get("voice_list") is not None),
    )
    try:  # typed: 5, 5.0 and True are equal keys of a dict, and are written apart
        return _price_key_of(fields, tuple(map(type, fields)))
    except TypeError:  # a value no cache can hold (a list): written each time
        return _price_key_of.__wrapped__(fields, ())


@functools.lru_cache(maxsize=1024)
def _price_key_of(fields: tuple[Any, ...], types: tuple[type, ...]) -> str:
    """A manifest's jobs share a few of these: each is written once."""
    return json.dumps(list(fields), separators=(",", ":"))


def pricing_fields(key: str) -> dict[str, Any]:
    """The request fields a `price_key` stands for."""
    model, mode, duration, sound, voices = json.loads(key)
    fields = {"model_name": model, "mode": mode, "duration": duration, "sound": sound}
    if voices:
        fields["voice_list"] = [{}]  # a stand-in: only its presence changes the price
    return fields
