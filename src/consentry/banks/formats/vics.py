"""Project VIC / VICS JSON (the OData JSON hash sets used by Griffeye, IPED, Magnet and others).

Two layouts share one envelope, ``{"@odata.context": "...", "value": [...]}`` (VICS 2.0; VICS
1.x names the key ``odata.metadata``):

* a hash set, context ``.../ProjectVic/DataModels/2.0.xml/<profile>/$metadata#Media``:
  ``value`` is the list of Media objects;
* a case, context ``...$metadata#Cases``: ``value`` is a list of Case objects, each with a
  ``Media`` list.

Both are read (and may be mixed). Media fields used (names as in IPED's ``HashDBTool`` VICS
reader and VICS exporters): ``MediaID``, ``Category`` (int), ``MD5``, ``SHA1`` (hex, often upper
case), ``PhotoDNA`` (base64, VICS 1.3) and ``AlternativeHashes`` (``[{"HashName": "PhotoDNA",
"HashValue": "..."}]``, VICS 2.0; ``HashName`` ``SHA1``, ``MD5``, ``SHA256``, ``PDQ`` are read
too), plus ``SHA256``/``PDQ`` fields where a producer writes them; ``Tags`` (a comma-separated
string, or a list); ``Series``, ``VictimIdentified``, ``OffenderIdentified``, ``IsDistributed``,
``IsPrecategorized`` are kept in ``meta["vics"]``.

One ``HashRecord`` per hash present (empty strings and nulls are absent):
``external_ids`` ``["vics:<MediaID>"]``, ``category`` = ``str(Category)``. VICS has no tombstones.

The reader streams with ``ijson`` (one Media object in memory at a time, each capped at 16 MiB of
input). The writer emits a VICS 2.0 ``#Media`` hash set; consecutive records of the same Media
(same ``vics:`` id, category and tags) are written as one Media object, and records without a
``vics:`` id get a new ``MediaID``. ``Category`` is written only when the record's category is
an integer (a category from another taxonomy, such as NCMEC's ``A1``, is left out). Removes are
skipped; ``vpdq`` records have no VICS field and are skipped.
"""

from __future__ import annotations

import json
import typing
from typing import Any, Iterable, Iterator

from consentry.banks.formats._util import (
    GuardedReader,
    ItemTooLarge,
    JsonItemBuilder,
    dedupe,
    first_significant,
    json_error_message,
    make_record,
    peek_start,
    shorten,
)
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "vics"
CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"

#: Media-level hash fields (matched case-insensitively) -> our signal type.
HASH_FIELDS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq", "photodna": "photodna"}
#: AlternativeHashes ``HashName`` (case-insensitive) -> our signal type.
ALT_HASH_NAMES = {"photodna": "photodna", "sha1": "sha1", "md5": "md5", "sha256": "sha256", "pdq": "pdq"}
#: Where each signal type is written, in the order the reader yields them (PhotoDNA goes into
#: ``AlternativeHashes``, read after the fields).
WRITE_FIELDS = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "pdq": "PDQ", "photodna": "PhotoDNA"}
_ORDER = list(WRITE_FIELDS)
FLAG_FIELDS = ("Series", "VictimIdentified", "OffenderIdentified", "IsDistributed", "IsPrecategorized")


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return dedupe(value.split(","))
    if isinstance(value, list):
        return dedupe(str(v) for v in value if isinstance(v, (str, int)))
    return []


def _category(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:64]
    return None


def convert(media: Any, pos: str) -> list[HashRecord | RecordError]:
    """One Media object -> one record per hash it carries."""
    if not isinstance(media, dict):
        return [RecordError(pos, f"Media must be a JSON object, not {type(media).__name__}")]
    fields = {k.lower(): (k, v) for k, v in media.items() if isinstance(k, str)}
    media_id = media.get("MediaID", fields.get("mediaid", (None, None))[1])
    external = [f"vics:{media_id}"] if isinstance(media_id, (int, str)) and str(media_id).strip() else []
    category = _category(media.get("Category", fields.get("category", (None, None))[1]))
    tags = _tags(media.get("Tags"))
    flags = {f: media[f] for f in FLAG_FIELDS if isinstance(media.get(f), (str, bool, int)) and media[f] != ""}
    if isinstance(media.get("Series"), dict) and isinstance(media["Series"].get("Name"), str):
        flags["Series"] = media["Series"]["Name"]

    found: list[tuple[str, str, Any] | RecordError] = []  # (signal type, field, raw value)
    for low, st in HASH_FIELDS.items():
        if low in fields:
            name, raw = fields[low]
            if raw not in (None, ""):
                found.append((st, name, raw))
    alt = media.get("AlternativeHashes")
    if isinstance(alt, list):
        for i, h in enumerate(alt):
            if not isinstance(h, dict) or h.get("HashValue") in (None, ""):
                continue
            hname = h.get("HashName")
            st = ALT_HASH_NAMES.get(hname.strip().lower()) if isinstance(hname, str) else None
            if st is None:
                found.append(RecordError(f"{pos}.AlternativeHashes[{i + 1}]",
                                         f"unknown VICS hash name {shorten(hname, 40)}"))
            else:
                found.append((st, f"AlternativeHashes[{i + 1}]", h["HashValue"]))
    out: list[HashRecord | RecordError] = []
    seen: set[tuple[str, str]] = set()
    for item in found:
        if isinstance(item, RecordError):
            out.append(item)
            continue
        st, field_name, raw = item
        rec = make_record(NAME, f"{pos}.{field_name}", st, raw, external_ids=external, tags=tags,
                          category=category, meta={"vics": dict(flags)} if flags else None)
        if isinstance(rec, HashRecord):
            if (rec.signal_type, rec.value) in seen:  # e.g. SHA1 both as a field and an alternative
                continue
            seen.add((rec.signal_type, rec.value))
        out.append(rec)
    if not found:
        out.append(RecordError(pos, "Media without any hash"))
    return out


