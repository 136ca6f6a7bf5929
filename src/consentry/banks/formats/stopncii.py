"""StopNCII.org ``FetchHashes`` responses (what python-threatexchange's StopNCII client reads).

Shape (python-threatexchange ``exchanges/clients/stopncii/api.py``, ``FetchHashesResponse`` and
``StopNCIIHashRecord``)::

    {"count": 2, "nextPageToken": "...", "nextSetTimestamp": 1625175071, "hasMoreRecords": true,
     "hashRecords": [
        {"lastModtimestamp": 1625167804, "signalType": "ImagePDQ", "hashValue": "<64 hex>",
         "hashStatus": "Active", "caseNumbers": {"<case id>": "Active"},
         "CSPFeedbacks": [{"source": "...", "feedbackValue": "Blocked", "tags": ["..."]}],
         "hashRegions": ["UK"]}]}

Also read: a bare JSON list of hash records, JSON Lines (one hash record per line), and a single
record object. ``signalFeedbacks`` is accepted as another name for ``CSPFeedbacks``, and
``caseNumbers`` may be a list of case ids (or empty) instead of a mapping.

Mapping:

* ``signalType``: ``ImagePDQ`` -> ``pdq``, ``VideoMD5`` -> ``md5`` (pytx's ``StopNCIISignalType``);
  ``HashPDQ``/``HashMD5``/``PDQ``/``MD5`` are accepted as aliases. ``VideoTMK``, ``Text``,
  ``URL`` and ``Unknown`` have no Consentry signal type and are reported as bad records.
* ``hashStatus``: ``Active``/``Received`` (or absent) -> ``op="add"``; ``Withdrawn``/``Deleted``
  -> ``op="remove"``: the person withdrew the hash, so the entry must stop matching.
  (python-threatexchange's ``exchanges/impl/stop_ncii_api.py``, which HMA uses, tests
  ``record.hashValue`` instead of ``record.hashStatus`` against these statuses and so keeps
  withdrawn hashes.) Any other status is reported, never imported.
* ``caseNumbers`` keys -> ``external_ids`` ``stopncii:<case id>``; per-case statuses in
  ``meta["case_numbers"]``.
* ``CSPFeedbacks[*].tags`` -> ``tags`` (union, first-seen order); the feedbacks themselves
  (source, feedbackValue, tags) in ``meta["csp_feedbacks"]``.
* ``lastModtimestamp`` -> ``meta["last_modified"]``; ``hashStatus`` -> ``meta["hash_status"]``;
  ``hashRegions`` -> ``meta["regions"]``.

The writer emits one ``FetchHashes`` object (``hashRecords`` first so it can stream, then
``count``, ``nextPageToken``, ``nextSetTimestamp`` and ``hasMoreRecords``); removes are written
with ``hashStatus`` ``Withdrawn`` (or the ``Deleted`` they were read with). Only ``pdq`` and
``md5`` records are written; others have no StopNCII signal type and are skipped.
"""

from __future__ import annotations

import json
import re
import time
import typing
from typing import Any, Iterable, Iterator

from consentry.banks.formats._util import (
    MAX_LINE,
    GuardedReader,
    ItemTooLarge,
    JsonItemBuilder,
    chain,
    dedupe,
    first_significant,
    json_lines,
    json_error_message,
    make_record,
    peek_start,
    shorten,
)
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "stopncii"

