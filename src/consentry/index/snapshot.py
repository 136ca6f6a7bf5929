"""Index snapshots: a compacted PDQ index as plain arrays in one memory-mapped file.

Every worker process on a host maps the same file read-only, so the ~1.2 GB of a 10M-entry index
sits once in the page cache instead of once per worker, and a worker starts by mapping it (plus
replaying the change log since the snapshot's cursor) instead of reading every entry from the
database.

File layout (``<dir>/<name>.snap``): a 4 KiB header (``MAGIC`` then UTF-8 JSON padded with spaces)
followed by the arrays, each starting on a 4 KiB boundary: ``ids``, ``words``, ``band_base``,
``offsets``, ``postings``, ``starts``, ``widths``. The header holds the format version, the
signal type, the threshold and band layout, the change-log cursor the arrays cover, the entry
count, an identity of the change log (so a snapshot of another database is never used), each
array's dtype/shape/offset, and a BLAKE2b checksum over all array bytes.

Never trusted blindly: a snapshot is used only if its header parses, every field is as expected,
the file has exactly the announced size, and its checksum matches. The full checksum is computed
once per file per boot: the first process to verify it leaves a stamp (``.verified``: file
identity + boot id + checksum) that later workers compare instead of re-hashing. Anything else
(missing, unreadable, another format, another database, a cursor ahead of the database) returns
None and the caller rebuilds from the database. Files are written to a temporary name, synced and
renamed, so a reader sees either the old or the new snapshot, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

log = logging.getLogger("consentry.index.snapshot")

MAGIC = b"CONSENTRY-INDEX-SNAPSHOT\n"
FORMAT_VERSION = 1
HEADER_BYTES = 4096
ALIGN = 4096
ARRAYS = ("ids", "words", "band_base", "offsets", "postings", "starts", "widths")
_CHUNK = 64 << 20


@dataclass
class Snapshot:
    """An opened, verified snapshot: the arrays (read-only memory maps) and what they cover."""

    path: Path
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def cursor(self) -> int:
        return int(self.header["cursor"])

    @property
    def identity(self) -> dict[str, Any]:
        return self.header["identity"]


def snapshot_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.snap"


def _checksum(arrays: list[np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=32)
    for a in arrays:
        flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        for i in range(0, len(flat), _CHUNK):
            h.update(memoryview(flat[i : i + _CHUNK]))
    return h.hexdigest()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _file_identity(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"ino": st.st_ino, "dev": st.st_dev, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def write_snapshot(directory: Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` (all of :data:`ARRAYS`) and ``meta`` (signal_type, threshold, radius,
    design_threshold, cursor, identity) atomically; returns the path."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    layout: dict[str, dict[str, Any]] = {}
    pos = HEADER_BYTES
    ordered = [np.ascontiguousarray(arrays[k]) for k in ARRAYS]
    for k, a in zip(ARRAYS, ordered):
        layout[k] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": pos, "nbytes": int(a.nbytes)}
        pos += -(-a.nbytes // ALIGN) * ALIGN
    header = {"format": FORMAT_VERSION, **meta, "entries": int(len(arrays["ids"])), "arrays": layout,
              "size": pos, "checksum": _checksum(ordered), "written_at": time.time()}
    raw = MAGIC + json.dumps(header, sort_keys=True).encode()
    if len(raw) > HEADER_BYTES:
        raise ValueError("snapshot header too large")
    final = snapshot_path(directory, name)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        # 0600, like the database: the arrays are the banks' hashes, and hash lists are secrets
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(raw.ljust(HEADER_BYTES, b" "))
            for k, a in zip(ARRAYS, ordered):
                fh.seek(layout[k]["offset"])
                flat = a.reshape(-1).view(np.uint8)
                for i in range(0, len(flat), _CHUNK):
                    fh.write(memoryview(flat[i : i + _CHUNK]))
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _stamp(final, header["checksum"])  # we just computed it from the arrays we wrote
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return final


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, checksum: str) -> None:
    stamp = {"file": _file_identity(path), "boot_id": _boot_id(), "checksum": checksum}
    tmp = _stamp_path(path).with_name(f".{path.name}.verified.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, _stamp_path(path))


def _stamped(path: Path, checksum: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(stamp, dict) and stamp.get("checksum") == checksum and stamp.get("boot_id") == _boot_id()
            and stamp.get("file") == _file_identity(path))


def read_header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(HEADER_BYTES)
        if len(raw) != HEADER_BYTES or not raw.startswith(MAGIC):
            return None
        header = json.loads(raw[len(MAGIC):].decode())
        return header if isinstance(header, dict) else None
    except (OSError, ValueError):
        return None


def open_snapshot(directory: Path, name: str, expect: dict[str, Any], *, verify: bool = True) -> Snapshot | None:
    """The verified snapshot ``name`` or None (missing or not to be trusted: the reason is logged).

    ``expect``: header fields that must be equal (e.g. signal_type, threshold)."""
    path = snapshot_path(directory, name)
    if not path.exists():
        return None
    header = read_header(path)
    why = None
    if header is None:
        why = "unreadable header"
    elif header.get("format") != FORMAT_VERSION:
        why = f"format {header.get('format')!r}, not {FORMAT_VERSION}"
    else:
        for k, v in expect.items():
            if header.get(k) != v:
                why = f"{k} is {header.get(k)!r}, not {v!r}"
                break
    if why is None:
        try:
            if path.stat().st_size != int(header["size"]):
                why = "file size differs from its header"
            else:
                arrays = {}
                for k in ARRAYS:
                    spec = header["arrays"][k]
                    shape = tuple(int(x) for x in spec["shape"])
                    dtype = np.dtype(spec["dtype"])
                    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != int(spec["nbytes"]):
                        raise ValueError(f"array {k}: shape and size differ")
                    # a plain ndarray view of the map (the compiled kernels take no subclasses)
                    arrays[k] = (np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=int(spec["offset"]),
                                                      shape=shape))
                                 if spec["nbytes"] else np.zeros(shape, dtype=dtype))
                if len(arrays["ids"]) != int(header["entries"]):
                    why = "entry count differs from its header"
                elif verify and not _stamped(path, header["checksum"]):
                    if _checksum([arrays[k] for k in ARRAYS]) != header["checksum"]:
                        why = "checksum mismatch"
                    else:
                        with contextlib.suppress(OSError):
                            _stamp(path, header["checksum"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = f"bad array layout ({exc})"
    if why is not None:
        log.warning("index snapshot %s not used: %s; rebuilding from the database", path, why)
        return None
    return Snapshot(path, header, arrays)


@contextlib.contextmanager
def writer_lock(directory: Path, name: str, wait: float = 0.0) -> Iterator[bool]:
    """The host-wide lock for writing snapshot ``name`` (an advisory ``flock`` on a lock file):
    yields True when held (for up to ``wait`` seconds of trying), False when another process has it."""
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fh = open(directory / f"{name}.lock", "a+")
    except OSError as exc:  # a read-only home: no snapshots, never an error
        log.warning("index snapshot directory %s not usable (%s): indexes are built in memory", directory, exc)
        yield False
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                    break
                time.sleep(0.05)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


# ------------------------------------------------------------------ PDQ indexes
def _pdq_expect(signal_type: str, threshold: int) -> dict[str, Any]:
    return {"signal_type": signal_type, "threshold": int(threshold)}


def save_pdq_base(directory: Path, name: str, base, threshold: int, cursor: int, identity: dict[str, Any],
                  signal_type: str = "pdq") -> Path:
    """Write a PDQ index base (a ``pdq_index._Base`` with no tombstones) as snapshot ``name``."""
    if base.dead.any():
        raise ValueError("only a compacted base (no tombstones) can be saved")
    lay = base.layout
    meta = {**_pdq_expect(signal_type, threshold), "radius": None if lay is None else int(lay.radius),
            "design_threshold": int(threshold if lay is None else lay.design_threshold),
            "cursor": int(cursor), "identity": identity}
    return write_snapshot(directory, name, base.arrays(), meta)


def open_pdq_index(directory: Path, name: str, threshold: int, signal_type: str = "pdq"):
    """(PDQIndex over the mapped arrays, snapshot) or None."""
    from consentry.index.pdq_index import PDQIndex, _Base

    snap = open_snapshot(directory, name, _pdq_expect(signal_type, threshold))
    if snap is None:
        return None
    idx = PDQIndex(threshold)
    idx._base = _Base.from_arrays(snap.arrays, snap.header["radius"], snap.header["design_threshold"])
    idx._live_base = len(idx._base.ids)
    return idx, snap
