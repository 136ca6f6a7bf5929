"""Generic software and camera tags: weak hints, never more.

An editor's name in EXIF ``Software`` or XMP ``xmp:CreatorTool`` says the file passed through
that program (``edited``, weak); a camera ``Make``/``Model`` with no editor tag and no generator
marker says it was probably saved by a camera (``camera_captured``, weak).  Both are trivially
forged or stripped.
"""

from __future__ import annotations

import re

from consentry.evidence.metadata.common import clip
from consentry.evidence.model import Evidence

EDITORS = (
    ("photoshop", "Adobe Photoshop"),
    ("lightroom", "Adobe Lightroom"),
    ("camera raw", "Adobe Camera Raw"),
    ("gimp", "GIMP"),
    ("affinity", "Affinity Photo"),
    ("pixelmator", "Pixelmator"),
    ("capture one", "Capture One"),
    ("snapseed", "Snapseed"),
    ("paint.net", "Paint.NET"),
    ("darktable", "darktable"),
    ("rawtherapee", "RawTherapee"),
    ("krita", "Krita"),
    ("photopea", "Photopea"),
    ("luminar", "Luminar"),
    ("picsart", "Picsart"),
    ("facetune", "Facetune"),
    ("canva", "Canva"),
)

#: Makes that name an AI vendor rather than a camera maker (never a camera claim).
AI_MAKES = re.compile(r"black forest labs|openai|midjourney|stability|novelai|comfyui|workflow:", re.I)


def editor_name(tag: str | None) -> str | None:
    if not tag:
        return None
    low = tag.lower()
    for needle, name in EDITORS:
        if needle in low:
            return name
    return None


def editor_evidence(tag: str, where: str) -> Evidence | None:
    name = editor_name(tag)
    if name is None:
        return None
    return Evidence(
        source="exif" if where.startswith("EXIF") else "xmp",
        claim="edited", strength="weak",
        summary=f"{where} names image-editing software ({name}): the file was saved by an editor.",
        details={"where": where, "software": clip(tag), "editor": name},
        caveats=("a software tag is easily written or removed; it does not say what was changed, "
                 "nor whether generative features of the editor were used",),
    )


def camera_evidence(make: str | None, model: str | None) -> Evidence | None:
    make, model = clip(make), clip(model)
    if not (make or model):
        return None
    if AI_MAKES.search(f"{make or ''} {model or ''}"):
        return None
    label = " ".join(x for x in (make, model) if x)
    return Evidence(
        source="exif", claim="camera_captured", strength="weak",
        summary=f"EXIF names a camera ({label}) and no editing software or generator.",
        details={"make": make, "model": model},
        caveats=("camera tags are easily copied into any file; they are not proof of a capture",),
    )
