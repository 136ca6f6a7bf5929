"""NCMEC Hash Sharing API v2 XML: the ``/v2/entries`` response (``queryResult``).

Element names follow python-threatexchange's NCMEC client
(``exchanges/clients/ncmec/hash_api.py``: ``NCMECEntryUpdate.from_xml``,
``GetEntriesResponse.from_xml``; its test data ``ncmec/tests/data.py``)::

    <queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
      <images count="2" maxTimestamp="2017-10-24T15:10:00Z">
        <image>
          <member id="42">Example Member</member>
          <timestamp>2017-10-24T15:00:00Z</timestamp>
          <id>image1</id>
          <classification>A1</classification>
          <fingerprints><md5>...</md5><sha1>...</sha1><pdna>...</pdna><pdq>...</pdq></fingerprints>
          <feedback>...</feedback>
        </image>
        <deletedImage><member id="43">...</member><id>image4</id><timestamp>...</timestamp></deletedImage>
      </images>
      <videos count="..." maxTimestamp="..."> <video>...</video> <deletedVideo>...</deletedVideo> </videos>
      <paging><next>/v2/entries?...</next></paging>
    </queryResult>

Each fingerprint becomes one ``HashRecord``: ``md5``, ``sha1``, ``pdq``, ``pdna`` (PhotoDNA;
``photodna`` accepted too) and ``sha256``; ``external_ids`` ``["ncmec:<member id>/<entry id>"]``,
``category`` = ``classification``, ``meta`` = ``entry_type`` (image/video), ``timestamp`` and
``member_name``. Fingerprints given only as links (``<tmk-pdqf rel="self" href="..."/>``) are
skipped; other fingerprint types are reported as bad records.

``deletedImage``/``deletedVideo`` are tombstones (``op="remove"``). NCMEC sends them without
fingerprints, so such a tombstone becomes **one** record with an empty ``signal_type`` and
``value``, ``op="remove"``, the entry's external id and ``meta["remove_by"] = "external_id"``:
"withdraw whatever this entry added". A tombstone that does carry fingerprints (this module's own
export does) becomes one remove per fingerprint.

Parsing is streaming (``defusedxml.ElementTree.iterparse``; each entry is cleared and dropped
once read) and defused: DTDs, entity declarations and external references are refused, no text
value may exceed 64 KiB, and no single entry may take more than 16 MiB of input. A document that
breaks these rules, or is malformed or truncated, ends the read with a ``RecordError`` (records
before that point are still yielded).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
import typing
from typing import Any, Iterable, Iterator
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree as DET

from consentry.banks.formats._util import GuardedReader, ItemTooLarge, make_record, shorten
from consentry.banks.formats.records import HashRecord, RecordError

NAME = "ncmec"
NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
#: Longest text of any one element.
MAX_TEXT = 64 * 1024

#: NCMEC fingerprint element -> our signal type.
FINGERPRINTS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "pdq": "pdq", "pdna": "photodna",
                "photodna": "photodna"}
#: Our signal type -> NCMEC fingerprint element, for export.
WRITE_FINGERPRINTS = {"md5": "md5", "sha1": "sha1", "pdq": "pdq", "photodna": "pdna"}
ENTRY_TAGS = {"image": ("image", False), "video": ("video", False),
              "deletedimage": ("image", True), "deletedvideo": ("video", True)}
_SECTION_TAGS = {"images", "videos"}
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class TextTooLarge(Exception):
    pass


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(elem: Element, name: str) -> Element | None:
    """The first child named ``name`` (elements from :func:`_events` carry local names as tags)."""
    return elem.find(name)


def _text(elem: Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _entry_records(elem: Element, local: str, pos: str) -> list[HashRecord | RecordError]:
    entry_type, deleted = ENTRY_TAGS[local.lower()]
    member = _child(elem, "member")
    member_id = (member.get("id") or "").strip() if member is not None else ""
    entry_id = _text(_child(elem, "id"))
    if not member_id or not entry_id:
        return [RecordError(pos, "entry without <member id=...> or <id>")]
    external = f"ncmec:{member_id}/{entry_id}"
    classification = _text(_child(elem, "classification")) or None
    meta: dict[str, Any] = {"entry_type": entry_type}
    ts = _text(_child(elem, "timestamp"))
    if ts:
        meta["timestamp"] = ts[:64]
    name = _text(member)
    if name:
        meta["member_name"] = name[:200]
    op = "remove" if deleted else "add"
    out: list[HashRecord | RecordError] = []
    fingerprints = _child(elem, "fingerprints")
    for fp in fingerprints if fingerprints is not None else ():
        fp_name = fp.tag
        fp_pos = f"{pos}.{fp_name}"
        value = _text(fp)
        if not value:
            if fp.get("href") is None:
                out.append(RecordError(fp_pos, "empty fingerprint"))
            continue  # a link to a fingerprint served elsewhere (tmk-pdqf, videntifier)
        st = FINGERPRINTS.get(fp_name.lower())
        if st is None:
            out.append(RecordError(fp_pos, f"unknown NCMEC fingerprint type {shorten(fp_name, 40)}"))
            continue
        out.append(make_record(NAME, fp_pos, st, value, op=op, external_ids=[external],
                               category=classification, meta=meta))
    if deleted and not any(isinstance(r, HashRecord) for r in out):
        out.append(HashRecord("", "", "remove", [external], [], classification, NAME,
                              {**meta, "remove_by": "external_id"}, pos))
    elif fingerprints is None and not deleted:
        out.append(RecordError(pos, "entry without <fingerprints>"))
    return out


def _events(stream: typing.BinaryIO, max_depth: int) -> Iterator[tuple[str, Element]]:
    """``("start"|"end", element)`` for the elements of ``stream`` at most ``max_depth`` deep (the
    root is 0), as ``iterparse`` gives them, from defusedxml's parser (DTDs, entity declarations and
    external references refused by its expat handlers) with our own light element handlers on its
    expat parser: ElementTree's pure-Python handlers and event queue cost several times the parse
    itself. Deeper elements are built into their parents' trees, unreported. Tags are local names
    (namespace dropped); an element's ``text`` is the text before its first child (no tails: nothing
    here reads them); a text run over ``MAX_TEXT`` raises."""
    xp = DET.DefusedXMLParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    expat = xp.parser
    expat.ordered_attributes = False
    expat.buffer_text = True
    stack: list[Element] = []
    buf: list[str] = []
    run = 0
    out: list[tuple[str, Element]] = []
    locals_: dict[str, str] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal run
        local = locals_.get(tag)
        if local is None:
            local = locals_[tag] = tag.rpartition("}")[2]
        el = Element(local, attrs)
        if stack:
            parent = stack[-1]
            if parent.text is None:
                parent.text = "".join(buf)
            parent.append(el)
        buf.clear()
        run = 0
        if len(stack) <= max_depth:
            out.append(("start", el))
        stack.append(el)

    def end(tag: str) -> None:
        nonlocal run
        el = stack.pop()
        if el.text is None:
            el.text = "".join(buf)
        buf.clear()
        run = 0
        if len(stack) <= max_depth:
            out.append(("end", el))

    def data(text: str) -> None:
        nonlocal run
        run += len(text)
        if run > MAX_TEXT:
            raise TextTooLarge(f"a text value is longer than {MAX_TEXT // 1024} KiB")
        buf.append(text)

    expat.StartElementHandler, expat.EndElementHandler, expat.CharacterDataHandler = start, end, data
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        xp.feed(chunk)  # expat errors become ParseError
        yield from out
        out.clear()
    try:
        expat.Parse(b"", True)
    except Exception as exc:  # pyexpat.ExpatError, as XMLParser.close would raise it
        if exc.__class__.__name__ != "ExpatError":
            raise
        xp._raiseerror(exc)
    yield from out


def read(stream: typing.BinaryIO, *, source_name: str | None = None,
         paging: dict[str, str] | None = None) -> Iterator[HashRecord | RecordError]:
    """Records of an NCMEC ``queryResult``; ``paging``, when given, receives ``{"next": link}`` from
    ``<paging><next>`` once the whole document has been read without error (API pages)."""
    guard = GuardedReader(stream)
    stack: list[Element] = []
    counts: dict[str, int] = {}
    where = "document"
    next_link: str | None = None
    try:
        for event, elem in _events(guard, 2):  # queryResult / section / entry (or paging / next)
            local = elem.tag
            if event == "start":
                if not stack and local != "queryResult":
                    yield RecordError("document", f"expected <queryResult>, found <{shorten(local, 40)[1:-1]}>")
                    return
                stack.append(elem)
                if local.lower() in ENTRY_TAGS:
                    where = f"{local}[{counts.get(local, 0) + 1}]"
                continue
            stack.pop()
            parent = stack[-1] if stack else None
            if parent is None or len(stack) > 2:
                continue  # inside an entry (or the end of the document)
            if local.lower() in ENTRY_TAGS and parent.tag in _SECTION_TAGS:
                counts[local] = counts.get(local, 0) + 1
                yield from _entry_records(elem, local, f"{local}[{counts[local]}]")
                where = f"after {local}[{counts[local]}]"
            elif local == "next" and len(stack) == 2 and parent.tag == "paging":
                next_link = (elem.text or "").strip()  # queryResult/paging/next
            # entries, sections, paging and anything unknown at the top levels: read, so drop
            elem.clear()
            parent.remove(elem)
            guard.mark()
        if paging is not None and next_link is not None:
            paging["next"] = next_link
    except defusedxml.DTDForbidden:
        yield RecordError("document", "refused: the document has a DTD (entity expansion is not allowed)")
    except defusedxml.EntitiesForbidden:
        yield RecordError("document", "refused: the document declares entities")
    except defusedxml.ExternalReferenceForbidden:
        yield RecordError("document", "refused: the document references external resources")
    except (TextTooLarge, ItemTooLarge) as exc:
        yield RecordError(where, f"refused: {exc}")
    except ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        yield RecordError(f"line {line}", f"malformed or truncated XML (column {col})")


# --------------------------------------------------------------------------- writing
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Section:
    def __init__(self, name: str) -> None:
        self.name = name
        self.spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self.count = 0
        self.max_ts = ""

    def add(self, xml: str, ts: str) -> None:
        self.spool.write(xml.encode("utf-8"))
        self.count += 1
        self.max_ts = max(self.max_ts, ts)

    def copy_to(self, stream: typing.BinaryIO) -> None:
        if not self.count:
            return
        stream.write(f'  <{self.name} count="{self.count}" maxTimestamp={quoteattr(self.max_ts)}>\n'.encode())
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, stream, 1 << 16)
        stream.write(f"  </{self.name}>\n".encode())


def _entry_key(rec: HashRecord, now: str) -> tuple[Any, ...]:
    meta = rec.meta if isinstance(rec.meta, dict) else {}
    ncmec = next((e for e in rec.external_ids if e.startswith("ncmec:")), None)
    member_id, entry_id = "", ""
    if ncmec:
        member_id, _, entry_id = ncmec[len("ncmec:"):].partition("/")
    if not member_id.isdigit() or not entry_id:
        member_id = "0"
        entry_id = "consentry-" + hashlib.sha1(f"{rec.signal_type}:{rec.value}".encode()).hexdigest()[:20]
    entry_type = meta.get("entry_type") if meta.get("entry_type") in ("image", "video") else "image"
    ts = meta.get("timestamp")
    ts = ts if isinstance(ts, str) and _TIMESTAMP.match(ts) else now
    name = meta.get("member_name") if isinstance(meta.get("member_name"), str) else ""
    return (entry_type, rec.op == "remove", member_id, name, entry_id, rec.category or "", ts)


def _entry_xml(key: tuple[Any, ...], fingerprints: list[tuple[str, str]]) -> str:
    entry_type, deleted, member_id, name, entry_id, classification, ts = key
    tag = ("deleted" + entry_type.capitalize()) if deleted else entry_type
    parts = [f"    <{tag}>\n", f"      <member id={quoteattr(member_id)}>{escape(name)}</member>\n",
             f"      <timestamp>{escape(ts)}</timestamp>\n", f"      <id>{escape(entry_id)}</id>\n"]
    if classification:
        parts.append(f"      <classification>{escape(classification)}</classification>\n")
    if fingerprints:
        parts.append("      <fingerprints>\n")
        parts += [f"        <{el}>{escape(v)}</{el}>\n" for el, v in fingerprints]
        parts.append("      </fingerprints>\n")
    parts.append(f"    </{tag}>\n")
    return "".join(parts)


def _fingerprint(rec: HashRecord) -> tuple[str, str] | None:
    el = WRITE_FINGERPRINTS.get(rec.signal_type)
    if el is None:
        return None
    if el == "pdna":  # NCMEC lists carry PhotoDNA as hex
        import base64

        return el, base64.b64decode(rec.value).hex()
    return el, rec.value


def write(records: Iterable[HashRecord], stream: typing.BinaryIO) -> int:
    now = _now()
    sections = {"image": _Section("images"), "video": _Section("videos")}
    key: tuple[Any, ...] | None = None
    fps: list[tuple[str, str]] = []
    n = 0

    def flush() -> None:
        if key is not None:
            sections[key[0]].add(_entry_xml(key, fps), key[6])

    try:
        for rec in records:
            by_id = (rec.op == "remove" and not rec.signal_type
                     and any(e.startswith("ncmec:") for e in rec.external_ids))
            fp = None if by_id else _fingerprint(rec)
            if fp is None and not by_id:
                continue
            k = _entry_key(rec, now)
            if k == key and fp is not None and fps and fp[0] not in {f[0] for f in fps}:
                fps.append(fp)
            else:
                flush()
                key, fps = k, ([fp] if fp is not None else [])
            n += 1
        flush()
        stream.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n')
        stream.write(f'<queryResult xmlns="{NAMESPACE}">\n'.encode())
        sections["image"].copy_to(stream)
        sections["video"].copy_to(stream)
        stream.write(b"</queryResult>\n")
    finally:
        for s in sections.values():
            s.spool.close()
    return n
