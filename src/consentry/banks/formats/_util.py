"""Helpers shared by the hash-list format modules: bounded line reading, a byte guard for the
streaming JSON/XML parsers, and the one place a raw value becomes a ``HashRecord``.

Nothing here reads a whole input: lines are read with a length cap, and the JSON/XML readers read
through :class:`GuardedReader`, which stops a parse once a single record has consumed more than
``MAX_ITEM_BYTES`` of input (so a 1 GB string or element cannot be buffered).
"""

from __future__ import annotations

import io
import json
import re
import typing
from typing import Any, Iterator, Sequence

from consentry.banks.formats.records import HashRecord, Op, RecordError
from consentry.errors import SignalValueError
from consentry.signals import get_signal_type

#: Longest text line accepted by the line-based formats (te, csv, JSON Lines).
MAX_LINE = 64 * 1024
#: Most input bytes one record (JSON object, XML entry) may take before reading stops.
MAX_ITEM_BYTES = 16 * 1024 * 1024
#: Longest value echoed in a message.
ECHO = 80


def shorten(text: Any, n: int = ECHO) -> str:
    """``text`` as a repr, cut so that no more than ``n`` characters of the input show."""
    s = str(text)
    if len(s) > n:
        return repr(s[: n - 3] + "...")
    return repr(s)


def make_record(
    source: str,
    position: str,
    signal_type: Any,
    raw_value: Any,
    *,
    op: Op = "add",
    external_ids: Sequence[str] = (),
    tags: Sequence[str] = (),
    category: str | None = None,
    meta: dict[str, Any] | None = None,
) -> HashRecord | RecordError:
    """Canonicalise ``raw_value`` through the signal registry; a ``RecordError`` if it fails."""
    if not isinstance(signal_type, str) or not signal_type.strip():
        return RecordError(position, "missing signal type")
    try:
        st = get_signal_type(signal_type.strip())
    except KeyError:
        return RecordError(position, f"unknown signal type {shorten(signal_type, 40)}")
    if raw_value is None or (isinstance(raw_value, str) and not raw_value.strip()):
        return RecordError(position, f"missing {st.name} value")
    if not isinstance(raw_value, str):
        return RecordError(position, f"{st.name} value must be a string, not {type(raw_value).__name__}")
    if st.name == "photodna":
        raw_value = photodna_from_decimal(raw_value)
    try:
        value = st.parse(raw_value)
    except SignalValueError as exc:
        return RecordError(position, str(exc)[:200])
    return HashRecord(
        st.name, value, op, list(external_ids), list(tags), category, source, dict(meta or {}), position
    )


_DECIMAL_LIST = re.compile(r"^\s*\d{1,3}(\s*,\s*\d{1,3}){143}\s*$")


def photodna_from_decimal(text: str) -> str:
    """PhotoDNA as 144 comma-separated byte values (a common tool export) -> hex; else as is."""
    if len(text) <= 144 * 5 and _DECIMAL_LIST.match(text):
        nums = [int(x) for x in text.split(",")]
        if all(0 <= x <= 255 for x in nums):
            return bytes(nums).hex()
    return text


def dedupe(items: typing.Iterable[str]) -> list[str]:
    """Drop blanks and repeats, keep first-seen order."""
    return [item for item in dict.fromkeys([item.strip() for item in items]) if item]


# --------------------------------------------------------------------------- lines
def iter_lines(stream: typing.BinaryIO, max_len: int = MAX_LINE) -> Iterator[tuple[int, str | None, str]]:
    """Yield ``(line_number, text, error)`` for each line, newline stripped.

    ``text`` is None (and ``error`` says why) for a line longer than ``max_len`` bytes, which is
    skipped without being held in memory, or one that is not UTF-8. A UTF-8 BOM is dropped.
    """
    n = 0
    while True:
        raw = stream.readline(max_len + 1)
        if not raw:
            return
        n += 1
        if len(raw) > max_len and not raw.endswith(b"\n"):
            while True:  # discard the rest of the over-long line in bounded chunks
                more = stream.readline(max_len)
                if not more or more.endswith(b"\n"):
                    break
            yield n, None, f"line longer than {max_len // 1024} KiB"
            continue
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield n, None, "line is not UTF-8"
            continue
        yield n, text.rstrip("\r\n"), ""


