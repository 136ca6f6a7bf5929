"""The record every hash-list format reads into and writes from.

Importers yield ``HashRecord`` (or ``RecordError`` for a line/element that could not be read, so
the import goes on and reports it); exporters take ``HashRecord``. ``op == "remove"`` is a
withdrawal/tombstone (StopNCII ``Withdrawn``/``Deleted``, NCMEC ``deletedImage``): the bank layer
withdraws the matching entry instead of adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["add", "remove"]


@dataclass
class HashRecord:
    signal_type: str  # a registered signal type: md5, sha1, sha256, pdq, vpdq, photodna
    value: str  # canonical form (``get_signal_type(signal_type).parse(raw)``)
    op: Op = "add"
    external_ids: list[str] = field(default_factory=list)  # e.g. "ncmec:member/entry", "stopncii:case"
    tags: list[str] = field(default_factory=list)
    category: str | None = None  # e.g. NCMEC classification, VICS category
    source: str | None = None  # "ncmec", "stopncii", "vics", "te", "csv", ...
    meta: dict[str, Any] = field(default_factory=dict)  # format-specific extras, JSON-serialisable
    position: str | None = None  # where in the input (line number, element index) for reports


@dataclass
class RecordError:
    position: str  # "line 12", "record 3", "image[7]"
    message: str  # short, no input echoed beyond 80 characters


def records_from_hash(result: Any, tags: list[str], category: str | None, source: str) -> list[HashRecord]:
    """The bank records of one hashed file (a :class:`consentry.hashing.HashResult`): MD5,
    SHA-256, and PDQ with its quality or vPDQ frames (as hashed: dense for stored videos)."""
    import json

    recs = [HashRecord("md5", result.md5, tags=list(tags), category=category, source=source),
            HashRecord("sha256", result.sha256, tags=list(tags), category=category, source=source)]
    if result.pdq:
        recs.append(HashRecord("pdq", result.pdq, tags=list(tags), category=category, source=source,
                               meta={"quality": result.pdq_quality}))
    if result.vpdq:
        recs.append(HashRecord("vpdq", json.dumps(result.vpdq), tags=list(tags), category=category,
                               source=source))
    return recs
