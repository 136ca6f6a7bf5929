"""ComfyUI: the API graph (``prompt``) and the UI graph (``workflow``).

PNG: ``prompt`` and ``workflow`` text chunks.  WebP/JPEG (SaveImageWebP and friends): EXIF
``Model`` (0x0110) = ``prompt:<json>`` and ``Make`` (0x010F) = ``workflow:<json>``.

From the API graph: the sampler node (``KSampler``/``KSamplerAdvanced``/``SamplerCustom``...)
gives seed, steps and sampler; its ``positive``/``negative`` links are followed (a few hops) to
the ``CLIPTextEncode`` text; a checkpoint/UNet loader gives the model.
"""

from __future__ import annotations

from typing import Any

from consentry.evidence.metadata.common import MAX_PROMPT_CHARS, Generation, as_int, clip

_LOADER_INPUTS = ("ckpt_name", "unet_name", "model_name")
_MAX_NODES = 5000
_MAX_HOPS = 6
#: Positive prompts reported from one sampler (area conditioning combines several); the number
#: left out is reported as ``prompts_left_out``.
MAX_PROMPTS = 8
_MAX_VISITS = 200
_MAX_COLLECT_DEPTH = 32  # combine chains: one node per extra area


def is_api_graph(data: Any) -> bool:
    return isinstance(data, dict) and any(
        isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in list(data.values())[:_MAX_NODES]
    )


