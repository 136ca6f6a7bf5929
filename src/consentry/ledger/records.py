"""What a ledger record is and how files of them are read (issue 14).

Kept apart from :mod:`consentry.ledger.service` (the database side) so that a child process can
read and check JSON Lines while its parent writes (:meth:`LedgerService.import_jsonl`): this module
imports nothing heavy. A record is checked once (:meth:`ContentRecord.from_dict`) and becomes a
row tuple (:meth:`ContentRecord.values`) that every database write takes as it is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from consentry import fastjson
from consentry.errors import ConsentryError

FIELDS = ("content_id", "url", "uploader_id", "surface", "content_type", "md5", "sha256", "pdq",
          "pdq_quality", "pdq_variants", "vpdq")
SIGNAL_FIELDS = ("md5", "sha256", "pdq", "pdq_variants", "vpdq")


class LedgerError(ConsentryError):
    code = "ledger_error"


_ALLOWED = frozenset(FIELDS) | {"pdq_dihedral"}
_HEX_N = {32: re.compile("[0-9a-f]{32}"), 64: re.compile("[0-9a-f]{64}")}


def _text(v: Any, name: str, n: int, where: str) -> str | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str) or len(v) > n:
        raise LedgerError(f"{where}: {name}: text of at most {n} characters")
    return v


def _hex(v: Any, name: str, n: int, where: str) -> str | None:
    """``n`` hex digits, lower case (the canonical spelling, taken as it is, is checked first)."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        if _HEX_N[n].fullmatch(v):
            return v
        v = v.strip().lower()
        if _HEX_N[n].fullmatch(v):
            return v
    raise LedgerError(f"{where}: {name}: expected {n} hex digits")


def _variants(variants: Any, where: str) -> list[str]:
    if isinstance(variants, str):
        variants = [variants[i:i + 64] for i in range(0, len(variants), 64)]
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        raise LedgerError(f"{where}: pdq_variants: a list of 64-hex PDQ hashes")
    variants = [v.strip().lower() for v in variants]
    if len(variants) == 8:  # all eight, original first (as `consentry hash` prints them)
        variants = variants[1:]
    if len(variants) != 7 or not all(_HEX_N[64].fullmatch(v) for v in variants):
        from consentry.index import DIHEDRAL_TRANSFORMS

        raise LedgerError(f"{where}: pdq_variants: 7 (or all 8) PDQ hashes of 64 hex digits, "
                          f"in the order {', '.join(DIHEDRAL_TRANSFORMS[1:])}")
    return variants


@dataclass(slots=True)
class ContentRecord:
    """One hosted content as the platform describes it (hashes only)."""

    content_id: str
    url: str | None = None
    uploader_id: str | None = None
    surface: str | None = None
    content_type: str | None = None
    md5: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    #: the 7 other dihedral variants of ``pdq`` (rotate90, rotate180, rotate270, flipx, flipy,
    #: flip_plus1, flip_minus1), as a list or one string of 7 x 64 hex digits
    pdq_variants: list[str] | None = None
    vpdq: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> "ContentRecord":
        """Validated and canonical (lower-case hex); raises :class:`LedgerError` naming the field.
        (Imports call this for every record: it is written for speed, without closures.)"""
        if not isinstance(data, dict):
            raise LedgerError(f"{where}: expected an object")
        if not _ALLOWED.issuperset(data):
            unknown = sorted(k for k in data if k not in _ALLOWED)
            raise LedgerError(f"{where}: unknown field {str(unknown[0])!r} (use {', '.join(FIELDS)})")
        cid = data.get("content_id")
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        if not isinstance(cid, str) or len(cid) > 200 or not (cid := cid.strip()):
            raise LedgerError(f"{where}: content_id: 1-200 characters")
        get = data.get
        quality = get("pdq_quality")
        if quality == "" or quality is None:
            quality = None
        elif type(quality) is not int or not 0 <= quality <= 100:
            try:
                quality = int(quality)
            except (TypeError, ValueError):
                raise LedgerError(f"{where}: pdq_quality: expected an integer 0-100") from None
            if not 0 <= quality <= 100:
                raise LedgerError(f"{where}: pdq_quality: expected an integer 0-100")
        variants = get("pdq_variants", get("pdq_dihedral"))
        if variants == "" or variants is None:
            variants = None
        else:
            variants = _variants(variants, where)
        vpdq = get("vpdq")
        if vpdq == "" or vpdq is None:
            vpdq = None
        else:
            from consentry.signals import get_signal_type

            try:
                vpdq = get_signal_type("vpdq").parse(vpdq)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's data
                raise LedgerError(f"{where}: vpdq: {exc}") from None
        rec = cls(cid, _text(get("url"), "url", 4000, where), _text(get("uploader_id"), "uploader_id", 200, where),
                  _text(get("surface"), "surface", 100, where), _text(get("content_type"), "content_type", 16, where),
                  _hex(get("md5"), "md5", 32, where), _hex(get("sha256"), "sha256", 64, where),
                  _hex(get("pdq"), "pdq", 64, where), quality, variants, vpdq)
        if variants and not rec.pdq:
            raise LedgerError(f"{where}: pdq_variants without pdq")
        if rec.md5 is None and rec.sha256 is None and rec.pdq is None and vpdq is None:
            raise LedgerError(f"{where}: no signal (give md5, sha256, pdq or vpdq, or send the file)")
        return rec

    @classmethod
    def from_content(cls, content: Any, **fields: Any) -> "ContentRecord":
        """From a loaded file (``consentry.media.content.Content``): digests, the 8 PDQ variants
        of a photo, the vPDQ frames of a video."""
        from consentry.banks.matcher import query_from_content

        return cls.from_signals(query_from_content(content, canonical=False), content.content_type, **fields)

    @classmethod
    def from_signals(cls, q: Any, content_type: str | None, **fields: Any) -> "ContentRecord":
        """From a file's match query (``QuerySignals``), so a file is hashed once."""
        from consentry.signals.vpdq import frames_to_json

        return cls.from_dict({**fields, "content_type": content_type, "md5": q.exact.get("md5"),
                              "sha256": q.exact.get("sha256"), "pdq": q.pdq[0] if q.pdq else None,
                              "pdq_quality": q.pdq_quality, "pdq_variants": q.pdq[1:] if len(q.pdq) == 8 else None,
                              "vpdq": frames_to_json(q.vpdq) if q.vpdq else None})

    def values(self) -> tuple:
        """The row's values in :data:`_COLS` order (what a bulk write stores)."""
        return (self.content_id, self.url, url_key(self.url), self.uploader_id, self.surface, self.content_type,
                self.md5, self.sha256, self.pdq, self.pdq_quality,
                "".join(self.pdq_variants) if self.pdq_variants else None, self.vpdq)