# --------------------------------------------------------------------------- byte guard
class ItemTooLarge(Exception):
    pass


class GuardedReader:
    """A read-only file wrapper for incremental parsers (ijson, expat).

    Reads in bounded chunks whatever size the parser asks for, counts bytes, and raises
    :class:`ItemTooLarge` once more than ``limit`` bytes have been read since the last
    :meth:`mark` (which the caller sets after each complete record).
    """

    CHUNK = 64 * 1024

    def __init__(self, stream: typing.BinaryIO, limit: int = MAX_ITEM_BYTES, prefix: bytes = b"") -> None:
        self._stream = stream
        self._prefix = prefix
        self.limit = limit
        self.pos = 0
        self._mark = 0

    def mark(self) -> None:
        self._mark = self.pos

    def read(self, n: int | None = -1) -> bytes:
        if n == 0:
            return b""
        if n is None or n < 0 or n > self.CHUNK:
            n = self.CHUNK
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
        else:
            data = self._stream.read(n) or b""
        self.pos += len(data)
        if self.pos - self._mark > self.limit:
            raise ItemTooLarge(f"one record is larger than {self.limit // (1024 * 1024)} MiB")
        return data


def json_lines(stream: typing.BinaryIO) -> Iterator[tuple[str, Any] | RecordError]:
    """``(position, value)`` for each JSON line (``line N``), blank lines skipped; a line that is
    too long, not UTF-8 or not JSON is a :class:`RecordError` instead."""
    for lineno, line, err in iter_lines(stream):
        pos = f"line {lineno}"
        if line is None:
            yield RecordError(pos, err)
            continue
        if not line.strip():
            continue
        try:
            yield pos, json.loads(line)
        except ValueError as exc:
            yield RecordError(pos, f"not JSON: {getattr(exc, 'msg', exc)}")


def peek_start(stream: typing.BinaryIO, want: int = 4096) -> bytes:
    """Read up to ``want`` bytes from the start (the caller passes them on as a prefix)."""
    buf = b""
    while len(buf) < want:
        chunk = stream.read(want - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _Chain(io.RawIOBase):
    def __init__(self, prefix: bytes, stream: typing.BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(b)) or b""
        b[: len(data)] = data
        return len(data)


def chain(prefix: bytes, stream: typing.BinaryIO) -> typing.BinaryIO:
    """A buffered stream that yields ``prefix`` and then the rest of ``stream`` (left open)."""
    return io.BufferedReader(_Chain(prefix, stream), 1 << 16)  # type: ignore[return-value]


def first_significant(data: bytes) -> bytes:
    """``data`` without a BOM and leading whitespace."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.lstrip()


# --------------------------------------------------------------------------- JSON events
JSON_START = frozenset(("start_map", "start_array"))
JSON_END = frozenset(("end_map", "end_array"))


class JsonItemBuilder:
    """Builds one JSON value from ijson ``parse`` events; :meth:`feed` says when it is complete."""

    def __init__(self) -> None:
        import ijson

        self._builder = ijson.ObjectBuilder()
        self._depth = 0

    def feed(self, event: str, value: Any) -> bool:
        self._builder.event(event, value)
        if event in JSON_START:
            self._depth += 1
        elif event in JSON_END:
            self._depth -= 1
        return self._depth == 0

    @property
    def value(self) -> Any:
        return self._builder.value


def json_error_message(exc: BaseException) -> str:
    """A parser error without the echo of input that yajl appends to its messages."""
    if isinstance(exc, ItemTooLarge):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0].strip()
    return ("malformed or truncated JSON: " + first)[:120] if first else "malformed or truncated JSON"
