"""Generator artefacts: the files image generators keep next to their pictures.

Recognised (by name and structure, bounded, read-only):

=====================  ==========================================================================
``comfyui-workflow``   a ComfyUI UI graph (``nodes``) or API graph (``class_type`` nodes) saved as JSON
``comfyui-history``    ComfyUI's ``/history`` JSON: every queued prompt, its graph, outputs and times
``a1111-params``       AUTOMATIC1111 / Forge ``params.txt`` (the last generation's infotext)
``a1111-styles``       ``styles.csv`` (saved prompt styles)
``a1111-ui-config``    ``ui-config.json`` (default prompts, seeds and settings of the UI)
``webui-config``       ``config.json`` of AUTOMATIC1111, Forge or SD.Next (selected checkpoint…)
``invokeai-db``        InvokeAI's SQLite database: ``images`` (name, times, generation metadata)
                       and ``models`` / ``model_config`` (installed models and their paths)
``fooocus-log``        Fooocus ``log.html`` (one block of parameters per image)
``diffusers-model``    a diffusers pipeline folder's ``model_index.json``
=====================  ==========================================================================

Every generation found becomes a plain dict (see :func:`gen_record`) with its ``source``;
the same shape is built for images from their metadata, so links and sessions treat both alike.
"""

from __future__ import annotations

import csv
import html.parser
import io
import json
import os
import re
import sqlite3
import tempfile
from typing import Any

from consentry.evidence.metadata import comfyui, invokeai, webui
from consentry.evidence.metadata.common import MAX_PROMPT_CHARS, Generation, as_int, clip

#: artefact files read whole (larger ones are hashed only)
MAX_ARTEFACT_BYTES = 64 * 1024 * 1024
#: generation records kept per artefact
MAX_GENERATIONS = 20_000
_MAX_JSON = 32 * 1024 * 1024
_LORA_TAG = re.compile(r"<lora:([^:>]{1,200})(?::([-\d.]+))?[^>]*>", re.I)
_SQLITE_MAGIC = b"SQLite format 3\x00"

# --------------------------------------------------------------------------- records


def gen_record(gen: Generation | None = None, *, source: str, **extra: Any) -> dict[str, Any]:
    """One generation as a JSON-ready dict: generator, model, model_hash, loras, prompt,
    negative_prompt, seed, steps, sampler, cfg_scale, size, time, image, source."""
    out: dict[str, Any] = {"source": source}
    if gen is not None:
        out.update({"generator": gen.generator, "model": gen.model, "prompt": clip(gen.prompt, MAX_PROMPT_CHARS),
                    "negative_prompt": clip(gen.negative_prompt, MAX_PROMPT_CHARS), "seed": gen.seed,
                    "steps": gen.steps, "sampler": gen.sampler})
        for k in ("model_hash", "cfg_scale", "size", "version"):
            if gen.extra.get(k) is not None:
                out[k] = gen.extra[k]
        loras = list(gen.extra.get("loras") or [])
        loras += loras_from_infotext(gen.prompt, gen.extra.get("lora_hashes"))
        if loras:
            out["loras"] = merge_loras(loras)
    for k, v in extra.items():
        if v is not None:
            out[k] = v
    return {k: v for k, v in out.items() if v is not None}


def loras_from_infotext(prompt: str | None, lora_hashes: str | None) -> list[dict[str, Any]]:
    """``<lora:name:weight>`` tags of an A1111 prompt and its ``Lora hashes: "name: hash, …"``."""
    out: list[dict[str, Any]] = []
    for m in _LORA_TAG.finditer(prompt or ""):
        out.append({"name": m.group(1).strip(), "weight": m.group(2)})
    for part in (lora_hashes or "").strip('"').split(",")[:100]:
        name, sep, h = part.rpartition(":")
        if sep and re.fullmatch(r"[0-9a-fA-F]{8,64}", h.strip()):
            out.append({"name": name.strip(), "hash": h.strip().lower()})
    return out


