"""``analyze_metadata``: generator and provenance markers in an image's own metadata.

Reads the containers (:mod:`.containers`), parses EXIF (:mod:`.exif`) and XMP (:mod:`.xmp`),
then asks each recogniser in turn.  Every item is parsed on its own: a malformed one becomes a
note in :attr:`Findings.notes` and the others are still read.
"""

from __future__ import annotations

import warnings
from typing import Callable, TypeVar

from PIL import Image

from consentry.config import MediaLimits, get_settings
from consentry.errors import MediaError
from consentry.evidence.metadata import comfyui, invokeai, novelai, services, webui
from consentry.evidence.metadata.common import Generation, Skip, clip, load_json
from consentry.evidence.metadata.containers import RawMetadata, extract
from consentry.evidence.metadata.exif import ExifFields, read_exif
from consentry.evidence.metadata.iptc import iptc_evidence, tc260_evidence, xmp_tc260
from consentry.evidence.metadata.software import camera_evidence, editor_evidence
from consentry.evidence.metadata.xmp import NS_XMP, XmpProps, parse_xmp
from consentry.evidence.model import Evidence, Findings
from consentry.media.sniff import sniff

T = TypeVar("T")

_MIME_FORMATS = {
    "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/png": "png", "image/webp": "webp",
    "image/tiff": "tiff", "image/heic": "heif", "image/heif": "heif", "image/avif": "avif",
    "image/gif": "gif", "image/bmp": "bmp",
}
_UNSIGNED = "unsigned metadata: anyone can write, copy or remove it"


def analyze_metadata(
    data: bytes,
    mime: str,
    image: Image.Image | None = None,
    *,
    limits: MediaLimits | None = None,
) -> Findings:
    """Evidence from EXIF, XMP, PNG text chunks and NovelAI's alpha-channel copy.

    ``image`` is an already-opened Pillow image of ``data`` when the caller has one.  The type is
    taken from the magic bytes (``mime`` only when they are not recognised).  Never raises for
    malformed input: what cannot be read is listed in ``notes``.
    """
    limits = limits or get_settings().limits
    findings = Findings()
    notes = findings.notes
    if len(data) > limits.max_bytes:
        notes.append(f"file of {len(data)} bytes is over the limit of {limits.max_bytes}; metadata not read")
        return findings
    fmt = sniff(data[:512]).format
    if fmt == "unknown":
        fmt = _MIME_FORMATS.get((mime or "").split(";")[0].strip().lower(), "unknown")
    if fmt == "unknown":
        notes.append("not a recognised image format; metadata not read")
        return findings

    if image is None and fmt not in ("jpeg", "png", "webp"):
        image = _open(data, limits, notes)
    raw = _guard(notes, "metadata containers", lambda: extract(data, fmt, image))
    if raw is None:
        return findings
    notes.extend(raw.notes)
    exif = _read_all_exif(raw, notes)
    xmp = _read_all_xmp(raw, notes)

    ev = findings.evidence
    ev.extend(_guard(notes, "XMP IPTC", lambda: iptc_evidence(xmp, notes, findings.raw)) or [])
    ev.extend(_guard(notes, "XMP TC260", lambda: xmp_tc260(xmp, notes)) or [])
    _add(ev, notes, "xmp:drawthings", "XMP", lambda: services.draw_things(xmp, notes))
    _add(ev, notes, "xmp:midjourney", "XMP", lambda: services.midjourney(xmp))
    _text_chunks(raw, ev, notes)
    _exif_generators(exif, ev, notes)
    if fmt in ("png", "webp"):
        _stealth(data, image, limits, ev, notes)
    _software_and_camera(exif, xmp, ev)

    findings.raw["metadata"] = {
        "format": fmt,
        "exif": {k: clip(v, 200) for k, v in exif.fields.items()},
        "xmp_namespaces": sorted(xmp.namespaces()),
        "text_chunks": [clip(k, 80) for _, k, _ in raw.text][:64],
    }
    return findings


# --------------------------------------------------------------------------- helpers


def _guard(notes: list[str], what: str, fn: Callable[[], T]) -> T | None:
    """Run one item's parser: :class:`Skip` and unexpected errors become notes, never raise."""
    try:
        return fn()
    except Skip as exc:
        notes.append(str(exc))
    except (RecursionError, MemoryError):
        notes.append(f"{what}: too large or too deeply nested; skipped")
    except Exception as exc:  # noqa: BLE001 - untrusted input: one bad item must not stop the rest
        notes.append(f"{what}: could not be read ({type(exc).__name__}); skipped")
    return None


