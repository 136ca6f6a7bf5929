"""Plain CSV: ``signal_type,value[,tags]``, one hash per row.

The header row is optional: a first row whose first cell is ``signal_type`` (or ``type``) is a
header, and its column names then place the columns (``signal_type``/``type``,
``value``/``signal_str``/``hash``, optional ``tags`` and ``category``). Without a header the
columns are positional. Tags in the tags column are separated by ``;`` or ``|``. Lines starting with ``#`` (other than a
``#signal_type,...`` header) are comments.

Rows are read one line at a time (a field cannot span lines; hash lists have no reason to).
The writer writes the header ``signal_type,value,tags`` and tags joined by ``;``; removes are
skipped (CSV has no tombstones).
"""

from __future__ import annotations

import csv
import io
import re
import typing
from typing import Iterable, Iterator

from consentry.banks.formats._util import dedupe, iter_lines, make_record
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "csv"

_TYPE_COLUMNS = ("signal_type", "type")
_VALUE_COLUMNS = ("value", "signal_str", "signal_value", "hash", "hash_value", "signal")
_DEFAULT_COLS = {"type": 0, "value": 1, "tags": 2}


def split_tags(text: str) -> list[str]:
    return dedupe(re.split(r"[;|]", text or ""))


def _header(cells: list[str]) -> dict[str, int] | None:
    names = [c.strip().lower() for c in cells]
    if not names or names[0].lstrip("#").strip() not in _TYPE_COLUMNS:
        return None
    names[0] = names[0].lstrip("#").strip()
    cols: dict[str, int] = {"type": 0}
    value_col = next((names.index(c) for c in _VALUE_COLUMNS if c in names), None)
    cols["value"] = value_col if value_col is not None else 1
    for name in ("tags", "category"):
        if name in names:
            cols[name] = names.index(name)
    return cols


def read(stream: typing.BinaryIO, *, source_name: str | None = None) -> Iterator[HashRecord | RecordError]:
    cols: dict[str, int] | None = None
    for lineno, line, err in iter_lines(stream):
        pos = f"line {lineno}"
        if line is None:
            yield RecordError(pos, err)
            continue
        if not line.strip():
            continue
        try:
            cells = next(csv.reader([line]))
        except csv.Error as exc:
            yield RecordError(pos, f"bad CSV: {exc}")
            continue
        if cols is None:
            cols = _header(cells)
            if cols is not None:
                continue
        if line.lstrip().startswith("#"):
            continue
        if cols is None:
            cols = dict(_DEFAULT_COLS)
        if len(cells) <= max(cols["type"], cols["value"]):
            yield RecordError(pos, "expected 'signal_type,value[,tags]'")
            continue

        def cell(name: str) -> str:
            i = cols.get(name)  # noqa: B023
            return cells[i].strip() if i is not None and i < len(cells) else ""  # noqa: B023

        yield make_record(NAME, pos, cell("type"), cells[cols["value"]],
                          tags=split_tags(cell("tags")), category=cell("category") or None)


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["signal_type", "value", "tags"])
    n = 0
    for rec in records:
        if rec.op != "add":
            continue
        w.writerow([rec.signal_type, rec.value, ";".join(rec.tags)])
        n += 1
        if n % 1000 == 0:
            stream.write(buf.getvalue().encode("utf-8"))
            buf.seek(0)
            buf.truncate()
    stream.write(buf.getvalue().encode("utf-8"))
    return n
