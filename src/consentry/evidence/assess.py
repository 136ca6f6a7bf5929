"""Combine the findings of every analyser into one :class:`Assessment` for one content.

The one function behind ``consentry analyze``, ``POST /v1/analyze`` and scans.  Analysers:
C2PA provenance (:mod:`.c2pa`), generator metadata (:mod:`.metadata`) and invisible watermarks
(:mod:`.watermark`).  Each runs in isolation: a failure in one becomes a note, never a crash, and
never hides what the others found.

Verdict (never overstated; absence of indicators is never "authentic"):

* the AI claims (``ai_generated``/``ai_edited``) of strength ``proof`` or ``strong`` decide:
  the strongest wins, ``ai_generated`` on a tie — unless a *proof*-level ``camera_captured`` claim
  stands against AI claims that are only ``strong``, which is ``inconclusive``;
* only ``weak`` AI claims (e.g. a C2PA AI claim whose integrity check failed) → ``inconclusive``;
* when AI claims tie in strength, a C2PA active manifest's own declaration of the asset's source
  type wins over its ingredients (a composite with AI whose ingredient is AI-generated is
  ``ai_edited``; the ingredient supports it);
* ``edited`` claims, or C2PA credentials whose *content* hash fails (the file changed after
  signing), and no AI claim → ``edited_no_ai_indicated``;
* anything else (camera-capture claims, ``computer_generated`` — IPTC ``algorithmicMedia``, made by
  a non-learned algorithm, which is not AI —, intact or invalid credentials without a claim, or
  nothing) → ``no_indicators_found``, with the item named in the summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from consentry import __version__
from consentry.config import MediaLimits
from consentry.errors import ConsentryError
from consentry.evidence.model import STRENGTH_RANK, Evidence, Findings
from consentry.hashing import HashResult, hash_content
from consentry.media.content import Content
from consentry.media.sniff import PHOTO, UNKNOWN, VIDEO

AI_CLAIMS = ("ai_generated", "ai_edited")
FIRM = ("proof", "strong")
#: C2PA manifests are read from the file bytes; larger videos are not searched for one.
MAX_C2PA_BYTES = 512 * 1024 * 1024

VERDICT_WORDS = {
    "ai_generated": "AI-generated",
    "ai_edited": "edited with AI",
    "edited_no_ai_indicated": "edited, with no indication of AI",
    "no_indicators_found": "no indicators found",
    "inconclusive": "inconclusive",
}
#: The same words as a heading or at the start of a sentence ("AI" stays upper case: never
#: ``.capitalize()``, which gives "Ai-generated").
VERDICT_LABELS = {
    "ai_generated": "AI-generated",
    "ai_edited": "Edited with AI",
    "edited_no_ai_indicated": "Edited, with no indication of AI",
    "no_indicators_found": "No indicators found",
    "inconclusive": "Inconclusive",
}


@dataclass
class Assessment:
    path: str
    content_type: str
    mime: str | None
    size: int | None
    sha256: str | None
    md5: str | None
    pdq: str | None
    pdq_quality: int | None
    verdict: str
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)
    error: str | None = None
    tool: str = f"consentry {__version__}"
    analysed_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    )

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "content_type": self.content_type,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "pdq": self.pdq,
            "pdq_quality": self.pdq_quality,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": [e.to_dict() for e in self.evidence],
            "notes": list(self.notes),
            "limitations": list(self.limitations),
            "error": self.error,
            "tool": self.tool,
            "analysed_at": self.analysed_at,
        }


def decide(evidence: list[Evidence]) -> tuple[str, str]:
    """The verdict and a one-sentence summary for a list of evidence items."""
    def declares_origin(e: Evidence) -> bool:
        return e.source == "c2pa" and e.details.get("role") == "active" and bool(e.details.get("declared_origin"))

    def best(items: list[Evidence]) -> Evidence | None:
        return max(items, key=lambda e: (STRENGTH_RANK[e.strength], declares_origin(e), e.claim == "ai_generated"),
                   default=None)

    def not_proven(e: Evidence) -> str:
        return (f"No indicator of AI generation or editing was found; {e.summary.rstrip('.')}. "
                "This does not prove the content is authentic.")

    ai = [e for e in evidence if e.claim in AI_CLAIMS]
    firm_ai = [e for e in ai if e.strength in FIRM]
    camera_proof = [e for e in evidence if e.claim == "camera_captured" and e.strength == "proof"]
    edited = [e for e in evidence if e.claim == "edited"]
    if firm_ai:
        top = best(firm_ai)
        assert top is not None
        if camera_proof and top.strength != "proof":
            return "inconclusive", (
                "Findings conflict: a trusted signature claims a camera capture, while "
                f"{_source_words(top)} indicates AI ({top.summary.rstrip('.')}).")
        verdict = top.claim
        others = len(firm_ai) - 1
        extra = f" ({others} more indicator{'s' if others != 1 else ''} agree{'s' if others == 1 else ''})" if others else ""
        return verdict, f"{VERDICT_LABELS[verdict]}: {top.summary.rstrip('.')}{extra}."
    if ai:
        top = best(ai)
        assert top is not None
        return "inconclusive", (
            f"Only weak indications of AI were found: {top.summary.rstrip('.')}"
            f"{'; ' + top.caveats[0] if top.caveats else ''}.")
    altered = [e for e in evidence if e.claim == "altered_after_signing"]
    changed = [e for e in altered if e.details.get("content_changed")]
    if changed or edited:
        top = changed[0] if changed else best(edited)
        assert top is not None
        return "edited_no_ai_indicated", f"{VERDICT_LABELS['edited_no_ai_indicated']}: {top.summary.rstrip('.')}."
    if altered:
        return "no_indicators_found", not_proven(altered[0])
    computed = [e for e in evidence if e.claim == "computer_generated"]
    if computed:
        top = best(computed)
        assert top is not None
        return "no_indicators_found", (
            f"No indicator of AI generation or editing was found; {top.summary.rstrip('.')} — computer-generated "
            "by a non-learned algorithm, which is not AI.")
    for claim in ("camera_captured", "content_credentials"):
        top = best([e for e in evidence if e.claim == claim])
        if top is not None:
            return "no_indicators_found", not_proven(top)
    return "no_indicators_found", (
        "No indicator of AI generation or editing was found. This does not prove the content is "
        "authentic: provenance data, metadata and watermarks are easily lost or removed.")


def _source_words(e: Evidence) -> str:
    kind = e.source.split(":", 1)[0]
    return {"c2pa": "a C2PA manifest", "watermark": "an invisible watermark"}.get(kind, "metadata")


def limitations_for(verdict: str, evidence: list[Evidence]) -> list[str]:
    """What the findings do not show: plain sentences for reports."""
    out = []
    if any(e.source == "c2pa" for e in evidence):
        out.append("A valid C2PA signature shows who signed the manifest and that the file has not "
                   "changed since; the claims in it are the signer's assertions.")
    if any(e.claim == "altered_after_signing" for e in evidence):
        out.append("Content Credentials that fail validation show that the file or its manifest changed after "
                   "signing, not what changed, who changed it or why.")
    if any(e.claim == "computer_generated" for e in evidence):
        out.append("'Algorithmic media' (IPTC) means made by an algorithm not trained on sampled content, such "
                   "as a gradient or a fractal; it is not a claim of AI generation.")
    if any(e.strength == "strong" for e in evidence):
        out.append("Unsigned metadata and watermarks can be added, copied or forged; they show how a "
                   "file presents itself, not who made it.")
    if verdict in ("ai_generated", "ai_edited"):
        out.append("The findings do not show who made or shared the content, or who it depicts.")
    if verdict in ("no_indicators_found", "edited_no_ai_indicated", "inconclusive"):
        out.append("Absence of indicators does not show that the content is authentic or unedited: "
                   "re-saving, screenshots and most uploads remove provenance data, metadata and "
                   "many watermarks.")
    out.append("No statistical or learned detector was used; such detectors are not proof.")
    return out


#: Below this estimated JPEG quality the watermark decoder is not run (it costs about as much as
#: the rest of the analysis, and no mark survived JPEG 90 in our measurements).
WATERMARK_MIN_JPEG_QUALITY = 85
# IJG (libjpeg) standard luminance quantisation table, in natural order (quality 50).
_IJG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def jpeg_quality(data: bytes, decoded: Any = None) -> int | None:
    """The IJG quality (1-100) a JPEG's luminance table corresponds to, estimated from the header
    only; None when it cannot be read or the table is not a scaled IJG table. ``decoded``: the
    picture as Pillow decoded it from ``data``, whose tables are then read without parsing again."""
    import io

    from PIL import Image

    tables = getattr(decoded, "quantization", None)
    if tables:
        luma = list(tables.get(0) or [])
    else:
        try:
            with Image.open(io.BytesIO(data)) as im:
                tables = getattr(im, "quantization", None) or {}
                luma = list(tables.get(0) or [])
        except Exception:  # noqa: BLE001 - a header we cannot read: just run the decoder
            return None
    if len(luma) != 64:
        return None
    # Pillow gives the table in zig-zag order; compare sums, which do not depend on the order
    scale = 100.0 * sum(luma) / sum(_IJG_LUMA)
    if scale <= 0:
        return None
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return max(1, min(100, round(quality)))


def _run(name: str, fn: Callable[[], Findings], into: Findings) -> None:
    try:
        into.extend(fn())
    except ConsentryError as exc:
        into.notes.append(f"{name}: skipped ({exc})")
    except MemoryError:
        into.notes.append(f"{name}: skipped (out of memory)")
    except Exception as exc:  # noqa: BLE001 - one analyser's bug must not hide the others' findings
        into.notes.append(f"{name}: failed ({type(exc).__name__}: {str(exc)[:200]})")


def _content_bytes(content: Content, limit: int) -> bytes | None:
    if content.data is not None:
        return content.data
    if content.path is None or content.size > limit:
        return None
    return content.path.read_bytes()


def assess_content(content: Content, path: str = "-", *, trust=None, watermarks: bool = True,
                   hashed: HashResult | None = None) -> Assessment:
    """Hash and analyse one content; never raises for bad input (see ``Assessment.error``).

    ``hashed``: the content's signals when the caller has computed them already (a scan), so
    the PDQ hash is not computed twice."""
    hashed = hashed or hash_content(content, path)
    a = Assessment(
        path=path, content_type=content.content_type, mime=content.sniffed.mime, size=content.size,
        sha256=hashed.sha256, md5=hashed.md5, pdq=hashed.pdq, pdq_quality=hashed.pdq_quality,
        verdict="no_indicators_found", summary="", error=None,
    )
    if content.content_type == UNKNOWN:
        return _assess_undecodable(content, a, hashed, trust)
    found = Findings()
    data = None
    try:
        data = _content_bytes(content, MAX_C2PA_BYTES)
    except OSError as exc:
        found.notes.append(f"cannot read file: {exc.strerror or exc}")
    if data is not None:
        from consentry.evidence.c2pa import analyze_c2pa

        _run("c2pa", lambda: analyze_c2pa(data, content.sniffed.mime, trust=trust), found)
    elif content.content_type == VIDEO:
        found.notes.append(f"c2pa: skipped (video over {MAX_C2PA_BYTES} bytes)")
    if content.content_type == PHOTO and data is not None:
        image = None
        try:
            image = content.image()
        except ConsentryError as exc:
            found.notes.append(f"image could not be decoded: {exc}")
        from consentry.evidence.metadata import analyze_metadata

        _run("metadata", lambda: analyze_metadata(data, content.sniffed.mime, None), found)
        quality = jpeg_quality(data, image) if content.sniffed.format == "jpeg" else None
        if watermarks and image is not None and quality is not None and quality < WATERMARK_MIN_JPEG_QUALITY:
            # measured (docs/evidence-watermark.md): the generators' DWT mark is gone at JPEG <= 90
            found.notes.append(f"watermark: not checked: JPEG quality is about {quality}, and the generators' "
                               "invisible watermarks do not survive re-encoding below about 90")
        elif watermarks and image is not None:
            from consentry.evidence.watermark import analyze_watermarks

            _run("watermark", lambda: analyze_watermarks(image, rgb=content.pixels()), found)
    elif content.content_type == VIDEO:
        found.notes.append("metadata and watermark analysis cover photos only; videos are checked for C2PA")
    if hashed.error:
        found.notes.append(f"hashing: {hashed.error}")
    a.evidence, a.notes, a.raw = found.evidence, found.notes, found.raw
    a.verdict, a.summary = decide(a.evidence)
    a.limitations = limitations_for(a.verdict, a.evidence)
    if hashed.error and not a.evidence:
        a.error = hashed.error
        a.verdict, a.summary = "inconclusive", f"The file could not be analysed: {hashed.error}."
    return a


#: Picture formats known by their magic bytes that this tool cannot decode: (magic, name, the MIME
#: type to give the C2PA library, or None where it cannot read the format).
UNDECODED_FORMATS: tuple[tuple[bytes, str, str | None], ...] = (
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL", "image/jxl"),
    (b"\xff\x0a", "JPEG XL (bare codestream)", "image/jxl"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", None),
    (b"\xff\x4f\xff\x51", "JPEG 2000 (bare codestream)", None),
    (b"II+\x00", "BigTIFF", "image/tiff"),
    (b"MM\x00+", "BigTIFF", "image/tiff"),
)
_NEEDS_PIXELS = "generator metadata, invisible watermarks and the PDQ hash need a decoded picture and were not checked"


def undecoded_format(head: bytes) -> tuple[str, str | None] | None:
    """(name, C2PA MIME type or None) of a picture format this tool recognises but cannot decode."""
    for magic, name, mime in UNDECODED_FORMATS:
        if head.startswith(magic):
            return name, mime
    return None


def _assess_undecodable(content: Content, a: Assessment, hashed: HashResult, trust) -> Assessment:
    """A file whose format the media layer does not decode: say which format, check C2PA where the
    C2PA library reads it, and say what was and was not checked (never a bare "inconclusive")."""
    head = b""
    data = None
    try:
        data = _content_bytes(content, MAX_C2PA_BYTES)
        head = data[:64] if data is not None else b""
    except OSError as exc:
        a.notes.append(f"cannot read file: {exc.strerror or exc}")
    known = undecoded_format(head)
    if known is None:
        a.error = hashed.error or "unrecognised or unsupported file format"
        a.verdict, a.summary = "inconclusive", (
            "The file could not be analysed: its format was not recognised, so neither Content Credentials "
            "(C2PA), metadata nor watermarks were checked.")
        return a
    name, mime = known
    a.mime = mime or a.mime
    found = Findings()
    from consentry.evidence.c2pa import _supported_mimes, analyze_c2pa

    supported = False
    if mime is not None and data is not None:
        try:
            supported = mime in _supported_mimes()
        except Exception:  # noqa: BLE001 - c2pa missing or broken: reported below as not checked
            supported = False
    if supported:
        _run("c2pa", lambda: analyze_c2pa(data, mime, trust=trust), found)
        c2pa_words = ("Content Credentials (C2PA) were checked" +
                      ("" if found.evidence or found.notes else " and none were found"))
    else:
        c2pa_words = f"the C2PA library cannot read {name} files, so Content Credentials were not checked"
        found.notes.append(f"c2pa: not checked: {name} is not a format the C2PA library supports")
    found.notes.append(f"{name}: this tool cannot decode the picture; {_NEEDS_PIXELS}")
    a.evidence, a.notes, a.raw = found.evidence, a.notes + found.notes, found.raw
    a.limitations = limitations_for("inconclusive", a.evidence)
    if a.evidence:
        a.verdict, a.summary = decide(a.evidence)
        a.summary += f" (The file is {name}, which this tool cannot decode: {_NEEDS_PIXELS}.)"
        a.limitations = limitations_for(a.verdict, a.evidence)
    else:
        a.error = f"{name} pictures cannot be decoded by this tool"
        a.verdict, a.summary = "inconclusive", (
            f"Inconclusive: the file is {name}, which this tool cannot decode; {c2pa_words}; {_NEEDS_PIXELS}.")
    return a


def assess_bytes(data: bytes, *, limits: MediaLimits | None = None, name: str = "-", trust=None) -> Assessment:
    return assess_content(Content.from_bytes(data, limits or MediaLimits()), name, trust=trust)


def assess_path(path: str | os.PathLike, *, limits: MediaLimits | None = None, trust=None) -> Assessment:
    """Assess one file; never raises for bad input (the error is in ``Assessment.error``)."""
    shown = str(path)
    try:
        content = Content.from_path(path, limits or MediaLimits())
        content.check_size()
    except ConsentryError as exc:
        return Assessment(shown, UNKNOWN, None, None, None, None, None, None, "inconclusive",
                          "The file could not be analysed.", error=str(exc))
    return assess_content(content, shown, trust=trust)
