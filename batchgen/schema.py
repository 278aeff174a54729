"""The JSON Schema of a YAML manifest, generated from the models that validate it.

Editors use it for completion and early errors (e.g. a `# yaml-language-server: $schema=...`
line). It describes the shape only; rules that relate fields, images and the model capability
table are checked by `batchgen check`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, create_model

from batchgen.manifest import EXTENSION_PREFIX, MAX_REPEAT, NAME_RULE, ManifestHeader, Matrix
from batchgen.params import JobParams

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Defaults(JobParams):
    """Fields every row gets unless it sets them; other keys are metadata defaults."""

    model_config = ConfigDict(extra="allow", title="Defaults")


class Row(JobParams):
    """One row: job fields, control keys, and the user's own columns (kept as metadata)."""

    model_config = ConfigDict(extra="allow", title="Row")

    id: str | int | None = Field(None, description=f"Row id: {NAME_RULE}. Default: position.")
    repeat: int | None = Field(None, ge=1, le=MAX_REPEAT, description="Samples of this row.")
    matrix: Matrix | None = Field(None, description="Axes for this row only.")
    images: str | None = Field(None, description="A glob: one row per matching file.")


Manifest = create_model(
    "Manifest",
    __base__=ManifestHeader,
    __doc__="A batchgen manifest: image + prompt rows to turn into Kling image2video jobs.",
    defaults=(Defaults, Field(default_factory=Defaults)),
    matrix=(
        Matrix,
        Field(default_factory=dict, description=ManifestHeader.model_fields["matrix"].description),
    ),
    rows=(list[Row] | str | None, Field(None, description="Rows, or a CSV file of rows.")),
)


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a YAML manifest."""
    schema = Manifest.model_json_schema()
    extensions: dict[str, Any] = {f"^{EXTENSION_PREFIX}": {}}
    return {
        "$schema": SCHEMA_DIALECT,
        **schema,
        "title": "batchgen manifest",
        "patternProperties": extensions,
    }
