"""Generators recognised from XMP and EXIF fields: Draw Things, Midjourney, FLUX.

- Draw Things (iOS/macOS) writes XMP ``xmp:CreatorTool`` = ``Draw Things``, a JSON object in
  ``exif:UserComment`` (``c`` prompt, ``uc`` negative, ``model``, ``seed``, ``steps``,
  ``sampler``...) and an infotext in ``dc:description``.
- Midjourney writes the prompt and ``Job ID: <uuid>`` in ``dc:description`` (PNG ``Description``),
  the job id in ``Iptc4xmpExt:DigImageGUID``, the user in ``Author``/``dc:creator``, and
  ``DigitalSourceType`` = trainedAlgorithmicMedia.
- Black Forest Labs' FLUX reference code writes EXIF ``Software`` = ``AI generated;txt2img;flux``
  (or ``img2img``), ``Make`` = ``Black Forest Labs``, ``Model`` = the model name and
  ``ImageDescription`` = the prompt.
"""

from __future__ import annotations

import re
from typing import Any

from consentry.evidence.metadata.common import Generation, Skip, as_int, clip, load_json
from consentry.evidence.metadata.exif import ExifFields
from consentry.evidence.metadata.webui import parse_infotext
from consentry.evidence.metadata.xmp import NS_DC, NS_EXIF, NS_IPTC_EXT, NS_XMP, XmpProps

_JOB_ID = re.compile(r"\s*Job ID:\s*([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\s*$")
_MJ_VERSION = re.compile(r"--(v|version|niji)\s+([\d.]+)")
_FLUX_SOFTWARE = re.compile(r"^\s*AI generated;\s*(txt2img|img2img)\s*;\s*flux", re.I)


def draw_things(props: XmpProps, notes: list[str]) -> Generation | None:
    tool = props.get(NS_XMP, "CreatorTool") or ""
    if "draw things" not in tool.lower():
        return None
    gen = Generation(generator="Draw Things", extra={"creator_tool": clip(tool)})
    comment = props.get(NS_EXIF, "UserComment")
    data: Any = None
    if comment and "{" in comment:
        try:
            data = load_json(comment[comment.index("{"):], "Draw Things exif:UserComment")
        except Skip as exc:
            notes.append(str(exc))
    if isinstance(data, dict):
        gen.prompt = data.get("c") if isinstance(data.get("c"), str) else None
        gen.negative_prompt = data.get("uc") if isinstance(data.get("uc"), str) else None
        gen.model = clip(data.get("model")) if isinstance(data.get("model"), str) else None
        gen.seed = as_int(data.get("seed"))
        gen.steps = as_int(data.get("steps"))
        gen.sampler = clip(data.get("sampler")) if isinstance(data.get("sampler"), str) else None
    description = props.get(NS_DC, "description")
    if description:
        info = parse_infotext(description)
        if info is not None:
            for key in ("prompt", "negative_prompt", "model", "seed", "steps", "sampler"):
                if getattr(gen, key) is None:
                    setattr(gen, key, getattr(info, key))
        elif gen.prompt is None:
            gen.prompt = description
    return gen


def midjourney_description(description: str) -> Generation | None:
    """``"<prompt> --ar 16:9 --v 6.1 Job ID: <uuid>"`` (XMP dc:description or PNG Description)."""
    m = _JOB_ID.search(description)
    if m is None:
        return None
    prompt = description[: m.start()].strip()
    version = _MJ_VERSION.search(prompt)
    return Generation(
        generator="Midjourney",
        prompt=prompt or None,
        model=(f"niji {version.group(2)}" if version.group(1) == "niji" else f"v{version.group(2)}") if version else None,
        extra={"job_id": m.group(1).lower()},
    )


def midjourney(props: XmpProps) -> Generation | None:
    tool = props.get(NS_XMP, "CreatorTool") or ""
    description = props.get(NS_DC, "description") or ""
    gen = midjourney_description(description) if description else None
    if gen is None and "midjourney" not in tool.lower():
        return None
    if gen is None:
        gen = Generation(generator="Midjourney", prompt=description or None)
    guid = props.get(NS_IPTC_EXT, "DigImageGUID")
    if guid:
        gen.extra["dig_image_guid"] = clip(guid)
    creator = props.get(NS_DC, "creator")
    if creator:
        gen.extra["author"] = clip(creator)
    if tool:
        gen.extra["creator_tool"] = clip(tool)
    return gen


def flux(exif: ExifFields) -> Generation | None:
    software = exif.get("Software") or ""
    m = _FLUX_SOFTWARE.match(software)
    if m is None:
        return None
    return Generation(
        generator="FLUX (Black Forest Labs reference code)",
        model=exif.get("Model"),
        prompt=exif.get("ImageDescription"),
        extra={"mode": m.group(1).lower(), "software": clip(software), "make": clip(exif.get("Make"))},
    )
