"""What a file's first bytes say it is. Pure.

`container_of` names the video container a signature belongs to (None: not a known one);
`describe_other` says in a few words what a file that is not a video looks like, for the
message that keeps such a download from becoming `done`.
"""

from __future__ import annotations

HEAD_BYTES = 64
_EBML = b"\x1a\x45\xdf\xa3"  # Matroska / WebM
_QUICKTIME_BRAND = b"qt  "
_HTML_MARKS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def read_head(path: str) -> bytes:
    """The first HEAD_BYTES bytes of the file at `path`."""
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def container_of(head: bytes) -> str | None:
    """ "mp4", "mov", "matroska", "avi" or "flv" from the signature, else None."""
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == _QUICKTIME_BRAND else "mp4"
    if head.startswith(_EBML):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    return None


def describe_other(head: bytes, size: int) -> str:
    """What a file that is no video looks like: "an HTML page", "JSON", "text" or "data"."""
    text = head.lstrip().lower()
    if not head:
        return "an empty file"
    if any(mark in text for mark in _HTML_MARKS):
        return "an HTML page"
    if text[:1] in (b"{", b"["):
        return "JSON"
    if _printable(head):
        return f"text ({size} bytes)"
    return f"{size} bytes that no video signature matches"


def _printable(head: bytes) -> bool:
    return all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head)