def merge_loras(loras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[str, Any]] = {}
    for lo in loras[:200]:
        name = str(lo.get("name") or "")
        key = name_stem(name) or str(lo.get("hash"))
        cur = by.setdefault(key, {})
        for k, v in lo.items():
            if v is not None and k not in cur:
                cur[k] = v
    return list(by.values())


def name_stem(name: str | None) -> str:
    """``models/Lora/Lighthouse_v2.safetensors`` -> ``lighthouse_v2`` (how names are compared)."""
    if not name:
        return ""
    base = re.split(r"[\\/]", str(name))[-1].strip().lower()
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft|onnx)$", "", base)


def generation_from_assessment(assessment: dict[str, Any] | None) -> dict[str, Any] | None:
    """The generation record of an image, from the generator evidence of its assessment."""
    if not isinstance(assessment, dict):
        return None
    for e in assessment.get("evidence") or []:
        d = e.get("details") if isinstance(e, dict) else None
        if not (isinstance(d, dict) and d.get("generator") and e.get("claim") == "ai_generated"):
            continue
        gen = Generation(generator=str(d["generator"]), model=d.get("model"), prompt=d.get("prompt"),
                         negative_prompt=d.get("negative_prompt"), seed=as_int(d.get("seed")),
                         steps=as_int(d.get("steps")), sampler=d.get("sampler"),
                         extra={k: d.get(k) for k in ("model_hash", "cfg_scale", "size", "version", "loras",
                                                      "lora_hashes")})
        return gen_record(gen, source=f"image metadata ({e.get('source')})")
    return None


# --------------------------------------------------------------------------- recognising
def detect_artefact(name: str, head: bytes) -> str | None:
    """A candidate artefact kind from the base name and first bytes (parsing confirms it)."""
    base = os.path.basename(name).lower()
    text_head = head.lstrip()[:1]
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if base == "params.txt":
        return "a1111-params"
    if base == "styles.csv" or (base.endswith(".csv") and head.lower().startswith(b"name,prompt")):
        return "a1111-styles"
    if base == "log.html" or (base.endswith(".html") and b"fooocus" in head.lower()):
        return "fooocus-log"
    if base.endswith(".json") and text_head in (b"{", b"["):
        return "json"
    return None


def parse_artefact(name: str, data: bytes, fs_path: str | None = None) -> dict[str, Any] | None:
    """The artefact record of one file, or ``None`` when it is not a generator artefact.
    Never raises for bad input: problems become ``notes``."""
    kind = detect_artefact(name, data[:4096])
    if kind is None:
        return None
    try:
        if kind == "sqlite":
            return _invokeai_db(data, fs_path)
        text = data.decode("utf-8", "replace")
        if kind == "a1111-params":
            gen = webui.parse_infotext(text)
            return _rec("a1111-params", gen.generator if gen else "AUTOMATIC1111 Stable Diffusion WebUI",
                        [gen_record(gen, source="params.txt")] if gen else [])
        if kind == "a1111-styles":
            return _styles(text)
        if kind == "fooocus-log":
            return _fooocus_log(text)
        return _json_artefact(os.path.basename(name).lower(), data)
    except (RecursionError, MemoryError):
        return {"kind": kind, "notes": ["too large or too deeply nested to read"]}
    except Exception as exc:  # noqa: BLE001 - one bad artefact must not stop a seizure scan
        return {"kind": kind, "notes": [f"could not be read ({type(exc).__name__}: {str(exc)[:120]})"]}


