"""ThreatExchange / python-threatexchange (pytx) hash lists, in their two file shapes.

**Text** (what pytx's file exchange reads, ``LocalFileSignalExchangeAPI``, and what
``threatexchange dataset -P -S`` prints): one ``<signal_type> <value>`` per line. Blank lines and
``#`` comments are skipped; whitespace-separated words after the value are taken as tags; a
leading quoted collaboration name (``'Sample Data' pdq <hex> ...``, as ``dataset -P`` prints it)
goes into ``meta["collab"]``.

**CSV** (what ``threatexchange dataset -P --csv`` writes): a header row naming the columns, pytx's
being ``collab,signal_type,signal_str,category,tags`` (tags space-separated, category pytx's
opinion category such as ``TRUE_POSITIVE``, kept in ``meta["opinion"]``). ``signal_type,value``
and the other usual value-column names are accepted too. A file is CSV when its first significant
line parses as a CSV header (or as ``type,value``); otherwise it is text.

pytx signal-type names are mapped to ours (``video_md5`` -> ``md5``), as are ThreatExchange
indicator types (``HASH_PDQ``, ``HASH_MD5``, ``VIDEO_HASH_MD5``...).

The writer writes the text form, ``<signal_type> <value>`` and nothing else on each line, so that
pytx's file exchange (which splits a line at its first space) reads it; tags, category and
removes are not carried (removes are skipped). vPDQ values are written as compact JSON so that a
value is one word.
"""

from __future__ import annotations

import csv
import json
import re
import typing
from typing import Iterable, Iterator

from consentry.banks.formats._util import dedupe, iter_lines, make_record, shorten
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "te"

#: pytx signal-type names and ThreatExchange indicator types -> our signal types.
SIGNAL_ALIASES = {
    "pdq": "pdq",
    "md5": "md5",
    "video_md5": "md5",
    "photo_md5": "md5",
    "vpdq": "vpdq",
    "sha1": "sha1",
    "sha256": "sha256",
    "photodna": "photodna",
    "pdna": "photodna",
    "hash_pdq": "pdq",
    "hash_md5": "md5",
    "video_hash_md5": "md5",
    "hash_sha1": "sha1",
    "hash_sha256": "sha256",
    "hash_photodna": "photodna",
}

_TYPE_COLUMNS = ("signal_type", "type", "signal type", "indicator_type")
_VALUE_COLUMNS = ("signal_str", "signal_value", "value", "signal", "hash", "hash_value", "indicator")
_QUOTED = re.compile(r"""^(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s+""")
_TAG_WORD = re.compile(r"^[\w.:/@+\-]+$")


def map_signal_type(name: str) -> str:
    return SIGNAL_ALIASES.get(name.strip().lower(), name.strip())


def _split_tags(text: str) -> list[str]:
    return dedupe(re.split(r"[\s;|]+", text or ""))


def _significant(text: str) -> bool:
    s = text.strip()
    return bool(s) and not s.startswith("#")


def _header_columns(line: str) -> dict[str, int] | None:
    """Column indexes if ``line`` is a CSV header with a type and a value column."""
    if "," not in line:
        return None
    cells = [c.strip().lower() for c in next(csv.reader([line]))]
    type_col = next((cells.index(c) for c in _TYPE_COLUMNS if c in cells), None)
    value_col = next((cells.index(c) for c in _VALUE_COLUMNS if c in cells), None)
    if type_col is None or value_col is None:
        return None
    cols = {"type": type_col, "value": value_col}
    for name in ("collab", "category", "tags"):
        if name in cells:
            cols[name] = cells.index(name)
    return cols


def _looks_like_headerless_csv(line: str) -> bool:
    first = line.split(",", 1)[0].strip().lower()
    return "," in line and first in SIGNAL_ALIASES and " " not in line.split(",", 1)[0].strip()


def _text_record(lineno: int, line: str) -> HashRecord | RecordError | None:
    pos = f"line {lineno}"
    rest = line.strip()
    meta: dict[str, str] = {}
    m = _QUOTED.match(rest)
    if m:  # `dataset -P` prefixes the collaboration name as a Python repr
        meta["collab"] = (m.group(1) if m.group(1) is not None else m.group(2))[:200]
        rest = rest[m.end():]
    parts = rest.split(None, 1)
    if len(parts) < 2:
        return RecordError(pos, f"expected '<signal_type> <value>', got {shorten(line)}")
    stype, rest = parts[0], parts[1].lstrip()
    if rest.startswith("["):  # a vPDQ JSON list may hold spaces: take it whole
        end = rest.find("]")
        value, extra = (rest[: end + 1], rest[end + 1:]) if end >= 0 else (rest, "")
    else:
        value, *more = rest.split(None, 1)
        extra = more[0] if more else ""
    words = extra.split()
    tags: list[str] = []
    if words and all(_TAG_WORD.match(w) for w in words):
        tags = dedupe(words)
    elif words:  # e.g. the metadata repr `dataset -P` prints: keep it, not as tags
        meta["extra"] = " ".join(words)[:200]
    return make_record(NAME, pos, map_signal_type(stype), value, tags=tags, meta=meta)


def _csv_record(lineno: int, line: str, cols: dict[str, int]) -> HashRecord | RecordError:
    pos = f"line {lineno}"
    try:
        cells = next(csv.reader([line]))
    except csv.Error as exc:
        return RecordError(pos, f"bad CSV: {exc}")
    need = max(cols["type"], cols["value"])
    if len(cells) <= need:
        return RecordError(pos, f"expected at least {need + 1} columns, got {len(cells)}")

    def cell(name: str) -> str:
        i = cols.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    meta: dict[str, str] = {}
    if cell("collab"):
        meta["collab"] = cell("collab")[:200]
    if cell("category"):
        meta["opinion"] = cell("category")[:200]
    return make_record(NAME, pos, map_signal_type(cell("type")), cells[cols["value"]],
                       tags=_split_tags(cell("tags")), meta=meta)


def read(stream: typing.BinaryIO, *, source_name: str | None = None) -> Iterator[HashRecord | RecordError]:
    mode: str | None = None  # "text" | "csv", fixed by the first significant line
    cols: dict[str, int] = {}
    for lineno, line, err in iter_lines(stream):
        if line is None:
            yield RecordError(f"line {lineno}", err)
            continue
        if not _significant(line):
            continue
        if mode is None:
            header = _header_columns(line)
            if header is not None:
                mode, cols = "csv", header
                continue
            if _looks_like_headerless_csv(line):
                mode, cols = "csv", {"type": 0, "value": 1, "tags": 2}
            else:
                mode = "text"
        rec = _csv_record(lineno, line, cols) if mode == "csv" else _text_record(lineno, line)
        if rec is not None:
            yield rec


def format_value(rec: HashRecord) -> str:
    if rec.signal_type == "vpdq":
        return json.dumps(json.loads(rec.value), separators=(",", ":"))
    return rec.value


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    n = 0
    for rec in records:
        if rec.op != "add":
            continue
        stream.write(f"{rec.signal_type} {format_value(rec)}\n".encode("utf-8"))
        n += 1
    return n
