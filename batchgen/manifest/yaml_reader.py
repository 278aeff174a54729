"""Reading a YAML manifest as a stream of parser events (libyaml's `CSafeLoader` when available).

The file is read twice: once at open for its header (every key but the rows, which are skipped;
a syntax error anywhere surfaces here), then row by row when the rows are iterated, so memory
does not grow with the number of rows. Each row keeps the line its mapping starts on.

Input nobody should send gets a clear refusal naming the file and line, never minutes of work:
values nested deeper than `MAX_DEPTH`; aliases that expand without bound ("billion laughs"):
an alias may stand for at most `MAX_ALIAS_VALUES` values, and all aliases together for at most
`ALIAS_BUDGET` plus `ALIAS_PER_VALUE` per value written out. PyYAML has no such limit; it is
kept here by counting, for every anchor, the values its node holds once expanded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchgen.errors import ManifestUnreadable
from batchgen.manifest.params import STRING_FIELDS
from batchgen.manifest.rawrow import RawRow

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
MAX_DEPTH = 64
MAX_ALIAS_VALUES = 100_000
ALIAS_BUDGET = 1_000_000
ALIAS_PER_VALUE = 10
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse(problem: str, event: Any) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(None, None, problem, event.start_mark)


class _Events:
    """A YAML file's parser events, composed into nodes one value at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.loader = _Loader(stream)
        self.anchors: dict[str, tuple[Node, int]] = {}  # node, values once expanded
        self.written = 0
        self.expanded = 0
        self.depth = 0

    def next_is(self, kind: type[Event]) -> bool:
        return bool(self.loader.check_event(kind))

    def take(self) -> Any:
        return self.loader.get_event()

    def compose(self) -> Node:
        """The next complete value as a node; anchors are remembered for later aliases."""
        return self._sized()[0]

    def _sized(self) -> tuple[Node, int]:
        """The next value as a node, and how many values it holds once aliases are expanded."""
        event = self.take()
        if isinstance(event, AliasEvent):
            return self._alias(event)
        self.written += 1
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _refuse(f"values nested more than {MAX_DEPTH} levels deep", event)
        node, size = self._node(event)
        self.depth -= 1
        if event.anchor:
            self.anchors[event.anchor] = (node, size)
        return node, size

    def _alias(self, event: Any) -> tuple[Node, int]:
        if event.anchor not in self.anchors:
            raise _refuse("unknown alias", event)
        node, size = self.anchors[event.anchor]
        self.expanded += size
        budget = ALIAS_BUDGET + ALIAS_PER_VALUE * self.written
        if size > MAX_ALIAS_VALUES or self.expanded > budget:
            raise _refuse(
                f"aliases expand to too many values (alias *{event.anchor} stands for {size:,}; "
                f"{self.expanded:,} in all so far): a YAML bomb? Write the values out instead",
                event,
            )
        return node, size

    def _node(self, event: Any) -> tuple[Node, int]:
        start: Any = event.start_mark
        if isinstance(event, ScalarEvent):
            tag = self._tag(ScalarNode, event, event.value)
            end: Any = event.end_mark
            return ScalarNode(tag, event.value, start, end, event.style), 1
        if isinstance(event, SequenceStartEvent):
            tag = self._tag(SequenceNode, event, None)
            items: list[Node] = []
            size = 1
            while not self.next_is(SequenceEndEvent):
                item, count = self._sized()
                items.append(item)
                size += count
            return SequenceNode(tag, items, start, self.take().end_mark), size
        if isinstance(event, MappingStartEvent):
            return self._mapping(event)
        raise _refuse("unexpected YAML structure", event)

    def _mapping(self, event: Any) -> tuple[Node, int]:
        tag = self._tag(MappingNode, event, None)
        pairs: list[tuple[Node, Node]] = []
        size = 1
        while not self.next_is(MappingEndEvent):
            (key, key_size), (value, value_size) = self._sized(), self._sized()
            pairs.append((key, value))
            size += key_size + value_size
        return MappingNode(tag, pairs, event.start_mark, self.take().end_mark), size

    def _tag(self, kind: type[Node], event: Any, value: str | None) -> str:
        if event.tag not in (None, "!"):
            return str(event.tag)
        return str(self.loader.resolve(kind, value, event.implicit))

    def skip(self) -> None:
        """Consume the next value without building it."""
        depth = 0
        while True:
            event = self.take()
            if isinstance(event, SequenceStartEvent | MappingStartEvent):
                depth += 1
            elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                depth -= 1
            if depth == 0:
                return

    def construct(self, node: Node) -> Any:
        return self.loader.construct_document(node)

    def open_document(self, path: Path) -> None:
        """Consume the stream's start up to the top-level mapping's first key."""
        self.take()
        if self.next_is(StreamEndEvent):
            raise ManifestUnreadable(f"{path}: the file is empty")
        self.take()
        if not self.next_is(MappingStartEvent):
            raise ManifestUnreadable(
                f"{path}: a manifest is a mapping with `rows:` (and `defaults:`...)"
            )
        self.take()

    def close_document(self, path: Path) -> None:
        self.take()
        if not self.next_is(DocumentEndEvent):
            raise ManifestUnreadable(f"{path}: unexpected content after the manifest")
        self.take()
        if not self.next_is(StreamEndEvent):
            raise ManifestUnreadable(f"{path}: a manifest is one YAML document, not several")