def _rec(kind: str, generator: str | None, generations: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    out = {"kind": kind, "generator": generator, "generations": generations[:MAX_GENERATIONS]}
    if len(generations) > MAX_GENERATIONS:
        out["generations_left_out"] = len(generations) - MAX_GENERATIONS
    out.update({k: v for k, v in more.items() if v not in (None, [], {})})
    return out


# --------------------------------------------------------------------------- JSON files
def _json_artefact(base: str, data: bytes) -> dict[str, Any] | None:
    if len(data) > _MAX_JSON:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if base == "model_index.json" and isinstance(doc, dict) and "_class_name" in doc:
        cls = str(doc.get("_class_name"))
        arch = next((a for k, a in (("Flux", "FLUX"), ("StableDiffusion3", "SD3"), ("StableDiffusionXL", "SDXL"),
                                    ("StableDiffusion", "SD 1.x/2.x")) if k in cls), None)
        return {"kind": "diffusers-model", "generator": "diffusers", "pipeline": clip(cls),
                "architecture": arch, "diffusers_version": clip(doc.get("_diffusers_version")),
                "components": sorted(k for k in doc if not k.startswith("_"))[:50]}
    if base == "ui-config.json" and isinstance(doc, dict):
        return _ui_config(doc)
    if isinstance(doc, dict) and any(k in doc for k in ("sd_model_checkpoint", "sd_checkpoint_hash")):
        return _webui_config(doc)
    if comfyui.is_ui_graph(doc):
        return _rec("comfyui-workflow", "ComfyUI",
                    [gen_record(comfyui.parse_ui_graph(doc), source="workflow (UI graph)")])
    if comfyui.is_api_graph(doc):
        return _rec("comfyui-workflow", "ComfyUI",
                    [gen_record(comfyui.parse_api_graph(doc), source="workflow (API graph)")])
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) and "prompt" in v for v in list(doc.values())[:50]):
        return _comfy_history(doc)
    return None


def _comfy_history(doc: dict[str, Any]) -> dict[str, Any] | None:
    gens = []
    for prompt_id, entry in list(doc.items())[:MAX_GENERATIONS]:
        p = entry.get("prompt")
        graph = p[2] if isinstance(p, list) and len(p) > 2 else None
        if not comfyui.is_api_graph(graph):
            continue
        gen = comfyui.parse_api_graph(graph)
        images = []
        for out in (entry.get("outputs") or {}).values() if isinstance(entry.get("outputs"), dict) else ():
            for im in (out.get("images") or [])[:100] if isinstance(out, dict) else ():
                if isinstance(im, dict) and isinstance(im.get("filename"), str):
                    images.append(clip(im["filename"]))
        when = None
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        for msg in (status.get("messages") or [])[:50]:
            if isinstance(msg, list) and len(msg) == 2 and isinstance(msg[1], dict):
                ts = msg[1].get("timestamp")
                if msg[0] == "execution_start" and isinstance(ts, (int, float)):
                    when = _iso(ts / 1000.0)
        gens.append(gen_record(gen, source=f"history prompt {clip(prompt_id, 80)}", time=when,
                               images=images or None, number=as_int(p[0]) if isinstance(p, list) else None))
    if not gens:
        return None
    return _rec("comfyui-history", "ComfyUI", gens)


def _ui_config(doc: dict[str, Any]) -> dict[str, Any]:
    settings = {}
    gens = []
    for tab in ("txt2img", "img2img"):
        prompt = doc.get(f"{tab}/Prompt/value")
        neg = doc.get(f"{tab}/Negative prompt/value")
        if isinstance(prompt, str) and prompt.strip():
            gens.append(gen_record(Generation("AUTOMATIC1111 Stable Diffusion WebUI", prompt=prompt, negative_prompt=neg
                                              if isinstance(neg, str) else None,
                                              seed=as_int(doc.get(f"{tab}/Seed/value")),
                                              steps=as_int(doc.get(f"{tab}/Sampling steps/value"))),
                                   source=f"ui-config.json {tab} defaults"))
    for k, v in list(doc.items())[:5000]:
        if isinstance(k, str) and k.endswith("/value") and isinstance(v, (str, int, float, bool)) and "rompt" not in k:
            if len(settings) < 200:
                settings[k] = clip(v) if isinstance(v, str) else v
    return _rec("a1111-ui-config", "AUTOMATIC1111 Stable Diffusion WebUI", gens, settings=settings)