SIGNAL_TYPES = {
    "imagepdq": "pdq",
    "videomd5": "md5",
    "hashpdq": "pdq",
    "hashmd5": "md5",
    "pdq": "pdq",
    "md5": "md5",
}
UNSUPPORTED_SIGNAL_TYPES = {"videotmk", "text", "url", "unknown"}
WRITE_SIGNAL_TYPES = {"pdq": "ImagePDQ", "md5": "VideoMD5"}
ACTIVE = {"active": "Active", "received": "Received"}
REMOVED = {"withdrawn": "Withdrawn", "deleted": "Deleted"}
_RECORD_KEYS = ("hashValue", "signalType")


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def convert(obj: Any, position: str) -> HashRecord | RecordError:
    """One StopNCII hash record (a decoded JSON object) -> a HashRecord or a RecordError."""
    if not isinstance(obj, dict):
        return RecordError(position, f"hash record must be a JSON object, not {type(obj).__name__}")
    stype = obj.get("signalType")
    if not isinstance(stype, str) or not stype.strip():
        return RecordError(position, "missing signalType")
    key = stype.strip().lower()
    if key in UNSUPPORTED_SIGNAL_TYPES:
        return RecordError(position, f"StopNCII signal type {shorten(stype, 40)} is not supported")
    if key not in SIGNAL_TYPES:
        return RecordError(position, f"unknown StopNCII signalType {shorten(stype, 40)}")

    status = obj.get("hashStatus")
    if status is None:
        op, status_name = "add", None
    elif isinstance(status, str) and status.strip().lower() in ACTIVE:
        op, status_name = "add", ACTIVE[status.strip().lower()]
    elif isinstance(status, str) and status.strip().lower() in REMOVED:
        op, status_name = "remove", REMOVED[status.strip().lower()]
    else:
        return RecordError(position, f"unknown hashStatus {shorten(status, 40)}")

    cases = obj.get("caseNumbers")
    meta: dict[str, Any] = {}
    if isinstance(cases, dict):
        case_ids = [str(k) for k in cases]
        statuses = {str(k): str(v) for k, v in cases.items() if isinstance(v, (str, int))}
        if statuses:
            meta["case_numbers"] = statuses
    elif isinstance(cases, list) and all(isinstance(c, (str, int)) for c in cases):
        case_ids = [str(c) for c in cases]
    elif cases is None:
        case_ids = []
    else:
        return RecordError(position, "caseNumbers must be an object or a list of case ids")

    feedbacks_raw = obj.get("CSPFeedbacks", obj.get("signalFeedbacks")) or []
    if not isinstance(feedbacks_raw, list):
        return RecordError(position, "CSPFeedbacks must be a list")
    feedbacks = []
    tags: list[str] = []
    for fb in feedbacks_raw:
        if not isinstance(fb, dict):
            continue
        fb_tags = dedupe(_str_list(fb.get("tags")))
        tags.extend(fb_tags)
        feedbacks.append({"source": str(fb.get("source") or ""),
                          "feedbackValue": str(fb.get("feedbackValue") or ""), "tags": fb_tags})
    if feedbacks:
        meta["csp_feedbacks"] = feedbacks
    if status_name:
        meta["hash_status"] = status_name
    ts = obj.get("lastModtimestamp")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        meta["last_modified"] = int(ts)
    regions = _str_list(obj.get("hashRegions"))
    if regions:
        meta["regions"] = regions
    return make_record(
        NAME, position, SIGNAL_TYPES[key], obj.get("hashValue"), op=op,  # type: ignore[arg-type]
        external_ids=dedupe(f"stopncii:{c}" for c in case_ids), tags=dedupe(tags), meta=meta,
    )


def _is_json_lines(head: bytes) -> bool:
    """True if the first line is, on its own, one complete hash-record object."""
    body = first_significant(head)
    if not body.startswith(b"{"):
        return False
    line, nl, _ = body.partition(b"\n")
    if not nl:
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and "hashRecords" not in obj and any(k in obj for k in _RECORD_KEYS)


def _read_json_lines(stream: typing.BinaryIO) -> Iterator[HashRecord | RecordError]:
    for item in json_lines(stream):
        yield item if isinstance(item, RecordError) else convert(item[1], item[0])


#: a document whose records come first (a bare list, or ``{"hashRecords": [`` as FetchHashes
#: answers start): its records are built by ijson's C backend, several times faster than
#: event by event; other shapes take the general path below
_RECORDS_FIRST = re.compile(rb'\s*(\[|\{\s*"hashRecords"\s*:\s*\[)')


def _read_records_first(guard: GuardedReader, prefix: str) -> Iterator[HashRecord | RecordError]:
    import ijson

    n = 0
    try:
        for obj in ijson.items(guard, prefix, use_float=True):
            n += 1
            yield convert(obj, f"record {n}")
            guard.mark()
    except (ijson.JSONError, ItemTooLarge) as exc:
        yield RecordError(f"record {n + 1}", json_error_message(exc))


