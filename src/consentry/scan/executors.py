"""Run :func:`consentry.scan.worker.scan_item` over the walk: inline, a local process pool, or Ray.

Every executor takes the walker's stream and yields, as they complete, a :class:`FileResult` for
each :class:`WorkItem` and every :class:`WalkRecord` unchanged. At most ``max_in_flight`` items
are submitted at a time, so memory stays bounded (archive members travel with their bytes).
A worker process that dies (a decoder crash, the OOM killer) costs only its file: that file is
recorded as an error and the pool is restarted.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Union

from consentry.scan.walk import Walked, WalkRecord, WorkItem
from consentry.scan.worker import FileResult, WorkerOptions, scan_item

Produced = Union[FileResult, WalkRecord]


def _crashed(item: WorkItem, why: str) -> FileResult:
    return FileResult(item.path, item.kind, item.parent, item.size, item.mtime_ns, error=why)


class Executor:
    name = "base"
    workers = 1

    def __init__(self) -> None:
        self.max_in_flight = 1

    def run(self, source: Iterable[Walked], opts: WorkerOptions) -> Iterator[Produced]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _top_up(self, it: Iterator[Walked], pending: dict[Any, WorkItem], submit) -> Iterator[Produced]:
        """Submit work items until ``max_in_flight`` are pending, passing the walk's other records
        (errors, archive notes) through; returns True once the source is exhausted."""
        while len(pending) < self.max_in_flight:
            w = next(it, None)
            if w is None:
                return True
            if isinstance(w, WorkItem):
                pending[submit(w)] = w
            else:
                yield w
        return False

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class InlineExecutor(Executor):
    """One file at a time in this process (``--workers 1``)."""

    name = "inline"

    def run(self, source: Iterable[Walked], opts: WorkerOptions) -> Iterator[Produced]:
        for w in source:
            yield scan_item(w, opts) if isinstance(w, WorkItem) else w


class LocalExecutor(Executor):
    """A pool of ``workers`` processes (spawned: the C++ hashers keep threads a fork must not copy)."""

    name = "local"

    def __init__(self, workers: int):
        super().__init__()
        self.workers = max(1, workers)
        self.max_in_flight = 4 * self.workers
        self._pool = None

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, source: Iterable[Walked], opts: WorkerOptions) -> Iterator[Produced]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = self._new_pool()
        def submit(w: WorkItem):
            try:
                return self._pool.submit(scan_item, w, opts)
            except BrokenProcessPool:
                self._restart()
                return self._pool.submit(scan_item, w, opts)

        pending: dict[Any, WorkItem] = {}
        it = iter(source)
        exhausted = False
        while True:
            if not exhausted:
                exhausted = yield from self._top_up(it, pending, submit)
            if not pending:
                return
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                item = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield _crashed(item, "the worker process died while reading this file")
                except Exception as exc:  # noqa: BLE001 - e.g. an item that could not be pickled
                    yield _crashed(item, f"worker failed ({type(exc).__name__})")
            if broken:
                # every other file in flight died with the pool: run them again on a fresh one
                retry = list(pending.values())
                pending.clear()
                self._restart()
                for item in retry:
                    pending[self._pool.submit(scan_item, item, opts)] = item

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """The same per-file function as Ray tasks, on a cluster (``address``) or a local Ray."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        super().__init__()
        import ray

        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=workers or None, **kw)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        self.workers = cpus
        self.max_in_flight = 4 * cpus
        self._remote = ray.remote(num_cpus=1, max_retries=1)(scan_item)

    def run(self, source: Iterable[Walked], opts: WorkerOptions) -> Iterator[Produced]:
        ray = self._ray
        opts_ref = ray.put(opts)
        pending: dict[Any, WorkItem] = {}
        it = iter(source)
        exhausted = False
        while True:
            if not exhausted:
                exhausted = yield from self._top_up(it, pending, lambda w: self._remote.remote(w, opts_ref))
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1, timeout=60.0)
            for ref in done:
                item = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a task or node lost
                    yield _crashed(item, f"Ray task failed ({type(exc).__name__})")

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(kind: str, workers: int, ray_address: str | None = None) -> Executor:
    if kind == "ray":
        try:
            return RayExecutor(ray_address, workers if not ray_address else None)
        except ImportError as exc:
            from consentry.errors import ConsentryError

            raise ConsentryError("the Ray executor needs the 'ray' package installed") from exc
    if kind != "local":
        from consentry.errors import ConsentryError

        raise ConsentryError(f"unknown executor {kind!r} (local or ray)")
    return InlineExecutor() if workers <= 1 else LocalExecutor(workers)


__all__ = ["Executor", "InlineExecutor", "LocalExecutor", "RayExecutor", "make_executor"]