def is_ui_graph(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and any(
        isinstance(n, dict) and isinstance(n.get("type"), str) for n in data["nodes"][:_MAX_NODES]
    )


def parse_api_graph(graph: dict[str, Any]) -> Generation:
    nodes = {str(k): v for k, v in list(graph.items())[:_MAX_NODES] if isinstance(v, dict)}
    gen = Generation(generator="ComfyUI")
    gen.model = _find_model(nodes)
    sampler = _find_sampler(nodes)
    texts = [t for t in (_text(n) for n in nodes.values() if _is_text_encoder(n)) if t]
    if sampler is not None:
        inputs = sampler.get("inputs") or {}
        gen.seed = as_int(inputs.get("seed", inputs.get("noise_seed")))
        gen.steps = as_int(inputs.get("steps"))
        gen.sampler = clip(inputs.get("sampler_name")) if isinstance(inputs.get("sampler_name"), str) else None
        positives = _collect_texts(nodes, inputs.get("positive"))
        gen.negative_prompt = _follow_text(nodes, inputs.get("negative"))
        guider = _follow(nodes, inputs.get("guider"))
        if not positives and guider is not None:  # SamplerCustomAdvanced -> CFGGuider/BasicGuider
            g_inputs = guider.get("inputs") or {}
            positives = _collect_texts(nodes, g_inputs.get("positive") or g_inputs.get("conditioning"))
            gen.negative_prompt = _follow_text(nodes, g_inputs.get("negative"))
        if positives:
            gen.prompt = positives[0]
        if len(positives) > 1:  # area / regional conditioning: several positive prompts, all reported
            gen.extra["prompts"] = [clip(t, MAX_PROMPT_CHARS) for t in positives[:MAX_PROMPTS]]
            gen.extra["prompt_count"] = len(positives)
            if len(positives) > MAX_PROMPTS:
                gen.extra["prompts_left_out"] = len(positives) - MAX_PROMPTS
    if gen.prompt is None and texts:
        gen.prompt = texts[0]
    loras = _find_loras(nodes.values())
    if loras:
        gen.extra["loras"] = loras
    gen.extra["node_count"] = len(nodes)
    return gen


def _find_loras(nodes) -> list[dict[str, Any]]:
    """LoRA loader nodes (``LoraLoader``, ``LoraLoaderModelOnly``...): file name and weight."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and isinstance(inputs.get("lora_name"), str) and len(out) < 50:
            weight = inputs.get("strength_model")
            out.append({"name": clip(inputs["lora_name"]),
                        "weight": weight if isinstance(weight, (int, float)) and not isinstance(weight, bool) else None})
    return out


def parse_ui_graph(workflow: dict[str, Any]) -> Generation:
    gen = Generation(generator="ComfyUI")
    nodes = [n for n in workflow["nodes"][:_MAX_NODES] if isinstance(n, dict)]
    texts = []
    for node in nodes:
        ntype = str(node.get("type", ""))
        widgets = node.get("widgets_values")
        if not isinstance(widgets, list) or not widgets:
            continue
        if ntype.startswith("LoraLoader") and isinstance(widgets[0], str) and len(gen.extra.get("loras", [])) < 50:
            gen.extra.setdefault("loras", []).append({"name": clip(widgets[0])})
        elif gen.model is None and ("CheckpointLoader" in ntype or ntype == "UNETLoader"):
            gen.model = clip(widgets[0]) if isinstance(widgets[0], str) else None
        elif ntype in ("KSampler", "KSamplerAdvanced") and gen.seed is None:
            # KSampler: [seed, control, steps, cfg, sampler, scheduler, denoise]
            # KSamplerAdvanced: [add_noise, seed, control, steps, cfg, sampler, ...]
            off = 1 if ntype == "KSamplerAdvanced" else 0
            if len(widgets) > off + 4:
                gen.seed = as_int(widgets[off])
                gen.steps = as_int(widgets[off + 2])
                gen.sampler = clip(widgets[off + 4]) if isinstance(widgets[off + 4], str) else None
        elif ntype.startswith("CLIPTextEncode") and isinstance(widgets[0], str):
            texts.append(widgets[0])
    if texts:
        gen.prompt = texts[0]
    gen.extra["node_count"] = len(nodes)
    return gen


def merge(api: Generation | None, ui: Generation | None) -> Generation | None:
    if api is None:
        return ui
    if ui is not None:
        for key in ("model", "prompt", "negative_prompt", "seed", "steps", "sampler"):
            if getattr(api, key) is None:
                setattr(api, key, getattr(ui, key))
    return api


def _find_model(nodes: dict[str, dict]) -> str | None:
    for node in nodes.values():
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, dict):
            continue
        for key in _LOADER_INPUTS:
            if isinstance(inputs.get(key), str):
                return clip(inputs[key])
    return None


def _find_sampler(nodes: dict[str, dict]) -> dict | None:
    best = None
    for node in nodes.values():
        ctype = str(node.get("class_type", ""))
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        if ctype in ("KSampler", "KSamplerAdvanced"):
            return node
        if best is None and ("Sampler" in ctype and ("seed" in inputs or "noise_seed" in inputs or "guider" in inputs)):
            best = node
    if best is not None and "noise_seed" not in (best.get("inputs") or {}):
        # SamplerCustomAdvanced takes its seed from a RandomNoise node.
        noise = _follow(nodes, (best.get("inputs") or {}).get("noise"))
        if noise is not None:
            merged = dict(best)
            merged["inputs"] = {**best["inputs"], "noise_seed": (noise.get("inputs") or {}).get("noise_seed")}
            return merged
    return best


def _is_text_encoder(node: dict) -> bool:
    return str(node.get("class_type", "")).startswith("CLIPTextEncode")


def _text(node: dict) -> str | None:
    inputs = node.get("inputs") or {}
    if not isinstance(inputs, dict):
        return None
    for key in ("text", "text_g", "clip_l", "t5xxl"):
        if isinstance(inputs.get(key), str):
            return inputs[key]
    return None


def _follow(nodes: dict[str, dict], link: Any) -> dict | None:
    if isinstance(link, list) and link and isinstance(link[0], (str, int)):
        return nodes.get(str(link[0]))
    return None


def _follow_text(nodes: dict[str, dict], link: Any) -> str | None:
    """Follow conditioning links back to a text encoder (through a few pass-through nodes)."""
    for _ in range(_MAX_HOPS):
        node = _follow(nodes, link)
        if node is None:
            return None
        if _is_text_encoder(node):
            text = _text(node)
            if text is not None:
                return text
            inputs = node.get("inputs") or {}
            return _follow_primitive(nodes, inputs.get("text"))
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, dict):
            return None
        link = inputs.get("conditioning") or inputs.get("conditioning_1") or inputs.get("positive")
    return None


def _collect_texts(nodes: dict[str, dict], link: Any) -> list[str]:
    """Every prompt text behind a conditioning link, in graph order: combine/concat/area nodes
    (``ConditioningCombine``, ``ConditioningSetArea``, ``ConditioningConcat``…) are followed
    through all their conditioning inputs; bounded in depth and node visits."""
    texts: list[str] = []
    seen: set[str] = set()
    visits = [0]

    def walk(lnk: Any, depth: int) -> None:
        if depth > _MAX_COLLECT_DEPTH or visits[0] >= _MAX_VISITS:
            return
        if not (isinstance(lnk, list) and lnk and isinstance(lnk[0], (str, int))):
            return
        key = str(lnk[0])
        node = nodes.get(key)
        if node is None or key in seen:
            return
        seen.add(key)
        visits[0] += 1
        inputs = node.get("inputs") or {}
        if _is_text_encoder(node):
            text = _text(node)
            if text is None and isinstance(inputs, dict):
                text = _follow_primitive(nodes, inputs.get("text"))
            if text is not None and text not in texts:
                texts.append(text)
            return
        if not isinstance(inputs, dict):
            return
        for name, value in list(inputs.items())[:50]:
            if isinstance(name, str) and ("conditioning" in name or name == "positive"):
                walk(value, depth + 1)

    walk(link, 0)
    return texts


def _follow_primitive(nodes: dict[str, dict], link: Any) -> str | None:
    node = _follow(nodes, link)
    if node is None:
        return None
    inputs = node.get("inputs") or {}
    for value in (inputs.values() if isinstance(inputs, dict) else ()):
        if isinstance(value, str):
            return value
    return None