def _force_strings(node: Node) -> Node:
    """Fields that are text stay text: `id: 010` is "010" and `prompt: no` is "no"."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            named = isinstance(key, ScalarNode)
            is_text = named and (key.value in STRING_FIELDS or key.value == "id")
            if is_text and isinstance(value, ScalarNode) and value.tag != NULL_TAG:
                value.tag = STR_TAG
    return node


def _duplicate_keys(node: Node) -> list[str]:
    if not isinstance(node, MappingNode):
        return []
    seen: set[str] = set()
    twice = []
    for key, _ in node.value:
        if not isinstance(key, ScalarNode):
            continue  # a list or mapping as a key: the constructor refuses it
        if key.value in seen:
            twice.append(str(key.value))
        seen.add(key.value)
    return twice


class _YamlErrors:
    """Turns YAML parser errors into a ManifestUnreadable naming the file and line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f"{self.path}, line {exc.problem_mark.line + 1}"
            raise ManifestUnreadable(f"{where}: {exc.problem or exc.context}") from None
        if isinstance(exc, yaml.YAMLError | UnicodeDecodeError | RecursionError):
            raise ManifestUnreadable(f"{self.path}: not readable as YAML: {exc}") from None
        if isinstance(exc, OSError):
            raise ManifestUnreadable(f"cannot read {self.path}: {exc.strerror}") from None


def read_yaml_header(path: Path) -> tuple[dict[str, Any], dict[str, int], bool]:
    """(every top-level key but a list of rows, the line of each key, whether rows is a list).
    Parses the whole file, so syntax errors anywhere raise ManifestUnreadable here."""
    header: dict[str, Any] = {}
    lines: dict[str, int] = {}
    row_list = False
    with _YamlErrors(path), open(path, "rb") as stream:
        events = _Events(stream)
        events.open_document(path)
        while not events.next_is(MappingEndEvent):
            key_node = events.compose()
            key = str(events.construct(key_node))
            if key in lines:
                raise ManifestUnreadable(
                    f"{path}, line {key_node.start_mark.line + 1}: {key!r} twice"
                )
            lines[key] = key_node.start_mark.line + 1
            if key == "rows" and events.next_is(SequenceStartEvent):
                events.skip()
                row_list = True
                continue
            node = events.compose()
            if key == "name" and isinstance(node, ScalarNode) and node.tag != NULL_TAG:
                node.tag = STR_TAG
            header[key] = events.construct(_force_strings(node) if key == "defaults" else node)
        events.close_document(path)
    return header, lines, row_list


def read_yaml_rows(path: Path) -> Iterator[RawRow]:
    """The rows of a YAML manifest's `rows:` list, one at a time."""
    with _YamlErrors(path), open(path, "rb") as stream:
        events = _Events(stream)
        events.open_document(path)
        while not events.next_is(MappingEndEvent):
            key = str(events.construct(events.compose()))
            if key == "rows" and events.next_is(SequenceStartEvent):
                yield from _row_stream(events, path.parent)
            else:
                events.compose()


def _row_stream(events: _Events, base: Path) -> Iterator[RawRow]:
    events.take()
    number = 0
    while not events.next_is(SequenceEndEvent):
        number += 1
        node = events.compose()
        yield _yaml_row(events, node, number, base)
    events.take()


def _yaml_row(events: _Events, node: Node, number: int, base: Path) -> RawRow:
    line = node.start_mark.line + 1
    errors = tuple((key, "set twice in this row") for key in _duplicate_keys(node))
    if not isinstance(node, MappingNode):
        return RawRow(number, line, {}, base, str(number), (("row", "a row is a mapping"),))
    try:
        values = events.construct(_force_strings(node))
    except yaml.YAMLError as exc:
        return RawRow(number, line, {}, base, str(number), (("row", f"unreadable: {exc}"),))
    values = {str(key): value for key, value in values.items()}
    return RawRow(number, line, values, base, str(number), errors)
