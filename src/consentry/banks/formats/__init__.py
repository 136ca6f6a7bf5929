"""Streaming import/export of interoperable hash-list formats.

Each format module has ``NAME``, ``read(stream, *, source_name=None)`` (yields ``HashRecord`` or
``RecordError`` and never holds the whole input) and ``write(records, stream) -> int``:

* ``te`` - ThreatExchange / python-threatexchange text (``pdq <hex>``) and pytx dataset CSV;
* ``stopncii`` - StopNCII ``FetchHashes`` JSON (also a bare list and JSON Lines);
* ``ncmec`` - NCMEC Hash Sharing v2 XML (``queryResult``), parsed with defusedxml;
* ``vics`` - Project VIC VICS JSON (``#Media`` hash sets and ``#Cases``);
* ``csv`` - plain ``signal_type,value[,tags]``;
* ``consentry`` - the JSON Lines ``consentry hash`` prints (one object a file).

See :mod:`consentry.banks.formats.records` for the record contract.
"""

from __future__ import annotations

import re
from types import ModuleType

from consentry.banks.formats import consentry_hash, csv_format, ncmec, stopncii, te, vics
from consentry.banks.formats.records import HashRecord, RecordError

FORMATS: dict[str, ModuleType] = {
    te.NAME: te,
    stopncii.NAME: stopncii,
    ncmec.NAME: ncmec,
    vics.NAME: vics,
    csv_format.NAME: csv_format,
    consentry_hash.NAME: consentry_hash,
}


def get_format(name: str) -> ModuleType:
    try:
        return FORMATS[name.strip().lower()]
    except (KeyError, AttributeError):
        known = ", ".join(FORMATS)
        raise KeyError(f"unknown hash-list format {name!r} (known: {known})") from None


_TE_LINE = re.compile(rb"^\s*(?:'[^']*'\s+|\"[^\"]*\"\s+)?([A-Za-z_0-9]+)[ \t]+\S")
_CSV_LINE = re.compile(rb"^\s*#?\s*([A-Za-z_0-9 ]+)\s*,")


def sniff_format(head: bytes) -> str | None:
    """Best-effort guess of the format from the first bytes of a file; None if unsure."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    body = head.lstrip()
    if not body:
        return None
    if body.startswith(b"<"):
        if b"queryResult" in body or b"hashsharing" in body or body.startswith(b"<?xml"):
            return "ncmec"
        return None
    if body[:1] in (b"{", b"["):
        if b"odata.context" in body or b"odata.metadata" in body or b'"MediaID"' in body:
            return "vics"
        if any(k in body for k in (b'"hashRecords"', b'"hashValue"', b'"signalType"', b'"hashStatus"')):
            return "stopncii"
        if body[:1] == b"{" and b'"path"' in body and b'"content_type"' in body and b'"pdq_quality"' in body:
            return consentry_hash.NAME  # what `consentry hash` prints
        return None
    for line in body.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith(b"#"):
            if re.match(rb"#\s*signal_type\s*,", s.lower()):
                return "csv"
            continue
        low = s.lower()
        if b"," in s:
            cells = [c.strip().strip(b'"').lstrip(b"#").strip() for c in low.split(b",")]
            if b"signal_str" in cells or b"collab" in cells:
                return "te"
            if cells and cells[0] in (b"signal_type", b"type"):
                return "csv"
            if cells and cells[0].decode("ascii", "replace") in te.SIGNAL_ALIASES and b" " not in cells[0]:
                return "csv"
            return None
        m = _TE_LINE.match(s)
        if m and m.group(1).decode().lower() in te.SIGNAL_ALIASES:
            return "te"
        return None
    return None


__all__ = ["FORMATS", "HashRecord", "RecordError", "get_format", "sniff_format"]
