"""InvokeAI: ``invokeai_metadata`` (v3+ JSON), ``sd-metadata`` (v2 JSON), ``Dream`` (v1 text).

``Dream`` is a command line: ``"a lighthouse at dusk [blurry]" -s 30 -S 1234 -W 512 -H 512 -C 7.5
-A k_lms`` (``-s`` steps, ``-S`` seed, ``-A`` sampler, ``[...]`` negative prompt).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from consentry.evidence.metadata.common import Generation, as_int, clip, lookup


def parse_v3(data: Any) -> Generation | None:
    if not isinstance(data, dict):
        return None
    model = data.get("model")
    if isinstance(model, dict):
        model = lookup(model, "name", "model_name", "key")
    return Generation(
        generator="InvokeAI",
        model=clip(model) if isinstance(model, str) else None,
        prompt=_str(lookup(data, "positive_prompt")),
        negative_prompt=_str(lookup(data, "negative_prompt")),
        seed=as_int(lookup(data, "seed")),
        steps=as_int(lookup(data, "steps")),
        sampler=clip(_str(lookup(data, "scheduler", "sampler"))),
        extra={"version": clip(lookup(data, "app_version")), "generation_mode": clip(lookup(data, "generation_mode"))},
    )


def parse_v2(data: Any) -> Generation | None:
    if not isinstance(data, dict):
        return None
    image = data.get("image") if isinstance(data.get("image"), dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):  # [{"prompt": "...", "weight": 1.0}, ...]
        prompt = " ".join(p.get("prompt", "") for p in prompt[:50] if isinstance(p, dict) and isinstance(p.get("prompt"), str))
    negative = None
    if isinstance(prompt, str):
        prompt, negative = _split_negative(prompt)
    return Generation(
        generator="InvokeAI",
        model=clip(_str(data.get("model_weights")) or _str(data.get("model"))),
        prompt=prompt or None,
        negative_prompt=negative,
        seed=as_int(image.get("seed")),
        steps=as_int(image.get("steps")),
        sampler=clip(_str(image.get("sampler"))),
        extra={"version": clip(data.get("app_version"))},
    )


def parse_dream(text: str) -> Generation | None:
    text = text.strip()
    if not text:
        return None
    try:
        argv = shlex.split(text[:100_000])
    except ValueError:
        return None
    if not argv:
        return None
    prompt, negative = _split_negative(argv[0])
    opts: dict[str, str] = {}
    for flag, value in zip(argv[1:], argv[2:]):
        if flag.startswith("-"):
            opts.setdefault(flag, value)
    return Generation(
        generator="InvokeAI",
        prompt=prompt or None,
        negative_prompt=negative,
        seed=as_int(opts.get("-S")),
        steps=as_int(opts.get("-s")),
        sampler=clip(opts.get("-A")),
    )


def _split_negative(prompt: str) -> tuple[str, str | None]:
    """InvokeAI 1/2 put negative terms in square brackets inside the prompt."""
    negatives = re.findall(r"\[([^\[\]]*)\]", prompt)
    if not negatives:
        return prompt.strip(), None
    positive = re.sub(r"\s*\[[^\[\]]*\]", "", prompt).strip()
    return positive, ", ".join(n.strip() for n in negatives if n.strip()) or None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