def _add(ev: list[Evidence], notes: list[str], source: str, where: str,
         fn: Callable[[], Generation | None]) -> Generation | None:
    gen = _guard(notes, source, fn)
    if gen is None:
        return None
    if any(e.source == source and e.details.get("generator") == gen.generator for e in ev):
        return gen
    ev.append(Evidence(
        source=source, claim="ai_generated", strength="strong",
        summary=gen.summary(where), details=gen.details(found_in=where), caveats=(_UNSIGNED,),
    ))
    return gen


def _open(data: bytes, limits: MediaLimits, notes: list[str]) -> Image.Image | None:
    from consentry.media.image import open_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on corrupt EXIF; we note what we skip
            return open_image(data, limits)
    except MediaError as exc:
        notes.append(f"image header could not be read ({exc}); format-specific metadata not read")
    except Exception as exc:  # noqa: BLE001
        notes.append(f"image header could not be read ({type(exc).__name__})")
    return None


def _read_all_exif(raw: RawMetadata, notes: list[str]) -> ExifFields:
    out = ExifFields()
    for block in raw.exif[:4]:
        parsed = _guard(notes, "EXIF", lambda: read_exif(block))
        if parsed is not None:
            out.merge(parsed)
    return out


def _read_all_xmp(raw: RawMetadata, notes: list[str]) -> XmpProps:
    out = XmpProps()
    for packet in raw.xmp[:4]:
        parsed = _guard(notes, "XMP", lambda: parse_xmp(packet))
        if parsed is not None:
            out.merge(parsed)
    return out


# --------------------------------------------------------------------------- PNG text chunks


def _text_chunks(raw: RawMetadata, ev: list[Evidence], notes: list[str]) -> None:
    text = raw.text_dict()
    if not text:
        return
    prefix = "png" if raw.container == "png" else "text"
    where = "PNG text chunk" if prefix == "png" else "metadata text"

    if "parameters" in text:
        def parameters() -> tuple[str, Generation] | None:
            gen = webui.parse_parameters(text["parameters"], f"{where} 'parameters'")
            if gen is None:
                return None
            if gen.generator == "SwarmUI":
                return f"{prefix}:swarmui", gen
            if gen.generator == "Fooocus" or "fooocus_scheme" in text:
                gen.generator = "Fooocus"
                gen.extra["fooocus_scheme"] = clip(text.get("fooocus_scheme"))
                return f"{prefix}:fooocus", gen
            return f"{prefix}:a1111", gen

        found = _guard(notes, f"{where} 'parameters'", parameters)
        if found is not None:
            source, gen = found
            _add(ev, notes, source, f"{where} 'parameters'", lambda: gen)

    if "prompt" in text or "workflow" in text:
        _add(ev, notes, f"{prefix}:comfyui", f"{where}s 'prompt'/'workflow'",
             lambda: _comfyui(text.get("prompt"), text.get("workflow"), where, notes))

    if novelai.is_novelai(text):
        _add(ev, notes, f"{prefix}:novelai", f"{where}s (Software/Source/Comment)",
             lambda: novelai.parse_fields(text, where, notes))

    if "invokeai_metadata" in text:
        _add(ev, notes, f"{prefix}:invokeai", f"{where} 'invokeai_metadata'",
             lambda: invokeai.parse_v3(load_json(text["invokeai_metadata"], f"{where} 'invokeai_metadata'")))
    elif "sd-metadata" in text:
        _add(ev, notes, f"{prefix}:invokeai", f"{where} 'sd-metadata'",
             lambda: invokeai.parse_v2(load_json(text["sd-metadata"], f"{where} 'sd-metadata'")))
    elif "Dream" in text:
        _add(ev, notes, f"{prefix}:invokeai", f"{where} 'Dream'", lambda: invokeai.parse_dream(text["Dream"]))

    if "Description" in text and not any(e.source == "xmp:midjourney" for e in ev):
        def mj() -> Generation | None:
            gen = services.midjourney_description(text["Description"])
            if gen is not None and text.get("Author"):
                gen.extra["author"] = clip(text["Author"])
            return gen

        _add(ev, notes, f"{prefix}:midjourney", f"{where} 'Description'", mj)

    if "AIGC" in text:
        found = _guard(notes, "TC260", lambda: tc260_evidence(text["AIGC"], f"{prefix}:tc260",
                                                              f"{where} 'AIGC'", notes))
        if found is not None:
            ev.append(found)