def _webui_config(doc: dict[str, Any]) -> dict[str, Any]:
    keys = list(doc)[:5000]
    if any(str(k).startswith(("diffusers_", "sd_backend")) for k in keys):
        generator = "SD.Next"
    elif any(str(k).startswith("forge_") for k in keys):
        generator = "Stable Diffusion WebUI Forge"
    else:
        generator = "AUTOMATIC1111 Stable Diffusion WebUI"
    wanted = ("sd_model_checkpoint", "sd_checkpoint_hash", "sd_vae", "CLIP_stop_at_last_layers", "outdir_samples",
              "outdir_txt2img_samples", "outdir_img2img_samples", "samples_filename_pattern", "forge_preset",
              "sd_backend", "diffusers_pipeline")
    settings = {k: clip(doc[k]) if isinstance(doc[k], str) else doc[k] for k in wanted
                if k in doc and isinstance(doc[k], (str, int, float, bool))}
    models = []
    if isinstance(doc.get("sd_model_checkpoint"), str):
        m = re.match(r"(.*?)\s*\[([0-9a-fA-F]{8,64})\]\s*$", doc["sd_model_checkpoint"])
        models.append({"name": clip(m.group(1) if m else doc["sd_model_checkpoint"]),
                       "hash": (m.group(2).lower() if m else None) or clip(doc.get("sd_checkpoint_hash")),
                       "role": "selected checkpoint"})
    return _rec("webui-config", generator, [], settings=settings, models=models)


# --------------------------------------------------------------------------- CSV / HTML
def _styles(text: str) -> dict[str, Any] | None:
    reader = csv.DictReader(io.StringIO(text[:MAX_ARTEFACT_BYTES]))
    if not reader.fieldnames or "prompt" not in [f.strip().lower() for f in reader.fieldnames]:
        return None
    styles = []
    for row in reader:
        if len(styles) >= 5000:
            break
        row = {(k or "").strip().lower(): v for k, v in row.items()}
        styles.append({"name": clip(row.get("name")), "prompt": clip(row.get("prompt"), MAX_PROMPT_CHARS),
                       "negative_prompt": clip(row.get("negative_prompt"), MAX_PROMPT_CHARS)})
    return _rec("a1111-styles", "AUTOMATIC1111 Stable Diffusion WebUI", [], styles=styles)


