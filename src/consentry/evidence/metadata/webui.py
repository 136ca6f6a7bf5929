"""Web UIs that write a ``parameters`` text: AUTOMATIC1111, Forge, SD.Next, Fooocus, SwarmUI.

AUTOMATIC1111's "infotext" (also written by Forge, SD.Next and Fooocus in its A1111 scheme)::

    a lighthouse at dusk, oil painting
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd_xl_base_1.0, Version: v1.9.4

Fooocus's own scheme is a JSON object (with a ``fooocus_scheme`` chunk next to it); SwarmUI's is a
JSON object under ``sui_image_params``.
"""

from __future__ import annotations

import re
from typing import Any

from consentry.evidence.metadata.common import Generation, as_int, clip, load_json, lookup

# AUTOMATIC1111's own pattern for "Key: value" pairs (values may be quoted JSON strings).
_PARAM = re.compile(r'\s*([\w ()\-/+.]+?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_STEPS_LINE = re.compile(r"(^|,\s*)Steps:\s*\d+")


def looks_like_infotext(text: str) -> bool:
    return bool(_STEPS_LINE.search(text.strip().splitlines()[-1])) if text.strip() else False


def parse_infotext(text: str) -> Generation | None:
    """Parse A1111-style infotext; ``None`` when it is not one."""
    lines = text.strip().splitlines()
    if not lines or not looks_like_infotext(text):
        return None
    params_line = lines[-1]
    body = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in body:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:"):].lstrip()
        target.append(line)
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(params_line)[:200]:
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        params.setdefault(key.strip(), value)
    version = params.get("Version", "")
    app = params.get("App", "")
    if "sd.next" in app.lower() or "sd.next" in version.lower() or "sdnext" in version.lower():
        generator = "SD.Next"
    elif version.lower().startswith("fooocus"):
        generator = "Fooocus"
    elif re.match(r"f\d+\.\d+", version):
        generator = "Stable Diffusion WebUI Forge"
    else:
        generator = "AUTOMATIC1111 Stable Diffusion WebUI"
    return Generation(
        generator=generator,
        model=params.get("Model") or params.get("Model hash"),
        prompt="\n".join(prompt_lines).strip() or None,
        negative_prompt="\n".join(negative_lines).strip() or None,
        seed=as_int(params.get("Seed")),
        steps=as_int(params.get("Steps")),
        sampler=params.get("Sampler") or None,
        extra={"version": clip(version), "model_hash": clip(params.get("Model hash")),
               "cfg_scale": clip(params.get("CFG scale")), "size": clip(params.get("Size")),
               "lora_hashes": clip(params.get("Lora hashes"), 2000)},
    )


def parse_fooocus_json(data: Any) -> Generation | None:
    """Fooocus's own metadata scheme (``parameters`` JSON)."""
    if not isinstance(data, dict):
        return None
    version = lookup(data, "Version", "version")
    if not (isinstance(version, str) and "fooocus" in version.lower()) and not lookup(data, "full_prompt"):
        return None
    return Generation(
        generator="Fooocus",
        model=clip(lookup(data, "Base Model", "base_model", "base_model_name")),
        prompt=clip(lookup(data, "Prompt", "prompt"), 10**6),
        negative_prompt=clip(lookup(data, "Negative Prompt", "negative_prompt"), 10**6),
        seed=as_int(lookup(data, "Seed", "seed")),
        steps=as_int(lookup(data, "Steps", "steps")),
        sampler=clip(lookup(data, "Sampler", "sampler")),
        extra={"version": clip(version), "performance": clip(lookup(data, "Performance", "performance"))},
    )


def parse_swarmui(data: Any) -> Generation | None:
    """SwarmUI's ``{"sui_image_params": {...}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("sui_image_params"), dict):
        return None
    p = data["sui_image_params"]
    return Generation(
        generator="SwarmUI",
        model=clip(p.get("model")),
        prompt=clip(p.get("prompt"), 10**6),
        negative_prompt=clip(p.get("negativeprompt"), 10**6),
        seed=as_int(p.get("seed")),
        steps=as_int(p.get("steps")),
        sampler=clip(p.get("sampler")),
        extra={"version": clip(p.get("swarm_version"))},
    )


def parse_parameters(text: str, what: str) -> Generation | None:
    """A ``parameters`` text (PNG chunk, EXIF UserComment): infotext, Fooocus or SwarmUI JSON.

    Raises :class:`Skip` for JSON-looking text that does not parse.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        data = load_json(stripped, what)
        return parse_swarmui(data) or parse_fooocus_json(data)
    return parse_infotext(stripped)