def url_key(url: str | None) -> str | None:
    return hashlib.sha256(url.encode("utf-8")).hexdigest() if url else None


def rows_of(records: Iterable[ContentRecord]) -> list[tuple]:
    """The rows to write for ``records`` (see :func:`one_per_content`)."""
    return one_per_content([r.values() for r in records])


def one_per_content(rows: list[tuple]) -> list[tuple]:
    """One row per content id (the last one wins), in content id order (the unique index is then
    filled in order; PostgreSQL's upsert orders them again)."""
    latest = {r[0]: r for r in rows}
    return [latest[k] for k in sorted(latest)]



def read_csv(stream: io.TextIOBase) -> Iterator[dict[str, Any] | LedgerError]:
    """Stream CSV (a header row naming the fields) as dicts; a row that does not fit the header is
    yielded as a :class:`LedgerError` (counted by the import). JSON Lines are read in chunks
    (:func:`line_chunks`, :func:`parse_lines`)."""
    reader = csv.DictReader(stream)
    for n, row in enumerate(reader, 2):
        if None in row:
            yield LedgerError(f"line {n}: more values than the header names")
            continue
        yield {k: v for k, v in row.items() if k and v not in (None, "")}


# ---------------------------------------------------------------------- JSON Lines in chunks
#: bytes of whole lines read and checked at a time (about 16,000 records)
CHUNK_BYTES = 4 << 20
#: a line longer than this is not a ledger record: it is read no further, and counted as an error
MAX_LINE_BYTES = 1 << 20


@dataclass
class Parsed:
    """One chunk of JSON Lines, checked: rows ready to write, and what was wrong with the rest."""

    rows: list[tuple]
    read: int = 0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)


def line_chunks(stream: BinaryIO, size: int | None = None) -> Iterator[tuple[bytes, int]]:
    """``(whole lines, number of the first)`` from a binary stream, about ``size`` bytes each
    (:data:`CHUNK_BYTES`). A line longer than :data:`MAX_LINE_BYTES` is cut there (and fails to
    parse, as it should)."""
    size = size or CHUNK_BYTES
    carry, line, skipping = b"", 1, False
    while True:
        block = stream.read(size)
        if not block:
            break
        if line == 1 and not carry and not skipping and block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]  # a byte-order mark some editors write
        if skipping:  # the rest of an over-long line, already reported
            end = block.find(b"\n")
            if end < 0:
                continue
            block, skipping = block[end:], False  # its newline ends that line's number
        if carry:
            block, carry = carry + block, b""
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            if len(block) <= MAX_LINE_BYTES:
                carry = block  # no line ends here yet
            else:  # enough of it to be named too long; the rest is skipped
                yield block[:MAX_LINE_BYTES + 1], line
                skipping = True
            continue
        yield block[:cut], line
        line += block.count(b"\n", 0, cut)
        carry = block[cut:]
    if carry:
        yield carry, line


