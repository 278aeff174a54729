"""The manifest language: a YAML or CSV file becomes checked requests, then JobSpecs. Pure
after the read; nothing here knows of a state, a provider or a run.

    source.py       the file: its header, run name and globs; rows streamed by the readers
    yaml_reader.py  YAML rows as a stream of parser events, with their line numbers
    csv_reader.py   CSV rows (the manifest itself, or `rows: file.csv`)
    rawrow.py       a row as read, before any rule of the language
    fieldnames.py   which keys a row may hold, and which look like a misspelt field
    params.py       the image2video parameters, as pydantic models
    expand.py       a row into its variants: defaults, matrix, repeat
    capabilities.py what each model accepts
    relations.py    rules relating the fields of one request
    imagedecode.py  what an image is, proved by decoding all of it
    images.py       where each image comes from, what it is, and its bytes when sent
    validate.py     a variant's fields into a request, or every reason they cannot be one
    resolve.py      the front: a manifest file resolved into JobSpecs and Problems
    schema.py       the JSON Schema of a manifest, from the models that validate it
    lockfile.py     manifest.lock.json: the jobs a manifest resolved to
    fingerprint.py  has anything the jobs were loaded from changed since?
"""
