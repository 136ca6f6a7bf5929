"""The scan's side of AI-generation forensics: per-file inspection and the model lane.

Model files are found by the walker (:func:`consentry.scan.walk.Walker`) from their first bytes
and hashed here, in a lane of their own (:class:`ModelLane`, a thread: :mod:`hashlib` releases
the GIL), so a 7 GB checkpoint never holds up the pictures queued behind it. Other files that
are neither photos nor videos are checked for models held in archives and for generator
artefacts (:mod:`.artefacts`).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator

from consentry.scan.genai.artefacts import MAX_ARTEFACT_BYTES, detect_artefact, parse_artefact
from consentry.scan.genai.models import inspect_model_bytes, inspect_model_path, is_model_record
from consentry.scan.walk import WorkItem
from consentry.scan.worker import FileResult

_DIGESTS = ("md5", "sha1", "sha256")


def _take_model(r: FileResult, rec: dict[str, Any] | None) -> None:
    if not is_model_record(rec):
        return
    assert rec is not None
    r.md5, r.sha1, r.sha256 = (rec.pop(k, None) for k in _DIGESTS)
    r.content_type, r.format, r.model = "model", rec["format"], rec
    r.note = f"generator model file ({rec['format']}, {rec.get('kind') or 'unknown kind'}" \
             f"{', ' + rec['architecture'] if rec.get('architecture') else ''})"


def scan_model_item(item: WorkItem, parallel: bool = False) -> FileResult:
    """Inventory record and hashes of one model file on disk, streamed (``parallel``: the
    digests in threads of their own, for machines with cores to spare)."""
    t0 = time.perf_counter()
    r = FileResult(item.path, item.kind, item.parent, item.size, item.mtime_ns)
    try:
        assert item.fs_path is not None
        rec = inspect_model_path(item.fs_path, item.model_format, parallel=parallel)
        if rec is not None:
            r.size = rec.get("size", r.size)
            if is_model_record(rec):
                _take_model(r, rec)
            else:  # a pickle that is no model: keep its digests
                r.md5, r.sha1, r.sha256 = (rec.get(k) for k in _DIGESTS)
                r.note = "not a photo or video: digests only"
    except OSError as exc:
        r.error = f"cannot read file: {exc.strerror or type(exc).__name__}"
    except MemoryError:
        r.error = "out of memory while reading a model file"
    except Exception as exc:  # noqa: BLE001 - one bad model file must not stop the scan
        r.error = f"unexpected error reading a model file ({type(exc).__name__})"
    r.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return r


def inspect_other(item: WorkItem, content: Any, r: FileResult) -> None:
    """A file that is no photo or video: a model inside an archive, or a generator artefact."""
    if item.data is not None:
        rec = inspect_model_bytes(item.data)
        if rec is not None and is_model_record(rec):
            for k in _DIGESTS:
                rec.pop(k, None)  # the worker's digests are the same bytes'
            rec_digests = (r.md5, r.sha1, r.sha256)
            _take_model(r, rec)
            r.md5, r.sha1, r.sha256 = rec_digests
            return
    if r.size > MAX_ARTEFACT_BYTES:
        return
    if item.data is not None:
        data = item.data
    else:
        with open(item.fs_path, "rb") as fh:  # type: ignore[arg-type]
            head = fh.read(4096)
            if detect_artefact(item.path, head) is None:
                return
            data = head + fh.read(MAX_ARTEFACT_BYTES - len(head) + 1)
    if detect_artefact(item.path, data[:4096]) is None:
        return
    art = parse_artefact(item.path, data, item.fs_path)
    if art is not None:
        r.artefact = art
        r.note = f"generator artefact ({art.get('kind')})"


def _background() -> None:
    """Lower the lane thread's CPU priority (Linux: per thread; its hash threads inherit it), so
    the pictures' worker gets the CPU first and the models take what is left."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: the lane still runs, at normal priority


class ModelLane:
    """Model files hashed one at a time beside the scan (their own thread), results collected
    as they finish. ``divert`` passes every other walk item through unchanged."""

    def __init__(self, enabled: bool = True, workers: int = 1) -> None:
        import os

        self.enabled = enabled
        # the digests run side by side only where cores are left over after the scan's workers:
        # on a small machine the lane keeps to one core and the pictures keep the others
        self.parallel = (os.cpu_count() or 1) - max(1, workers) >= 3
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="model-lane", initializer=_background)
        self._pending: list[tuple[Future, WorkItem]] = []

    def divert(self, source: Iterable[Any]) -> Iterator[Any]:
        for w in source:
            if isinstance(w, WorkItem) and w.model_format is not None and not self.enabled:
                w.model_format = None  # --no-genai: a model file is just a file (digests only)
                yield w
            elif isinstance(w, WorkItem) and w.model_format is not None and w.data is None:
                self._pending.append((self._pool.submit(scan_model_item, w, self.parallel), w))
            else:
                yield w

    def ready(self) -> list[FileResult]:
        done, still = [], []
        for fw in self._pending:
            (done if fw[0].done() else still).append(fw)
        self._pending = still
        return [self._result(f, w) for f, w in done]

    def drain(self) -> Iterator[FileResult]:
        while self._pending:
            f, w = self._pending.pop(0)
            yield self._result(f, w)

    @staticmethod
    def _result(f: Future, w: WorkItem) -> FileResult:
        try:
            return f.result()
        except Exception as exc:  # noqa: BLE001
            return FileResult(w.path, w.kind, w.parent, w.size, w.mtime_ns,
                              error=f"worker failed ({type(exc).__name__})")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
