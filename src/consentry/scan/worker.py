"""The per-file function of a scan: bytes in, a JSON-ready :class:`FileResult` out.

Pure (no database, no shared state), so the local process pool and Ray run exactly the same
code. It never raises for bad input: whatever went wrong is in ``FileResult.error`` and the
signals computed before the failure are kept (a corrupt JPEG still has its digests).
"""

from __future__ import annotations

import base64
import copy
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from consentry.config import MediaLimits
from consentry.errors import ConsentryError
from consentry.media.content import Content
from consentry.media.sniff import PHOTO, VIDEO
from consentry.scan.allocator import tune_for_scanning
from consentry.scan.walk import WorkItem


@dataclass(frozen=True)
class WorkerOptions:
    limits: MediaLimits = field(default_factory=MediaLimits)
    evidence: bool = True  # run the AI-generation evidence analysis on photos
    thumbnails: bool = True  # keep a small JPEG of each photo for the report
    thumb_side: int = 160
    genai: bool = True  # model inventory and generator artefacts (AI-generation forensics)
    canonical: bool = False  # photos: also the PDQ of the trimmed picture / screenshot region; videos: the
    # frames without letterbox bars (matching)


@dataclass
class FileResult:
    path: str
    kind: str  # file | member
    parent: str | None
    size: int
    mtime_ns: int | None
    content_type: str = "unknown"  # photo | video | unknown
    format: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    pdq_variants: list[str] | None = None  # the 8 dihedral variants (DIHEDRAL_TRANSFORMS order)
    #: canonical query hashes (issue 21), when matching: [kind, its 8 variants, quality]
    pdq_extra: list[list[Any]] | None = None
    vpdq: list[str] | None = None  # "frame,quality,pdq,seconds" lines
    #: videos, when matching: [kind, frame lines] — the frames without letterbox bars (issue 21)
    vpdq_extra: list[list[Any]] | None = None
    assessment: dict[str, Any] | None = None  # Assessment.to_dict()
    evidence_error: str | None = None
    thumbnail: str | None = field(default=None, repr=False)  # base64 JPEG
    error: str | None = None
    note: str | None = None
    elapsed_ms: float = 0.0
    model: dict[str, Any] | None = None  # a generator model file: its inventory record
    artefact: dict[str, Any] | None = None  # a generator artefact (workflow, database, log...)
    generation: dict[str, Any] | None = None  # an image's generation parameters (from its metadata)

    @property
    def status(self) -> str:
        return "error" if self.error else "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess_evidence(content: Content, path: str, r: "FileResult | None" = None) -> tuple[dict[str, Any] | None, str | None]:
    """The evidence assessment (``Assessment.to_dict()``) of one content; (None, why) when it
    cannot run. ``assess_content`` reuses the decoded image and digests of this worker;
    ``assess_bytes`` (the public contract) is the fallback."""
    try:
        from consentry.evidence import assess
    except ImportError:
        return None, "evidence analysis is not available in this installation"
    try:
        if hasattr(assess, "assess_content"):
            hashed = None
            if r is not None and r.sha256 and r.error is None and (r.pdq or r.vpdq):
                from consentry.hashing import HashResult

                hashed = HashResult(path, content.content_type, content.size, r.sha256, r.md5, r.pdq,
                                    r.pdq_quality, r.vpdq, None)
            return assess.assess_content(content, path, hashed=hashed).to_dict(), None
        if content.data is None:
            return None, "evidence analysis skipped: file too large to read into memory"
        return assess.assess_bytes(content.data).to_dict(), None
    except ConsentryError as exc:
        return None, str(exc)
    except MemoryError:
        return None, "out of memory during evidence analysis"
    except Exception as exc:  # noqa: BLE001 - one analyser's bug must not stop a seizure scan
        return None, f"evidence analysis failed ({type(exc).__name__})"


def _thumbnail(image, side: int) -> str:
    from consentry.media.thumbnail import thumbnail_jpeg

    return base64.b64encode(thumbnail_jpeg(image, side)).decode("ascii")


#: Photos already analysed by this worker process, by SHA-256: a seized device holds the same
#: picture many times (copies, caches, backups), and every result below is a pure function of the
#: bytes, so a copy reuses them instead of decoding, fingerprinting and assessing again.
_SEEN: "OrderedDict[tuple, dict[str, Any]]" = OrderedDict()
_SEEN_MAX = 512
_REUSED = ("content_type", "format", "pdq", "pdq_quality", "pdq_variants", "pdq_extra", "thumbnail",
           "assessment", "evidence_error", "generation", "note")


