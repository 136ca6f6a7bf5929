"""Walk the inputs of a scan: directories, files, and ZIP/TAR archives read in place.

The walker runs in the scan's main process and yields two kinds of things:

* :class:`WorkItem` — a file (read by the worker from disk) or an archive member (its bytes,
  read here with bounded expansion), to be hashed and assessed by :func:`consentry.scan.worker.scan_item`;
* :class:`WalkRecord` — something recorded without a worker: an archive (with its digests and
  member count), a symbolic link (never followed), a special file, or an error (unreadable
  directory, a member over the limits, a corrupt archive).

Archive members get the path ``<archive>!/<member>`` (nested: ``a.tar!/b.zip!/c.jpg``).
Nothing is extracted to disk. Expansion is bounded: each member is read up to
``max_member_bytes``, all members of one top-level archive (nested ones included) up to
``max_expansion_bytes``, at most ``max_members`` per archive, ``max_depth`` levels of nesting,
and a member that inflates more than ``max_ratio`` times its compressed size is stopped as a
suspected zip bomb. Header sizes are never trusted: the bytes actually read are counted.

Directory symlinks are not followed and each directory is entered once (by device and inode),
so symlink and bind-mount loops end.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Union

ARCHIVE_SEP = "!/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WalkLimits:
    max_depth: int = 4  # archives inside archives
    max_members: int = 100_000  # members of one archive
    max_member_bytes: int = 200 * 1024 * 1024  # one member, read into memory
    max_expansion_bytes: int = 8 * 1024**3  # every member of one top-level archive together
    max_ratio: float = 250.0  # inflated / compressed size of one ZIP member (bomb guard)
    ratio_min_bytes: int = 8 * 1024 * 1024  # the ratio applies to members larger than this
    max_archive_bytes: int = 64 * 1024**3  # an archive file this large is hashed but not opened


@dataclass
class WorkItem:
    """One file or archive member for a worker."""

    path: str  # identity and display path: absolute file path or ``archive!/member``
    kind: str  # "file" | "member"
    size: int
    mtime_ns: int | None
    parent: str | None = None  # the archive holding a member
    fs_path: str | None = None  # files: where the worker reads it
    data: bytes | None = field(default=None, repr=False)  # members: the bytes
    model_format: str | None = None  # a generator model file (hashed in the scan's model lane)


@dataclass
class WalkRecord:
    """Something recorded by the walker itself (no worker)."""

    path: str
    kind: str  # "archive" | "symlink" | "special" | "file" | "member" | "directory"
    status: str  # "ok" | "error" | "skipped"
    size: int | None = None
    mtime_ns: int | None = None
    parent: str | None = None
    error: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    format: str | None = None  # archives: zip, tar, tar.gz, ...
    members: int | None = None
    note: str | None = None


Walked = Union[WorkItem, WalkRecord]
#: ``is_done(path, size, mtime_ns, sha256)`` -> how many files a previous run finished under this
#: path (1 for a file, the member count for an archive; 0: scan it).
DoneCheck = Callable[[str, int, "int | None", "str | None"], int]


class _Budget:
    """Bytes left to expand under one top-level archive."""

    def __init__(self, limit: int):
        self.left = limit


class _LimitExceeded(Exception):
    pass


class _TarBomb(Exception):
    """A compressed tar whose next member would inflate past the archive's expansion budget."""

    def __init__(self, name: str, size: int, message: str):
        super().__init__(message)
        self.name, self.size = name, size


#: Tar formats whose member data is decompressed even to be skipped (tarfile reads through it).
_COMPRESSED_TARS = ("tar.gz", "tar.bz2", "tar.xz")


def _never_done(path: str, size: int, mtime_ns: int | None, sha256: str | None) -> int:
    return 0


