"""Consentry's own hash output: the JSON Lines that ``consentry hash FILE…`` prints (one object a
file: ``path``, ``content_type``, ``size``, ``sha256``, ``md5``, ``pdq``, ``pdq_quality``,
``vpdq``, ``error``), so that ``consentry hash photos/ > h.jsonl`` then ``consentry bank import
BANK h.jsonl`` works as a user expects.

Every signal present becomes an entry (a PDQ hash with its quality, a video's vPDQ frames as one
entry); a file whose hashing failed still gives the digests computed before the failure, and is
reported only when it gave nothing. The local ``path`` is never stored (file names can identify a
person). Written back as one object a line holding the signal under its type's name (readable
again by this format).
"""

from __future__ import annotations

import json
import typing
from typing import Iterable, Iterator

from consentry.banks.formats._util import json_lines, make_record, shorten
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "consentry"
_DIGESTS = ("md5", "sha1", "sha256")


def read(stream: typing.BinaryIO, *, source_name: str | None = None) -> Iterator[HashRecord | RecordError]:
    for item in json_lines(stream):
        if isinstance(item, RecordError):
            yield item
            continue
        pos, obj = item
        if not isinstance(obj, dict):
            yield RecordError(pos, f"expected an object, not {type(obj).__name__}")
            continue
        found = 0
        for name in _DIGESTS:
            if obj.get(name):
                found += 1
                yield make_record(NAME, pos, name, obj[name])
        if obj.get("pdq"):
            found += 1
            quality = obj.get("pdq_quality")
            meta = {"quality": quality} if isinstance(quality, int) and not isinstance(quality, bool) else {}
            yield make_record(NAME, pos, "pdq", obj["pdq"], meta=meta)
        if obj.get("vpdq"):
            found += 1
            frames = obj["vpdq"]
            yield make_record(NAME, pos, "vpdq", json.dumps(frames) if isinstance(frames, list) else frames)
        if not found:
            why = obj.get("error") or "no hash in this line (md5, sha1, sha256, pdq or vpdq)"
            yield RecordError(pos, f"{shorten(obj.get('path', ''), 60)}: {shorten(why, 160)}"
                              if obj.get("path") else shorten(why, 160))


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    n = 0
    for rec in records:
        if rec.op != "add":
            continue
        line: dict[str, typing.Any] = {rec.signal_type: json.loads(rec.value) if rec.signal_type == "vpdq"
                                       else rec.value}
        if rec.signal_type == "pdq" and isinstance(rec.meta.get("quality"), int):
            line["pdq_quality"] = rec.meta["quality"]
        stream.write((json.dumps(line) + "\n").encode("utf-8"))
        n += 1
    return n
