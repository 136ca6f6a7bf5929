"""Everything the reports say about AI generation on the evidence, from the rows of ``scan.db``.

A pure function of the stored rows (and the term list), like triage: a resumed scan and an
uninterrupted one report the same models, links and sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from consentry.scan.genai import prompts as P
from consentry.scan.genai.links import ModelIndex, link, sentence
from consentry.scan.genai.sessions import build_sessions

_MODEL_KEYS = ("format", "kind", "architecture", "architecture_basis", "size", "autov2", "a1111_legacy_hash",
               "autov3", "addnet_hash", "tensors", "notes")


@dataclass
class GenAIReport:
    models: list[dict[str, Any]] = field(default_factory=list)
    artefacts: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    models_without_images: list[str] = field(default_factory=list)
    images_with_absent_models: list[str] = field(default_factory=list)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)  # per path, for results.jsonl
    terms: int = 0
    show_prompts: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return {"models": len(self.models), "artefacts": len(self.artefacts), "sessions": len(self.sessions),
                "generated_images": sum(s["images"] for s in self.sessions),
                "links_present": sum(1 for lk in self.links if lk["status"] == "present"),
                "links_absent": sum(1 for lk in self.links if lk["status"] == "absent"),
                "flagged_prompts": len(self.flags)}

    def __bool__(self) -> bool:
        return bool(self.models or self.artefacts or self.sessions)


def _tag(rep: GenAIReport, path: str) -> dict[str, Any]:
    return rep.tags.setdefault(path, {})


def _flag(rep: GenAIReport, terms: list[str], path: str, source: str | None, text: str | None) -> None:
    hits = P.flag(text, terms)
    if hits:
        rep.flags.append({"path": path, "source": source, "terms": hits, "prompt": text,
                          "fingerprint": P.digest(text)})
        t = _tag(rep, path).setdefault("prompt_flags", [])
        t.extend(h for h in hits if h not in t)


def analyse(rows: list[dict[str, Any]], terms: list[str] | None = None, show_prompts: bool = False) -> GenAIReport:
    terms = terms or []
    rep = GenAIReport(terms=len(terms), show_prompts=show_prompts)
    index = ModelIndex(rows)
    images = [(r, r["generation"]) for r in rows if isinstance(r.get("generation"), dict)]
    times: dict[str, str] = {}
    for r in rows:
        a = r.get("artefact")
        if not isinstance(a, dict):
            continue
        gens = [g for g in a.get("generations") or [] if isinstance(g, dict)]
        recorded = sorted(g["time"] for g in gens if isinstance(g.get("time"), str))
        rep.artefacts.append({"path": r["path"], "kind": a.get("kind"), "generator": a.get("generator"),
                              "generations": len(gens), "styles": len(a.get("styles") or []),
                              "models": len(a.get("models") or []), "first": recorded[0] if recorded else None,
                              "last": recorded[-1] if recorded else None, "notes": a.get("notes"),
                              "settings": a.get("settings"), "examples": gens[:3]})
        for g in gens:
            for name in ([g["image"]] if isinstance(g.get("image"), str) else []) + list(g.get("images") or []):
                if isinstance(name, str) and isinstance(g.get("time"), str):
                    times.setdefault(os.path.basename(name), g["time"])
            rep.links += link(index, r["path"], g)
            _flag(rep, terms, r["path"], g.get("source"), g.get("prompt"))
        for s in a.get("styles") or []:
            _flag(rep, terms, r["path"], f"style {s.get('name')}", s.get("prompt"))
    used: dict[str, list[str]] = {}
    for r, g in images:
        lks = link(index, r["path"], g)
        rep.links += lks
        _tag(rep, r["path"])["model_links"] = [sentence(lk) for lk in lks]
        if any(lk["status"] == "absent" for lk in lks):
            rep.images_with_absent_models.append(r["path"])
        for lk in lks:
            if lk["status"] == "present":
                used.setdefault(lk["model_path"], [])
                if r["path"] not in used[lk["model_path"]]:
                    used[lk["model_path"]].append(r["path"])
        _flag(rep, terms, r["path"], g.get("source"), g.get("prompt"))
    for e in index.models:
        m = e.record
        meta = m.get("metadata") or {}
        rep.models.append({"path": e.path, "sha256": e.sha256, **{k: m.get(k) for k in _MODEL_KEYS if m.get(k)},
                           "base_model": meta.get("base_model"), "trigger_words": meta.get("trigger_words"),
                           "name": meta.get("name"), "training": meta.get("training"),
                           "images": len(used.get(e.path, [])), "image_paths": used.get(e.path, [])[:50]})
        _tag(rep, e.path)["model_used_by"] = len(used.get(e.path, []))
        if not used.get(e.path):
            rep.models_without_images.append(e.path)
    for se in build_sessions(images, times):
        d = se.to_dict()
        paths = {s.path for s in se.shots}
        present = [lk for lk in rep.links if lk["subject"] in paths and lk["status"] == "present"
                   and lk["role"] == "checkpoint"]
        d["model_path"] = present[0]["model_path"] if present else None
        d["model_sha256"] = present[0].get("model_sha256") if present else None
        d["flagged_images"] = sum(1 for p in paths if rep.tags.get(p, {}).get("prompt_flags"))
        first_prompt = next((s.gen.get("prompt") for s in se.shots if s.gen.get("prompt")), None)
        d["prompt_example"] = first_prompt
        rep.sessions.append(d)
        for i, s in enumerate(se.shots, 1):
            _tag(rep, s.path)["session"] = {"id": se.id, "position": i, "of": len(se.shots)}
    return rep