def archive_format(head: bytes) -> str | None:
    """``zip``, ``tar`` or a compressed tar candidate (``gz``/``bz2``/``xz``) from the first bytes."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


def _sniff_model(path: str, head: bytes, size: int) -> str | None:
    from consentry.scan.genai.models import sniff_model_file

    return sniff_model_file(path, head, size)


def digests_of_stream(read: Callable[[int], bytes]) -> tuple[str, str, str, int]:
    md5, sha1, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    n = 0
    while chunk := read(_CHUNK):
        md5.update(chunk)
        sha1.update(chunk)
        sha256.update(chunk)
        n += len(chunk)
    return md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest(), n


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]


class Walker:
    def __init__(self, limits: WalkLimits | None = None, is_done: DoneCheck | None = None,
                 verify_skipped: bool = False):
        self.limits = limits or WalkLimits()
        self.is_done = is_done or _never_done
        self.verify_skipped = verify_skipped
        self.skipped = 0  # files and archive members finished by an earlier run
        self.skipped_top = 0  # of which top-level files and archives (progress units)

    # ----------------------------------------------------------------- files
    def walk(self, paths: Iterable[str | os.PathLike]) -> Iterator[Walked]:
        seen_dirs: set[tuple[int, int]] = set()
        for raw in paths:
            top = os.path.abspath(os.fspath(raw))
            try:
                st = os.stat(top)  # an input named on the command line is followed
            except OSError as exc:
                yield WalkRecord(top, "file", "error", error=f"cannot open input: {_err(exc)}")
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(top, seen_dirs)
            else:
                yield from self._entry(top, st)

    def _walk_dir(self, top: str, seen_dirs: set[tuple[int, int]]) -> Iterator[Walked]:
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                st = os.stat(d)
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    yield WalkRecord(d, "directory", "skipped", note="directory already walked (loop)")
                    continue
                seen_dirs.add(key)
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                yield WalkRecord(d, "directory", "error", error=f"cannot list directory: {_err(exc)}")
                continue
            subdirs = []
            for e in entries:
                path = os.path.join(d, e.name)
                try:
                    lst = e.stat(follow_symlinks=False)
                except OSError as exc:
                    yield WalkRecord(path, "file", "error", error=f"cannot stat: {_err(exc)}")
                    continue
                if stat.S_ISDIR(lst.st_mode):
                    subdirs.append(path)
                else:
                    yield from self._entry(path, lst)
            stack.extend(reversed(subdirs))  # depth first, in name order

    def _entry(self, path: str, st: os.stat_result) -> Iterator[Walked]:
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink(path)[:500]
            except OSError:
                target = "?"
            yield WalkRecord(path, "symlink", "skipped", size=None, mtime_ns=st.st_mtime_ns,
                             note=f"symbolic link to {target!r} (not followed)")
            return
        if not stat.S_ISREG(mode):
            yield WalkRecord(path, "special", "skipped", mtime_ns=st.st_mtime_ns,
                             note="not a regular file (device, FIFO or socket)")
            return
        size, mtime = st.st_size, st.st_mtime_ns
        sha = self._sha256_file(path) if self.verify_skipped else None
        done = self.is_done(path, size, mtime, sha)
        if done:
            self.skipped += done
            self.skipped_top += 1
            return
        try:
            with open(path, "rb") as fh:
                head = fh.read(512)
        except OSError as exc:
            yield WalkRecord(path, "file", "error", size=size, mtime_ns=mtime, error=f"cannot read file: {_err(exc)}")
            return
        model = _sniff_model(path, head, size)
        if model is not None:  # before archives: a PyTorch checkpoint is a ZIP, never opened as one
            yield WorkItem(path, "file", size, mtime, fs_path=path, model_format=model)
            return
        fmt = archive_format(head)
        if fmt is not None and size <= self.limits.max_archive_bytes:
            opened = self._open_archive_file(path, fmt)
            if opened is not None:
                yield from self._archive(path, size, mtime, None, opened, depth=1,
                                         budget=_Budget(self.limits.max_expansion_bytes),
                                         source=("file", path))
                return
        yield WorkItem(path, "file", size, mtime, fs_path=path)

    def _sha256_file(self, path: str) -> str | None:
        try:
            with open(path, "rb") as fh:
                return digests_of_stream(fh.read)[2]
        except OSError:
            return None

    # -------------------------------------------------------------- archives
    def _open_archive_file(self, path: str, fmt: str):
        try:
            if fmt == "zip":
                return "zip", zipfile.ZipFile(path)
            tf = tarfile.open(path, mode="r:*")
            return ("tar" if fmt == "tar" else f"tar.{fmt}"), tf
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError):
            return None  # not an archive after all (a plain .gz, a broken zip): hashed as a file

    def _open_archive_bytes(self, data: bytes, fmt: str):
        try:
            if fmt == "zip":
                return "zip", zipfile.ZipFile(io.BytesIO(data))
            return ("tar" if fmt == "tar" else f"tar.{fmt}"), tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError):
            return None

    def _archive(self, path: str, size: int, mtime: int | None, parent: str | None, opened,
                 depth: int, budget: _Budget, source) -> Iterator[Walked]:
        fmt, archive = opened
        rec = WalkRecord(path, "archive", "ok", size=size, mtime_ns=mtime, parent=parent, format=fmt)
        try:
            if source[0] == "file":
                with open(source[1], "rb") as fh:
                    rec.md5, rec.sha1, rec.sha256, _ = digests_of_stream(fh.read)
            else:
                rec.md5, rec.sha1, rec.sha256, _ = digests_of_stream(io.BytesIO(source[1]).read)
        except OSError as exc:
            rec.status, rec.error = "error", f"cannot read archive: {_err(exc)}"
        members = 0
        errors: list[str] = []
        try:
            # compressed tars: every member's data is decompressed (read or skipped), so its
            # header size is charged to the budget before the member is reached, never after
            charged = fmt in _COMPRESSED_TARS
            it = (self._zip_members(archive, path) if fmt == "zip"
                  else self._tar_members(archive, path, budget if charged else None))
            for name, msize, mmtime, opener, compressed in it:
                members += 1
                if members > self.limits.max_members:
                    errors.append(f"more than {self.limits.max_members} members: the rest were not scanned")
                    break
                mpath = f"{path}{ARCHIVE_SEP}{name}"
                if msize > self.limits.max_member_bytes:
                    yield WalkRecord(mpath, "member", "error", size=msize, mtime_ns=mmtime, parent=path,
                                     error=f"member is {msize} bytes, over the limit of "
                                           f"{self.limits.max_member_bytes}")
                    continue
                try:
                    # a charged tar member is bounded by the member limit alone (already counted)
                    data = self._read_member(opener, compressed,
                                             _Budget(self.limits.max_member_bytes + 1) if charged else budget)
                except _LimitExceeded as exc:
                    yield WalkRecord(mpath, "member", "error", size=msize, mtime_ns=mmtime, parent=path,
                                     error=str(exc))
                    if budget.left <= 0:
                        errors.append("expansion limit reached: the rest were not scanned")
                        break
                    continue
                except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, RuntimeError,
                        ValueError, NotImplementedError) as exc:
                    # zlib.error is a subclass of Exception only; caught below as corrupt data
                    yield WalkRecord(mpath, "member", "error", size=msize, mtime_ns=mmtime, parent=path,
                                     error=f"cannot read member: {_err(exc)}")
                    continue
                except Exception as exc:  # noqa: BLE001 - zlib.error, lzma.LZMAError, ...
                    yield WalkRecord(mpath, "member", "error", size=msize, mtime_ns=mmtime, parent=path,
                                     error=f"cannot read member: {_err(exc)}")
                    continue
                sub = archive_format(data[:512])
                if sub is not None:
                    if depth >= self.limits.max_depth:
                        yield WalkRecord(mpath, "archive", "error", size=len(data), mtime_ns=mmtime,
                                         parent=path, error=f"archive nested deeper than {self.limits.max_depth} "
                                                            "levels: not opened")
                        continue
                    nested = self._open_archive_bytes(data, sub)
                    if nested is not None:
                        yield from self._archive(mpath, len(data), mmtime, path, nested, depth + 1, budget,
                                                 ("bytes", data))
                        continue
                sha = hashlib.sha256(data).hexdigest()
                if self.is_done(mpath, len(data), mmtime, sha):
                    self.skipped += 1
                    continue
                yield WorkItem(mpath, "member", len(data), mmtime, parent=path, data=data)
        except _TarBomb as exc:
            yield WalkRecord(f"{path}{ARCHIVE_SEP}{exc.name}", "member", "error", size=exc.size, parent=path,
                             error=str(exc))
            errors.append(f"{exc}: the rest were not scanned")
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError) as exc:
            errors.append(f"archive is corrupt: {_err(exc)}")
        except Exception as exc:  # noqa: BLE001 - decompressor errors while listing a tar
            errors.append(f"archive is corrupt: {_err(exc)}")
        finally:
            try:
                archive.close()
            except Exception:  # noqa: BLE001
                pass
        rec.members = members
        if errors:
            rec.status = "error"
            rec.error = "; ".join(([rec.error] if rec.error else []) + errors)
        yield rec

    @staticmethod
    def _zip_members(zf: zipfile.ZipFile, path: str):
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                import datetime as _dt

                mtime = int(_dt.datetime(*info.date_time).timestamp()) * 1_000_000_000
            except (ValueError, OverflowError):
                mtime = None
            yield info.filename, info.file_size, mtime, (lambda i=info: zf.open(i)), info.compress_size

    def _tar_members(self, tf: tarfile.TarFile, path: str, budget: _Budget | None):
        """Regular-file members; with ``budget``, each member's data (what tarfile decompresses to
        read or to skip it, files or not) is charged first, and the archive stops as a bomb when
        it would go over, before a byte of it is decompressed."""
        for m in tf:
            if budget is not None:
                cost = -(-max(m.size, 0) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                if cost > budget.left:
                    budget.left = 0
                    raise _TarBomb(m.name, m.size,
                                   f"archive expansion limit of {self.limits.max_expansion_bytes} bytes "
                                   f"reached: member of {m.size} bytes not decompressed (tar bomb?)")
                budget.left -= cost
            if not m.isfile():
                continue  # directories, links and devices inside a tar are not content
            yield m.name, m.size, int(m.mtime) * 1_000_000_000, (lambda m=m: tf.extractfile(m)), None

    def _read_member(self, opener, compressed: int | None, budget: _Budget) -> bytes:
        lim = self.limits
        cap = min(lim.max_member_bytes, budget.left)
        fh = opener()
        if fh is None:
            raise OSError("member has no data")
        buf = io.BytesIO()
        n = 0
        with fh:
            while True:
                chunk = fh.read(min(_CHUNK, cap - n + 1))
                if not chunk:
                    break
                n += len(chunk)
                if n > cap:
                    if budget.left <= lim.max_member_bytes:  # the archive's budget is what ran out
                        budget.left = 0
                        raise _LimitExceeded(f"archive expansion limit of {lim.max_expansion_bytes} bytes "
                                             "reached (zip bomb?)")
                    budget.left -= n
                    raise _LimitExceeded(f"member inflates past the limit of {lim.max_member_bytes} bytes")
                if compressed is not None and n > lim.ratio_min_bytes and n > lim.max_ratio * max(compressed, 1):
                    budget.left -= n
                    raise _LimitExceeded(f"member inflates over {lim.max_ratio:g} times its compressed size "
                                         "(zip bomb?): not scanned")
                buf.write(chunk)
        budget.left -= n
        return buf.getvalue()