def _read_document(guard: GuardedReader, head: bytes = b"") -> Iterator[HashRecord | RecordError]:
    import ijson

    first = _RECORDS_FIRST.match(head)
    if first:
        yield from _read_records_first(guard, "item" if first.group(1) == b"[" else "hashRecords.item")
        return

    item_prefix: str | None = None  # "item" (bare list) or "hashRecords.item" (FetchHashes)
    top: JsonItemBuilder | None = None  # the top-level object, without its hashRecords
    seen_records = False
    builder: JsonItemBuilder | None = None
    n = 0
    try:
        for prefix, event, value in ijson.parse(guard, use_float=True):
            if builder is not None:
                if builder.feed(event, value):
                    n += 1
                    yield convert(builder.value, f"record {n}")
                    guard.mark()
                    builder = None
                continue
            if prefix == item_prefix:
                builder = JsonItemBuilder()
                if builder.feed(event, value):  # a scalar where a record should be
                    n += 1
                    yield convert(builder.value, f"record {n}")
                    guard.mark()
                    builder = None
                continue
            if item_prefix is None:  # the first event fixes the document shape
                if event == "start_array":
                    item_prefix = "item"
                    continue
                if event == "start_map":
                    item_prefix = "hashRecords.item"
                    top = JsonItemBuilder()
                    top.feed(event, value)
                    continue
                yield RecordError("document", "expected a JSON object or list of hash records")
                return
            if top is not None:
                if prefix == "hashRecords" and event == "start_array":
                    seen_records = True
                    top.feed("null", None)  # keep the records out of the top object
                    continue
                if prefix == "hashRecords" and event == "end_array":
                    continue
                if top.feed(event, value):
                    guard.mark()
    except (ijson.JSONError, ItemTooLarge) as exc:
        yield RecordError(f"record {n + 1}", json_error_message(exc))
        return
    if top is not None and not seen_records:
        doc = top.value
        if isinstance(doc, dict) and any(k in doc for k in _RECORD_KEYS):
            yield convert(doc, "record 1")  # a single hash record on its own
        else:
            yield RecordError("document", "no hashRecords list found")


def read(stream: typing.BinaryIO, *, source_name: str | None = None) -> Iterator[HashRecord | RecordError]:
    head = peek_start(stream, MAX_LINE + 1)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip():
        return
    if _is_json_lines(head):
        yield from _read_json_lines(chain(head, stream))
    else:
        yield from _read_document(GuardedReader(stream, prefix=head), head)


# --------------------------------------------------------------------------- writing
def to_json(rec: HashRecord, now: int) -> dict[str, Any] | None:
    stype = WRITE_SIGNAL_TYPES.get(rec.signal_type)
    if stype is None:
        return None
    meta = rec.meta if isinstance(rec.meta, dict) else {}
    old = str(meta.get("hash_status") or "")
    if rec.op == "remove":
        status = old if old in REMOVED.values() else "Withdrawn"
    else:
        status = old if old in ACTIVE.values() else "Active"
    case_status = meta.get("case_numbers") if isinstance(meta.get("case_numbers"), dict) else {}
    cases = {
        eid[len("stopncii:"):]: str(case_status.get(eid[len("stopncii:"):], status))
        for eid in rec.external_ids if eid.startswith("stopncii:")
    }
    ts = meta.get("last_modified")
    out: dict[str, Any] = {
        "lastModtimestamp": int(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else now,
        "signalType": stype,
        "hashValue": rec.value,
        "hashStatus": status,
        "caseNumbers": cases,
    }
    feedbacks = meta.get("csp_feedbacks")
    if (isinstance(feedbacks, list) and all(isinstance(f, dict) for f in feedbacks)
            and dedupe(t for f in feedbacks for t in _str_list(f.get("tags"))) == list(rec.tags)):
        out["CSPFeedbacks"] = feedbacks
    else:
        out["CSPFeedbacks"] = (
            [{"source": "consentry", "feedbackValue": "None", "tags": list(rec.tags)}] if rec.tags else []
        )
    regions = _str_list(meta.get("regions"))
    if regions:
        out["hashRegions"] = regions
    return out


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    now = int(time.time())
    n = 0
    max_ts = 0
    stream.write(b'{"hashRecords": [')
    for rec in records:
        obj = to_json(rec, now)
        if obj is None:
            continue
        stream.write((",\n  " if n else "\n  ").encode() + json.dumps(obj, ensure_ascii=False).encode("utf-8"))
        max_ts = max(max_ts, obj["lastModtimestamp"])
        n += 1
    tail = {"count": n, "nextPageToken": "", "nextSetTimestamp": max_ts or now, "hasMoreRecords": False}
    stream.write(b"\n], " + json.dumps(tail)[1:].encode() + b"\n")
    return n