def parse_lines(data: bytes, first_line: int = 1, max_line: int | None = None) -> Parsed:
    """Check every JSON line of ``data`` (``line N`` names a bad one; blank lines are skipped; a
    line longer than ``max_line`` bytes, :data:`MAX_LINE_BYTES`, is named too long)."""
    max_line = max_line or MAX_LINE_BYTES
    out = Parsed([])
    rows, errors = out.rows, out.errors
    for n, line in enumerate(data.split(b"\n"), first_line):
        if not line or line.isspace():
            continue
        out.read += 1
        try:
            if len(line) > max_line:
                raise LedgerError(f"line {n}: longer than {max_line:,} bytes")
            try:
                obj = fastjson.loads(line)
            except ValueError as exc:
                raise LedgerError(f"line {n}: not JSON ({getattr(exc, 'msg', None) or exc})") from None
            rows.append(ContentRecord.from_dict(obj, f"line {n}").values())
        except LedgerError as exc:
            out.error_count += 1
            if len(errors) < 100:
                errors.append(str(exc))
    return out


# ---------------------------------------------------------------------- the reading child process
# ``python -m consentry.ledger.records`` reads chunks from stdin (a 24-byte header: size, first
# line number and longest line allowed, little-endian; then the bytes) and writes each one's Parsed back, in order, as an
# 8-byte length and a pickle of plain tuples, strings and integers (a pipe between two processes
# of this program; nothing is stored). It ends at the end of its input.
_HEAD = struct.Struct("<QQQ")
_SIZE = struct.Struct("<Q")


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    while len(head := inp.read(_HEAD.size)) == _HEAD.size:
        size, first, max_line = _HEAD.unpack(head)
        p = parse_lines(inp.read(size), first, max_line)
        blob = pickle.dumps((p.rows, p.read, p.error_count, p.errors), protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_SIZE.pack(len(blob)))
        out.write(blob)
        out.flush()


def parsed_in_child(chunks: Iterable[tuple[bytes, int]], ahead: int = 16) -> Iterator[Parsed]:
    """:func:`parse_lines` of each chunk in a child process, in order, up to ``ahead`` chunks ahead
    of the caller (so it keeps reading while the caller writes a batch). Two threads move the
    bytes: one feeds the child, one collects its answers. Raises :class:`LedgerError` if the child
    fails; closing the generator early stops the child."""
    import queue
    import subprocess
    import sys
    import threading
    from pathlib import Path

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # where this copy of the package is importable
    env["PYTHONPATH"] = os.pathsep.join([src] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.Popen([sys.executable, "-m", "consentry.ledger.records"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env)
    results: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    fed = [0]

    def feed() -> None:
        try:
            for data, first in chunks:
                if stop.is_set():
                    break
                proc.stdin.write(_HEAD.pack(len(data), first, MAX_LINE_BYTES))
                proc.stdin.write(data)
                fed[0] += 1
        except (BrokenPipeError, OSError):
            pass  # the child is gone: the collector sees it
        except BaseException as exc:  # noqa: BLE001 - reading the input failed: the caller hears it
            results.put(exc)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def collect() -> None:
        while not stop.is_set():
            head = proc.stdout.read(_SIZE.size)
            if len(head) < _SIZE.size:
                break
            item = Parsed(*pickle.loads(proc.stdout.read(_SIZE.unpack(head)[0])))
            if not put(item):
                return
        put(None)

    def put(item: Any) -> bool:
        """Hand ``item`` on; False once the caller has stopped listening (a full queue then)."""
        while True:
            try:
                results.put(item, timeout=0.2)
                return True
            except queue.Full:
                if stop.is_set():
                    return False

    threads = [threading.Thread(target=f, name=f"consentry-ledger-{f.__name__}", daemon=True) for f in (feed, collect)]
    for t in threads:
        t.start()
    got = 0
    try:
        while (item := results.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            got += 1
            yield item
        threads[0].join()
        if proc.wait() != 0 or got != fed[0]:
            raise LedgerError(f"the process reading the records failed (exit status {proc.returncode}) "
                              f"after {got} of {fed[0]} chunks")
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for t in threads:
            t.join(timeout=5)
        proc.stdout.close()


if __name__ == "__main__":
    import sys as _sys

    _serve(_sys.stdin.buffer, _sys.stdout.buffer)