def _reuse(key: tuple, r: FileResult) -> bool:
    seen = _SEEN.get(key)
    if seen is None:
        return False
    _SEEN.move_to_end(key)
    for k in _REUSED:
        setattr(r, k, copy.deepcopy(seen[k]))
    if isinstance(r.assessment, dict):
        r.assessment["path"] = r.path
    return True


def _remember(key: tuple, r: FileResult) -> None:
    # references, not copies (nothing changes a result once made); a reuse copies (_reuse)
    _SEEN[key] = {k: getattr(r, k) for k in _REUSED}
    while len(_SEEN) > _SEEN_MAX:
        _SEEN.popitem(last=False)


def canonical_extras(image, variants: list[str]) -> list[list[Any]]:
    """The canonical query hashes of a photo (:func:`consentry.signals.canonical.query_extra_hashes`)
    that differ from its plain hash: ``[kind, 8 variants, quality]`` each."""
    from consentry.signals.canonical import query_extra_hashes

    out: list[list[Any]] = []
    seen = {variants[0]}
    for h in query_extra_hashes(image):
        if h.variants and h.value not in seen:
            seen.add(h.value)
            out.append([h.kind, list(h.variants), h.quality])
    return out


def scan_item(item: WorkItem, opts: WorkerOptions) -> FileResult:
    """Hash, fingerprint and assess one file or archive member."""
    from consentry.signals.pdq import PDQSignal
    from consentry.signals.vpdq import VPDQSignal

    t0 = time.perf_counter()
    tune_for_scanning()  # once per worker process
    if item.model_format is not None:
        from consentry.scan.genai.scan import scan_model_item

        return scan_model_item(item)
    r = FileResult(item.path, item.kind, item.parent, item.size, item.mtime_ns)
    try:
        if item.data is not None:
            content = Content.from_bytes(item.data, opts.limits)
        else:
            assert item.fs_path is not None
            content = Content.from_path(item.fs_path, opts.limits)
        r.content_type, r.format = content.content_type, content.sniffed.format
        r.size = content.size
        d = content.digests(("md5", "sha1", "sha256"))  # first: even an empty or corrupt file has digests for the record
        r.md5, r.sha1, r.sha256 = d["md5"], d["sha1"], d["sha256"]
        if content.size == 0:
            content.check_size()  # "empty file"
        key = (r.sha256, opts.evidence, opts.genai, opts.thumbnails, opts.thumb_side, opts.canonical, repr(opts.limits))
        if content.content_type == PHOTO and _reuse(key, r):
            r.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
            return r
        try:
            if content.content_type == PHOTO:
                image = content.image()
                variants, quality = PDQSignal.compute_dihedral(content)
                r.pdq, r.pdq_quality, r.pdq_variants = variants[0], quality, variants
                if opts.canonical:
                    r.pdq_extra = canonical_extras(image, variants)
                if opts.thumbnails:
                    r.thumbnail = _thumbnail(image, opts.thumb_side)
            elif content.content_type == VIDEO:
                r.vpdq = [str(f) for f in VPDQSignal.compute_frames(content)]
                if opts.canonical:
                    from consentry.signals.vpdq import trimmed_frames

                    trimmed = trimmed_frames(content)
                    r.vpdq_extra = [["trimmed", [str(f) for f in trimmed]]] if trimmed else None
            else:
                r.format = None
                r.note = "not a photo or video: digests only"
                if opts.genai:
                    from consentry.scan.genai.scan import inspect_other

                    inspect_other(item, content, r)
        finally:
            # after the signals (the decoded image is reused), and also when decoding failed:
            # metadata and C2PA can still be read from a picture that does not decode
            if opts.evidence and content.content_type in (PHOTO, VIDEO):
                r.assessment, r.evidence_error = assess_evidence(content, item.path, r)
                if opts.genai and r.assessment:
                    from consentry.scan.genai.artefacts import generation_from_assessment

                    r.generation = generation_from_assessment(r.assessment)
        if content.content_type == PHOTO and r.pdq is not None:
            _remember(key, r)
    except ConsentryError as exc:
        r.error = str(exc)
    except MemoryError:
        r.error = "out of memory while decoding"
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not stop the scan
        r.error = f"unexpected error ({type(exc).__name__})"
    r.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return r