def read(stream: typing.BinaryIO, *, source_name: str | None = None) -> Iterator[HashRecord | RecordError]:
    import ijson

    head = peek_start(stream, 4096)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not first_significant(head):
        return
    guard = GuardedReader(stream, prefix=head)
    n = 0
    item: JsonItemBuilder | None = None  # a value[] entry (Media, or Case without its Media list)
    media: JsonItemBuilder | None = None  # a Media inside a Case
    in_case_media = False
    saw_value = False
    started = False
    try:
        for prefix, event, value in ijson.parse(guard, use_float=True):
            if not started:
                started = True
                if event != "start_map":
                    yield RecordError("document", "expected a VICS JSON object with a 'value' list")
                    return
                continue
            if media is not None:
                if media.feed(event, value):
                    n += 1
                    yield from convert(media.value, f"media[{n}]")
                    guard.mark()
                    media = None
                continue
            if in_case_media:
                if prefix == "value.item.Media" and event == "end_array":
                    in_case_media = False
                    assert item is not None
                    item.feed("null", None)
                elif prefix == "value.item.Media.item":
                    media = JsonItemBuilder()
                    if media.feed(event, value):
                        n += 1
                        yield from convert(media.value, f"media[{n}]")
                        guard.mark()
                        media = None
                continue
            if item is not None:
                if prefix == "value.item.Media" and event == "start_array":
                    in_case_media = True  # a Case: stream its Media one at a time
                    continue
                if item.feed(event, value):
                    obj, item = item.value, None
                    if isinstance(obj, dict) and "Media" in obj and not _has_hash(obj):
                        continue  # a Case (its Media were streamed)
                    n += 1
                    yield from convert(obj, f"media[{n}]")
                    guard.mark()
                continue
            if prefix == "value" and event == "start_array":
                saw_value = True
            elif prefix == "value.item":
                item = JsonItemBuilder()
                if item.feed(event, value):
                    n += 1
                    yield from convert(item.value, f"media[{n}]")
                    guard.mark()
                    item = None
            elif prefix != "" and prefix != "value":
                guard.mark()  # envelope fields (@odata.context, ...) are not kept
    except (ijson.JSONError, ItemTooLarge) as exc:
        yield RecordError(f"media[{n + 1}]", json_error_message(exc))
        return
    if not saw_value:
        yield RecordError("document", "no 'value' list found (not a VICS document)")


def _has_hash(obj: dict[str, Any]) -> bool:
    return any(k.lower() in HASH_FIELDS or k == "AlternativeHashes" for k in obj if isinstance(k, str))


# --------------------------------------------------------------------------- writing
def _media_key(rec: HashRecord) -> tuple[Any, ...]:
    vid = next((e[len("vics:"):] for e in rec.external_ids if e.startswith("vics:")), None)
    meta = rec.meta.get("vics") if isinstance(rec.meta, dict) else None
    flags = json.dumps(meta, sort_keys=True) if isinstance(meta, dict) else ""
    return (vid, rec.category, tuple(rec.tags), flags)


def _media_json(media_id: Any, rec: HashRecord, hashes: list[tuple[str, str]]) -> dict[str, Any]:
    obj: dict[str, Any] = {"MediaID": media_id}
    if rec.category is not None and rec.category.strip().isdigit():  # VICS categories are integers
        obj["Category"] = int(rec.category)
    for st, value in hashes:
        if st == "md5" or st == "sha1":
            obj[WRITE_FIELDS[st]] = value.upper()
        elif st == "photodna":
            obj.setdefault("AlternativeHashes", []).append({"HashName": "PhotoDNA", "HashValue": value})
        else:
            obj[WRITE_FIELDS[st]] = value
    if rec.tags:
        obj["Tags"] = ", ".join(rec.tags)
    flags = rec.meta.get("vics") if isinstance(rec.meta, dict) else None
    if isinstance(flags, dict):
        for f in FLAG_FIELDS:
            if f in flags:
                obj[f] = flags[f]
    return obj


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    stream.write(b'{"@odata.context": ' + json.dumps(CONTEXT).encode() + b', "value": [')
    n = written = 0
    next_id = 1
    key: tuple[Any, ...] | None = None
    first: HashRecord | None = None
    hashes: list[tuple[str, str]] = []
    used_ids: set[str] = set()

    def flush() -> None:
        nonlocal written, next_id
        if first is None:
            return
        media_id: Any = key[0] if key and key[0] is not None else None
        if media_id is None:
            while str(next_id) in used_ids:
                next_id += 1
            media_id = next_id
            next_id += 1
        elif media_id.isdigit():
            media_id = int(media_id)
        used_ids.add(str(media_id))
        obj = _media_json(media_id, first, hashes)
        stream.write((",\n  " if written else "\n  ").encode() + json.dumps(obj, ensure_ascii=False).encode())
        written += 1

    for rec in records:
        if rec.op != "add" or rec.signal_type not in WRITE_FIELDS:
            continue
        k = _media_key(rec)
        can_join = (k == key and k[0] is not None and hashes
                    and _ORDER.index(rec.signal_type) > _ORDER.index(hashes[-1][0]))
        if can_join:
            hashes.append((rec.signal_type, rec.value))
        else:
            flush()
            key, first, hashes = k, rec, [(rec.signal_type, rec.value)]
        n += 1
    flush()
    stream.write(b"\n]}\n")
    return n
