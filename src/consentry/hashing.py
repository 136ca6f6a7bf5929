"""Hash files: the one function behind ``consentry hash``, ``POST /v1/hash`` and scans."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from consentry.config import MediaLimits
from consentry.errors import ConsentryError, MediaTooLarge, UnsupportedMedia
from consentry.media.content import Content
from consentry.media.sniff import PHOTO, UNKNOWN, VIDEO
from consentry.signals.pdq import PDQSignal
from consentry.signals.vpdq import VPDQSignal


@dataclass
class HashResult:
    path: str
    content_type: str
    size: int | None
    sha256: str | None
    md5: str | None
    pdq: str | None
    pdq_quality: int | None
    vpdq: list[str] | None
    error: str | None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.error is None


def hash_content(content: Content, path: str = "-", *, strict: bool = False,
                 enabled: "frozenset[str] | None" = None, dense_video: bool = False) -> HashResult:
    """All signals for one content; a failure after the digests keeps what was computed.

    ``strict`` (the HTTP API): unsupported, undecodable or over-limit media raise the
    :class:`ConsentryError` instead (a 422 problem), rather than being reported in ``error``.
    ``enabled``: the signal types switched on for this instance (None: all); others are left
    out (None) and PDQ/vPDQ are then not computed at all. ``dense_video``: a video's frames as
    stored in banks (every frame less near-repeats, :func:`consentry.signals.vpdq.dense_frames`)
    rather than one a second as queried and exchanged."""
    result = HashResult(path, content.content_type, content.size, None, None, None, None, None, None)
    try:
        if content.size == 0:
            content.check_size()
        digests = content.digests()
        on = (lambda t: True) if enabled is None else enabled.__contains__  # noqa: E731
        result.md5 = digests["md5"] if on("md5") else None
        result.sha256 = digests["sha256"] if on("sha256") else None
        if content.content_type == PHOTO:
            if on("pdq"):
                sig = PDQSignal.compute(content)
                result.pdq, result.pdq_quality = sig.value, sig.quality
        elif content.content_type == VIDEO:
            if on("vpdq"):
                frames = VPDQSignal.compute_frames(content, dense=dense_video)
                result.vpdq = [str(f) for f in frames]
        else:
            raise UnsupportedMedia("unrecognised or unsupported file format")
    except ConsentryError as exc:
        if strict:
            raise
        result.error = str(exc)
    except MemoryError:
        if strict:
            raise MediaTooLarge("out of memory while decoding") from None
        result.error = "out of memory while decoding"
    return result


def stored_variants(content: Content, result: HashResult) -> list:
    """The stored-side canonical hashes of a photo added to a bank from its file (issue 21):
    the PDQ of its borderless copy, centre and corner crops and small rotations
    (:func:`consentry.signals.canonical.stored_extra_hashes`), for
    :meth:`consentry.banks.service.BankService.set_variants`. Empty for videos, unusable PDQs,
    or when ``CONSENTRY_CANONICAL_STORED=0``."""
    from consentry.signals import PDQ_MIN_QUALITY

    if (content.content_type != PHOTO or not result.pdq or (result.pdq_quality or 0) < PDQ_MIN_QUALITY
            or not getattr(content.limits, "canonical_stored", True)):
        return []
    from consentry.signals.canonical import stored_extra_hashes

    return stored_extra_hashes(content.image())


def hash_path(path: str | os.PathLike, limits: MediaLimits) -> HashResult:
    """Hash one file; never raises for bad input (the error is in ``result.error``)."""
    shown = str(path)
    try:
        content = Content.from_path(path, limits)
    except ConsentryError as exc:
        return HashResult(shown, UNKNOWN, _size(path), None, None, None, None, None, str(exc))
    return hash_content(content, shown)


def hash_path_for_bank(path: str | os.PathLike, limits: MediaLimits, *,
                       dense_video: bool = True) -> tuple[HashResult, list]:
    """One file hashed as a bank stores it (``consentry bank add``): a video's every frame less
    near-repeats (``dense_video``; else one a second, as the victim page sends them), and a
    photo's stored-side canonical hashes (:func:`stored_variants`)."""
    shown = str(path)
    try:
        content = Content.from_path(path, limits)
    except ConsentryError as exc:
        return HashResult(shown, UNKNOWN, _size(path), None, None, None, None, None, str(exc)), []
    result = hash_content(content, shown, dense_video=dense_video)
    try:
        return result, (stored_variants(content, result) if result.error is None else [])
    except ConsentryError:  # the picture hashed once; a failure now leaves the plain entry
        return result, []


def hash_many(
    paths: Iterable[str | os.PathLike], limits: MediaLimits, workers: int = 1
) -> Iterator[HashResult]:
    """Hash files in order, in ``workers`` processes when > 1 (results keep the input order)."""
    if workers <= 1:
        for p in paths:
            yield hash_path(p, limits)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    # "spawn": the C++ hashers and numba keep threads that a forked child must not inherit.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(partial(hash_path, limits=limits), paths, chunksize=4)


def hash_bytes(data: bytes, limits: MediaLimits, name: str = "-") -> HashResult:
    return hash_content(Content.from_bytes(data, limits), name)


def _size(path: str | os.PathLike) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files under the given paths, directories recursed in sorted order.

    Symlinked directories are not followed (no loops); a path that does not exist is yielded as
    is, so the caller reports it as an error line.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield p
