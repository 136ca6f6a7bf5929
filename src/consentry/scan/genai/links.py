"""Images ↔ models: which model file on the evidence each generation names.

A generation names its checkpoint and LoRAs by hash (A1111 ``Model hash`` — the legacy 8-hex
hash or the AutoV2 10-hex prefix of the SHA-256 —, ``Lora hashes`` — the AutoV3 12-hex prefix
of the addnet hash —, a full SHA-256) and/or by name (``Model: …``, ComfyUI ``ckpt_name`` /
``lora_name``, ``<lora:name:w>``, InvokeAI model keys resolved through its database). A hash
match is preferred; a name match is reported as such, with ``hash_differs`` when the image
also gave a hash that does not fit the file found by name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from consentry.scan.genai.artefacts import name_stem

_HEX = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass
class ModelEntry:
    path: str
    record: dict[str, Any]
    sha256: str | None
    names: set[str] = field(default_factory=set)


def _norm_hash(h: Any) -> str | None:
    if not isinstance(h, str):
        return None
    h = h.strip().lower().split(":")[-1]  # "blake3:…", "sha256:…"
    return h if _HEX.match(h) else None


class ModelIndex:
    """Every model on the evidence (files, diffusers folders), by hash and by name."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.models: list[ModelEntry] = []
        self.invoke_keys: dict[str, str] = {}  # InvokeAI model key/name -> path stem
        for r in rows:
            m = r.get("model")
            if isinstance(m, dict):
                e = ModelEntry(r["path"], m, r.get("sha256"))
                e.names.add(name_stem(os.path.basename(r["path"].split("!/")[-1])))
                meta_name = (m.get("metadata") or {}).get("name")
                if isinstance(meta_name, str):
                    e.names.add(name_stem(meta_name))
                self.models.append(e)
            a = r.get("artefact")
            if isinstance(a, dict) and a.get("kind") == "diffusers-model":
                folder = os.path.dirname(r["path"])
                e = ModelEntry(folder, {"format": "diffusers", "kind": "pipeline",
                                        "architecture": a.get("architecture"), "pipeline": a.get("pipeline")}, None)
                e.names.add(name_stem(os.path.basename(folder)))
                self.models.append(e)
            if isinstance(a, dict) and a.get("kind") == "invokeai-db":
                for rec in a.get("models") or []:
                    stem = name_stem(rec.get("path") or rec.get("name"))
                    for k in ("key", "name"):
                        if rec.get(k):
                            self.invoke_keys[str(rec[k]).lower()] = stem

    def find(self, ref: dict[str, Any]) -> tuple[ModelEntry | None, str | None, bool]:
        """``(model, matched_by, hash_differs)`` for one reference (name/hash/key)."""
        h = _norm_hash(ref.get("hash"))
        if h:
            for e in self.models:
                m = e.record
                if e.sha256 and e.sha256.startswith(h):
                    return e, f"SHA-256 prefix {h}" + (" (AutoV2)" if len(h) == 10 else ""), False
                if m.get("addnet_hash") and m["addnet_hash"].startswith(h):
                    return e, f"addnet hash prefix {h}" + (" (AutoV3)" if len(h) == 12 else ""), False
                if len(h) == 8 and m.get("a1111_legacy_hash") == h:
                    return e, f"A1111 legacy model hash {h}", False
        names = [name_stem(ref.get("name"))]
        key = str(ref.get("key") or "").lower()
        if key and key in self.invoke_keys:
            names.append(self.invoke_keys[key])
        names = [n for n in names if n]
        for e in self.models:
            for n in names:
                if n in e.names:
                    return e, f"file name {n}", bool(h) and not _hash_fits(e, h)
        return None, None, False


def _hash_fits(e: ModelEntry, h: str) -> bool:
    m = e.record
    return bool((e.sha256 and e.sha256.startswith(h)) or (m.get("addnet_hash") or "").startswith(h)
                or m.get("a1111_legacy_hash") == h)


def references(gen: dict[str, Any]) -> list[dict[str, Any]]:
    """The models one generation record names: its checkpoint, then its LoRAs."""
    refs = []
    if gen.get("model") or gen.get("model_hash") or gen.get("model_key"):
        refs.append({"role": "checkpoint", "name": gen.get("model"), "hash": gen.get("model_hash"),
                     "key": gen.get("model_key")})
    for lo in gen.get("loras") or []:
        if isinstance(lo, dict) and (lo.get("name") or lo.get("hash")):
            refs.append({"role": "lora", "name": lo.get("name"), "hash": lo.get("hash"), "key": lo.get("key")})
    return refs


def link(index: ModelIndex, subject: str, gen: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ref in references(gen):
        e, by, differs = index.find(ref)
        d = {"subject": subject, "source": gen.get("source"), "role": ref["role"], "name": ref.get("name"),
             "hash": ref.get("hash"), "status": "present" if e else "absent"}
        if e is not None:
            d.update({"model_path": e.path, "model_sha256": e.sha256, "matched_by": by,
                      "architecture": e.record.get("architecture")})
            if differs:
                d["hash_differs"] = True
        out.append({k: v for k, v in d.items() if v is not None})
    return out


def sentence(lk: dict[str, Any]) -> str:
    """``generated with model X, present at P (sha256 …)`` / ``… not on the evidence``."""
    what = f"{lk['role']} {lk.get('name') or lk.get('hash')}"
    if lk["status"] == "present":
        sha = f" (sha256 {lk['model_sha256']})" if lk.get("model_sha256") else ""
        note = "; the hash the image gives differs" if lk.get("hash_differs") else ""
        return f"generated with {what}, present at {lk['model_path']}{sha}, matched by {lk['matched_by']}{note}"
    return f"generated with {what}: not found on the evidence"
