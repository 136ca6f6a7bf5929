"""Machine-readable scan results: ``results.jsonl``, ``results.csv`` and a VICS JSON export."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from consentry.scan.triage import AI_DETAIL_KEYS, Triage, ai_evidence_rows, content_rows, match_categories

#: columns of results.csv, in order
CSV_COLUMNS = (
    "path", "kind", "parent", "status", "size", "content_type", "format", "md5", "sha1", "sha256",
    "pdq", "pdq_quality", "vpdq_frames", "known_good", "known_good_by", "duplicate_stack",
    "near_duplicate_group", "matches", "ai_verdict", *AI_DETAIL_KEYS, "error", "note",
)
_DROP = ("thumbnail", "match_key", "complete", "run_id", "recorded_at", "elapsed_ms", "mtime_ns",
         "pdq_extra", "vpdq_extra")  # local matching signals (issue 21): exports carry the standard hashes


def result_record(row: dict[str, Any], tri: Triage, genai: Any = None) -> dict[str, Any]:
    """One row of scan.db as exported: no thumbnail or bookkeeping, plus the triage tags and the
    AI-generation forensics (``session``, ``model_links``, ``model_used_by``, ``prompt_flags``)."""
    d = {k: v for k, v in row.items() if k not in _DROP}
    for k in ("model", "artefact", "generation"):
        if d.get(k) is None:
            d.pop(k, None)
    if genai is not None:
        d.update(genai.tags.get(row["path"], {}))
    tags = tri.file_tags.get(row["path"], {})
    d["known_good"] = bool(row.get("known_good"))
    d["duplicate_stack"] = tags.get("stack")
    d["near_duplicate_group"] = tags.get("group")
    d["match_categories"] = [{"bank": b, "category": c} for b, c in match_categories(row)]
    return d


def write_jsonl(path: Path, rows: list[dict[str, Any]], tri: Triage, genai: Any = None) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(result_record(row, tri, genai), ensure_ascii=False, sort_keys=True) + "\n")
    return path


def _cell(v: Any) -> str:
    """Text for a spreadsheet cell; formulas from untrusted names and prompts are defused."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))
    if s[:1] in ("=", "+", "-", "@", "\t", "\r"):
        s = "'" + s
    return s


def write_csv(path: Path, rows: list[dict[str, Any]], tri: Triage, show_prompts: bool = True) -> Path:
    """``show_prompts=False`` (a scan without ``--show-prompts``): the prompt column holds a word
    count and fingerprint instead of the prompt, as in report.html (results.jsonl keeps it)."""
    from consentry.scan.genai.prompts import shown

    ai = {a.path: a for a in ai_evidence_rows(content_rows(rows))}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            tags = tri.file_tags.get(row["path"], {})
            a = ai.get(row["path"])
            values = {
                **row,
                "vpdq_frames": len(row["vpdq"]) if row.get("vpdq") else None,
                "known_good": "yes" if row.get("known_good") else "",
                "duplicate_stack": tags.get("stack"), "near_duplicate_group": tags.get("group"),
                "matches": "; ".join(f"{b}:{c}" if c else str(b) for b, c in match_categories(row)),
                **{k: getattr(a, k) if a else None for k in AI_DETAIL_KEYS},
            }
            if not show_prompts:
                values["prompt"] = shown(values.get("prompt"), False)
            w.writerow([_cell(values.get(c)) for c in CSV_COLUMNS])
    return path


def vics_records(rows: list[dict[str, Any]], tri: Triage):
    """HashRecords for a VICS export: one Media per content with any digest; its category is the
    first integer category of its matches; triage results go into Tags."""
    from consentry.banks.formats.records import HashRecord

    n = 0
    for row in content_rows(rows):
        if not row.get("sha256"):
            continue
        n += 1
        cats = match_categories(row)
        category = next((c for _b, c in cats if c and c.strip().isdigit()), None)
        tags = tri.file_tags.get(row["path"], {})
        labels = []
        if row.get("known_good"):
            labels.append("known-good")
        if row.get("ai_verdict") in ("ai_generated", "ai_edited"):
            labels.append(row["ai_verdict"].replace("_", "-"))
        if tags.get("stack"):
            labels.append(f"duplicate-stack-{tags['stack']}")
        if tags.get("group"):
            labels.append(f"near-duplicate-group-{tags['group']}")
        labels += [f"bank-{b}" for b, _c in cats]
        for st in ("md5", "sha1", "sha256", "pdq"):
            if row.get(st):
                yield HashRecord(st, row[st], "add", [f"vics:{n}"], labels, category, "consentry-scan")


def write_vics(path: Path, rows: list[dict[str, Any]], tri: Triage) -> Path:
    from consentry.banks.formats import vics

    with open(path, "wb") as fh:
        vics.write(vics_records(rows, tri), fh)
    return path
