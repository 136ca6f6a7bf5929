"""``chain-of-custody.json``: who scanned what, when, where, with which tool, and the SHA-256 of
every input file and of every report file (so any later change to either can be shown)."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from consentry.scan.store import utcnow

CUSTODY_FORMAT = "consentry-chain-of-custody/1"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def custody_record(ctx, runs: list[dict[str, Any]], rows: list[dict[str, Any]],
                   report_files: dict[str, Path], db_path: Path) -> dict[str, Any]:
    inputs = []
    for r in rows:
        if r["kind"] not in ("file", "member", "archive"):
            continue
        inputs.append({
            "path": r["path"], "kind": r["kind"], "archive": r.get("parent"), "size": r.get("size"),
            "sha256": r.get("sha256"), "sha1": r.get("sha1"), "md5": r.get("md5"),
            **({"error": r["error"]} if r.get("error") else {}),
        })
    files = dict(report_files)
    files.setdefault(db_path.name, db_path)
    reports = [{"file": name, "size": p.stat().st_size, "sha256": sha256_file(p)}
               for name, p in sorted(files.items())]
    return {
        "format": CUSTODY_FORMAT,
        "tool": {"name": ctx.tool, "version": ctx.version, "python": platform.python_version()},
        "examiner": ctx.examiner,
        "case_id": ctx.case_id,
        "started_at": ctx.started_at,
        "finished_at": ctx.finished_at,
        "generated_at": utcnow(),
        "host": ctx.host,
        "input_paths": ctx.inputs,
        "runs": [{k: r.get(k) for k in ("id", "started_at", "finished_at", "host", "executor", "workers",
                                          "inputs", "scanned", "skipped", "errors", "status")} for r in runs],
        "input_files": inputs,
        "input_file_count": len(inputs),
        "report_files": reports,
        "hash_algorithm": "sha256",
    }


def write_custody(path: Path, ctx, runs, rows, report_files: dict[str, Path], db_path: Path) -> Path:
    record = custody_record(ctx, runs, rows, report_files, db_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