def _comfyui(prompt: str | None, workflow: str | None, where: str, notes: list[str]) -> Generation | None:
    api = ui = None
    if prompt is not None:
        data = _guard(notes, f"{where} 'prompt'", lambda: load_json(prompt, f"ComfyUI {where} 'prompt'"))
        if comfyui.is_api_graph(data):
            api = comfyui.parse_api_graph(data)
    if workflow is not None:
        data = _guard(notes, f"{where} 'workflow'", lambda: load_json(workflow, f"ComfyUI {where} 'workflow'"))
        if comfyui.is_ui_graph(data):
            ui = comfyui.parse_ui_graph(data)
    return comfyui.merge(api, ui)


# --------------------------------------------------------------------------- EXIF


def _exif_generators(exif: ExifFields, ev: list[Evidence], notes: list[str]) -> None:
    comment = exif.get("UserComment")
    if comment:
        def user_comment() -> tuple[str, Generation] | None:
            gen = webui.parse_parameters(comment, "EXIF UserComment")
            if gen is None:
                return None
            kind = {"SwarmUI": "swarmui", "Fooocus": "fooocus"}.get(gen.generator, "a1111")
            return f"exif:{kind}", gen

        found = _guard(notes, "EXIF UserComment", user_comment)
        if found is not None:
            source, gen = found
            _add(ev, notes, source, "EXIF UserComment", lambda: gen)

    tagged: dict[str, str] = {}
    for tag in ("Model", "Make", "ImageDescription"):
        value = exif.get(tag) or ""
        head, sep, rest = value.partition(":")
        if sep and head.strip().lower() in ("prompt", "workflow"):
            tagged.setdefault(head.strip().lower(), rest)
    if tagged:
        _add(ev, notes, "exif:comfyui", "EXIF Model/Make 'prompt:'/'workflow:'",
             lambda: _comfyui(tagged.get("prompt"), tagged.get("workflow"), "EXIF", notes))

    _add(ev, notes, "exif:flux", "EXIF Software/Make/Model", lambda: services.flux(exif))


# --------------------------------------------------------------------------- NovelAI stealth


def _may_have_alpha(data: bytes) -> bool:
    """False only when the file's header shows there is no alpha channel to read: a PNG of colour
    type 0 or 2 (grey, RGB: Pillow opens these without an alpha band), a simple lossy WebP
    (``VP8 ``), an extended WebP without the alpha flag, a lossless one without ``alpha_is_used``."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[12:16] == b"IHDR":
        return data[25] not in (0, 2)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 25:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            return False
        if chunk == b"VP8X":
            return bool(data[20] & 0x10)
        if chunk == b"VP8L" and data[20] == 0x2F:
            return bool((int.from_bytes(data[21:25], "little") >> 28) & 1)
    return True


def _stealth(data: bytes, image: Image.Image | None, limits: MediaLimits,
             ev: list[Evidence], notes: list[str]) -> None:
    if image is None or not novelai.has_alpha(image):
        if not _may_have_alpha(data):
            return  # the file header says so: no second open
        image = _open(data, limits, notes)  # header only: the caller's copy may be RGB already
    if image is None or not novelai.has_alpha(image):
        return

    def read() -> Generation | None:
        found = novelai.read_stealth(image)
        if found is None:
            return None
        return novelai.parse_stealth_payload(found[0], found[1], notes)

    _add(ev, notes, "novelai:stealth", "the alpha channel's low bits (NovelAI stealth)", read)


# --------------------------------------------------------------------------- weak hints


def _software_and_camera(exif: ExifFields, xmp: XmpProps, ev: list[Evidence]) -> None:
    edited = False
    for tag, where in ((exif.get("Software"), "EXIF Software"),
                       (xmp.get(NS_XMP, "CreatorTool"), "XMP xmp:CreatorTool")):
        found = editor_evidence(tag, where) if tag else None
        if found is not None:
            ev.append(found)
            edited = True
            break
    if edited or any(e.claim == "ai_generated" for e in ev):
        return
    found = camera_evidence(exif.get("Make"), exif.get("Model"))
    if found is not None:
        ev.append(found)

