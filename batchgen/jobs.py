"""Job identity: a job is a resolved image2video request, named by the hash of its content.

A request here is the provider's body minus `external_task_id`, with every image field holding
an image reference instead of bytes: ``sha256:<hex>`` for content we send as base64 (a local
file, base64 from the manifest, or a URL we inline), or the URL itself when the provider fetches
it. The same manifest therefore gives the same job ids on any machine, and moving an image file
does not change its job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The API's default model, always sent: a request never depends on the provider's default.
DEFAULT_MODEL = "kling-v1"
SHA_PREFIX = "sha256:"
IMAGE_FIELDS = ("image", "image_tail", "static_mask")
JOB_ID_HEX = 20


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One generation to run: what is sent, and how its output is named."""

    job_id: str
    row_id: str  # unique and file-name safe: "<manifest row id>[__<variant>]"
    request: Mapping[str, Any]
    source_row: str = ""  # the row id as written in the manifest
    line: int = 0
    sample: int = 0
    variant: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # `request` as canonical_json writes it, where make_job has written it already ("": not)
    request_json: str = field(default="", repr=False, compare=False)

    def request_text(self) -> str:
        """`request` as canonical JSON (what the state stores)."""
        return self.request_json or canonical_json(self.request)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal strings."""
    if not value and type(value) is dict:
        return "{}"
    return _canonical(value)


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes, by
# an encoder made once (json.dumps makes one a call when given options: a third of the time).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def job_id_for(request: Mapping[str, Any], sample: int = 0) -> str:
    """The stable id of a request and its sample index: the hash of
    `canonical_json({"request": request, "sample": sample})`."""
    return _job_id(canonical_json(request), sample)


def _job_id(request_json: str, sample: int) -> str:
    """`job_id_for` from the request's canonical JSON: the document's text put together from
    it (its keys sorted, "request" before "sample"), so the request is written once."""
    sample_json = str(sample) if type(sample) is int else json.dumps(sample)
    text = f'{{"request":{request_json},"sample":{sample_json}}}'
    return hashlib.sha256(text.encode()).hexdigest()[:JOB_ID_HEX]


def make_job(
    request: Mapping[str, Any],
    row_id: str,
    *,
    source_row: str = "",
    line: int = 0,
    sample: int = 0,
    variant: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> JobSpec:
    """A JobSpec whose id is derived from its request."""
    request_json = canonical_json(request)
    return JobSpec(
        job_id=_job_id(request_json, sample),
        row_id=row_id,
        request=dict(request),
        source_row=source_row or row_id,
        line=line,
        sample=sample,
        variant=dict(variant or {}),
        metadata=dict(metadata or {}),
        request_json=request_json,
    )


def external_task_id(job_id: str, generation: int = 0) -> str:
    """The provider-side id of a job's submission; a retry after failure gets a new suffix."""
    return f"bg-{job_id}" if generation == 0 else f"bg-{job_id}-r{generation}"


def job_id_of_external(external_id: str) -> tuple[str, int] | None:
    """Invert `external_task_id`; None for ids batchgen did not make."""
    if not external_id.startswith("bg-"):
        return None
    rest = external_id[3:]
    job_id, _, suffix = rest.partition("-r")
    if len(job_id) != JOB_ID_HEX:
        return None
    if not suffix:
        return job_id, 0
    return (job_id, int(suffix)) if suffix.isdigit() else None


def is_content_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SHA_PREFIX)


def resolve_body(
    request: Mapping[str, Any], payload: Callable[[str], str], external_id: str
) -> dict[str, Any]:
    """The body to POST: content refs replaced by base64, plus the external_task_id, and
    `model_name` always (the documented default, kling-v1, when the request leaves it unset:
    routes differ in their default, kling-api.md §16). Added here, not in the request, so the
    job ids of existing manifests do not change."""

    def resolve(value: str) -> str:
        return payload(value) if is_content_ref(value) else value

    body = dict(request)
    for name in IMAGE_FIELDS:
        if body.get(name):
            body[name] = resolve(body[name])
    if body.get("dynamic_masks"):
        body["dynamic_masks"] = [
            {**group, "mask": resolve(group["mask"])} for group in body["dynamic_masks"]
        ]
    body["external_task_id"] = external_id
    body.setdefault("model_name", DEFAULT_MODEL)
    return body