class _FooocusLog(html.parser.HTMLParser):
    """Fooocus ``log.html``: ``<div id="<image>" class="image-container">`` blocks holding a
    table of ``<td class="label">`` / ``<td class="value">`` rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[dict[str, str]] = []
        self._cell: str | None = None
        self._label: str | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and "image-container" in (a.get("class") or "") and len(self.blocks) < MAX_GENERATIONS:
            self.blocks.append({"image": a.get("id") or ""})
        elif tag == "td" and a.get("class") in ("label", "key", "value") and self.blocks:
            self._cell, self._buf = a.get("class"), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell and self.blocks:
            text = "".join(self._buf).strip()
            if self._cell in ("label", "key"):
                self._label = text
            elif self._label:
                self.blocks[-1].setdefault(self._label, text[:MAX_PROMPT_CHARS])
                self._label = None
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell and sum(map(len, self._buf)) < MAX_PROMPT_CHARS:
            self._buf.append(data)


def _fooocus_log(text: str) -> dict[str, Any] | None:
    p = _FooocusLog()
    p.feed(text[:MAX_ARTEFACT_BYTES])
    gens = []
    for b in p.blocks:
        low = {k.lower(): v for k, v in b.items()}
        size = low.get("resolution")
        gen = Generation("Fooocus", model=low.get("base model"), prompt=low.get("prompt"),
                         negative_prompt=low.get("negative prompt"), seed=as_int(low.get("seed")),
                         steps=as_int(low.get("steps")), sampler=low.get("sampler"),
                         extra={"version": low.get("version"), "cfg_scale": low.get("guidance scale"), "size": size})
        loras = [{"name": v.split(":")[0].strip(), "weight": v.rsplit(":", 1)[-1].strip() if ":" in v else None}
                 for k, v in low.items() if k.startswith("lora") and v]
        gen.extra["loras"] = loras or None
        gens.append(gen_record(gen, source="log.html", image=clip(b.get("image"))))
    if not gens:
        return None
    return _rec("fooocus-log", "Fooocus", gens)


# --------------------------------------------------------------------------- InvokeAI
def _invokeai_db(data: bytes, fs_path: str | None) -> dict[str, Any] | None:
    """Read InvokeAI's ``invokeai.db`` without changing a byte of it: a file on disk is opened
    ``immutable`` read-only; an archive member is loaded into memory."""
    if fs_path is not None:
        uri = "file:" + fs_path.replace("?", "%3f").replace("#", "%23") + "?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True)
    else:
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(data)
        except (AttributeError, sqlite3.DatabaseError):  # no deserialize: a private temporary copy
            conn.close()
            tmp = tempfile.NamedTemporaryFile(suffix=".db", delete=False)
            try:
                tmp.write(data)
                tmp.close()
                return _invokeai_db(data, tmp.name)
            finally:
                os.unlink(tmp.name)
    try:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "images" not in tables:
            return None
        cols = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
        if not {"image_name", "metadata"} <= cols:
            return None
        gens = []
        for row in conn.execute("SELECT * FROM images ORDER BY created_at LIMIT ?", (MAX_GENERATIONS + 1,)):
            d = dict(row)
            meta = _json(d.get("metadata"))
            gen = invokeai.parse_v3(meta) if isinstance(meta, dict) else None
            extra: dict[str, Any] = {}
            if isinstance(meta, dict):
                model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
                extra = {"model_key": clip(model.get("key")), "model_hash": clip(model.get("hash")),
                         "model_base": clip(model.get("base") or model.get("base_model")),
                         "cfg_scale": meta.get("cfg_scale"),
                         "size": f"{meta['width']}x{meta['height']}" if meta.get("width") and meta.get("height") else None,
                         "loras": _invoke_loras(meta.get("loras"))}
                if gen is not None:
                    gen.extra.update({k: v for k, v in extra.items() if k in ("cfg_scale", "size", "loras")})
            gens.append(gen_record(gen, source=f"invokeai.db images row {clip(d.get('image_name'), 120)}",
                                   generator="InvokeAI", image=clip(d.get("image_name")),
                                   time=clip(d.get("created_at")), session_id=clip(d.get("session_id")),
                                   category=clip(d.get("image_category")),
                                   **{k: v for k, v in extra.items() if k in ("model_key", "model_hash", "model_base")}))
        models = []
        for table in ("models", "model_config"):
            if table not in tables:
                continue
            for row in conn.execute(f"SELECT * FROM {table} LIMIT 10000"):  # noqa: S608 - fixed names
                d = dict(row)
                cfg = _json(d.get("config"))
                cfg = cfg if isinstance(cfg, dict) else {}

                def pick(*keys: str) -> Any:
                    for k in keys:
                        if d.get(k) not in (None, ""):
                            return d[k]
                        if cfg.get(k) not in (None, ""):
                            return cfg[k]
                    return None

                models.append({k: clip(v) for k, v in {
                    "key": pick("id", "key"), "name": pick("name", "model_name"), "path": pick("path"),
                    "hash": pick("hash", "original_hash", "current_hash"), "base": pick("base", "base_model"),
                    "type": pick("type", "model_type"), "format": pick("format")}.items() if v is not None})
        return _rec("invokeai-db", "InvokeAI", gens, models=models,
                    tables=sorted(tables)[:100])
    except sqlite3.DatabaseError as exc:
        return {"kind": "sqlite", "notes": [f"SQLite database could not be read ({str(exc)[:120]})"]}
    finally:
        conn.close()


def _invoke_loras(v: Any) -> list[dict[str, Any]] | None:
    if not isinstance(v, list):
        return None
    out = []
    for lo in v[:50]:
        if not isinstance(lo, dict):
            continue
        m = lo.get("model") or lo.get("lora") or {}
        if isinstance(m, dict):
            out.append({"name": clip(m.get("name") or m.get("model_name")), "key": clip(m.get("key")),
                        "hash": clip(m.get("hash")), "weight": lo.get("weight")})
    return out or None


def _json(v: Any) -> Any:
    if isinstance(v, (str, bytes)) and len(v) <= 2 * 1024 * 1024:
        try:
            return json.loads(v)
        except (ValueError, RecursionError):
            return None
    return None


def _iso(ts: float) -> str | None:
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None
