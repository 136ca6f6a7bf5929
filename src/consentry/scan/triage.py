"""Triage over the rows of ``scan.db``: known-good elimination, exact duplicate stacks,
PDQ near-duplicate groups, the AI-generation evidence list and match counts.

Everything here is a pure function of the stored rows (plus the known-good list), so a resumed
scan and an uninterrupted one triage identically.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from consentry.errors import ConsentryError
from consentry.index import PDQIndex, hex_to_words_many
from consentry.jit import cached_njit
from consentry.signals import DIHEDRAL_TRANSFORMS, PDQ_MIN_QUALITY, PDQ_THRESHOLD

#: hex length -> digest type, for plain hash lists
_BY_LEN = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
MAX_KNOWN_GOOD_BYTES = 4 * 1024**3
MAX_LINE = 64 * 1024
#: evidence details worth a column in the AI-evidence table
AI_DETAIL_KEYS = ("generator", "model", "prompt", "seed", "signer")
AI_VERDICTS = ("ai_generated", "ai_edited")


# --------------------------------------------------------------------------- known good
@dataclass
class KnownGood:
    """A known-good hash set (NSRL RDS CSV or plain hash lines)."""

    source: str
    hashes: dict[str, set[str]] = field(default_factory=lambda: {"md5": set(), "sha1": set(), "sha256": set()})
    lines: int = 0
    bad_lines: int = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self.hashes.values())

    def which(self, row: dict[str, Any]) -> str | None:
        for st in ("sha256", "sha1", "md5"):
            v = row.get(st)
            if v and v in self.hashes[st]:
                return st
        return None

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "md5": len(self.hashes["md5"]), "sha1": len(self.hashes["sha1"]),
                "sha256": len(self.hashes["sha256"]), "lines": self.lines, "bad_lines": self.bad_lines}


def _norm_col(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_known_good(path: str | Path) -> KnownGood:
    """Read an NSRL-style CSV (a header naming ``SHA-1``/``MD5``/``SHA-256`` columns) or a file of
    hash lines (``md5sum``/``sha256sum`` output works: the first token of each line is taken;
    the type comes from its length). Bad lines are counted, not fatal."""
    p = Path(path)
    try:
        size = p.stat().st_size
        fh = p.open("r", encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        raise ConsentryError(f"cannot read the known-good list {p}: {exc.strerror or exc}") from exc
    if size > MAX_KNOWN_GOOD_BYTES:
        fh.close()
        raise ConsentryError(f"the known-good list is over {MAX_KNOWN_GOOD_BYTES} bytes")
    kg = KnownGood(str(p))
    with fh:
        first = fh.readline(MAX_LINE)
        cols = [_norm_col(c) for c in next(csv.reader([first]), [])] if "," in first else []
        wanted = {i: {"sha1": "sha1", "md5": "md5", "sha256": "sha256"}[c]
                  for i, c in enumerate(cols) if c in ("sha1", "md5", "sha256")}
        if wanted:  # a CSV with a header
            reader = csv.reader(_bounded_lines(fh))
            for row in reader:
                kg.lines += 1
                got = False
                for i, st in wanted.items():
                    if i < len(row):
                        v = row[i].strip().lower()
                        if len(v) == {"md5": 32, "sha1": 40, "sha256": 64}[st] and _HEX.match(v):
                            kg.hashes[st].add(v)
                            got = True
                if not got:
                    kg.bad_lines += 1
            return kg
        for line in [first, *_bounded_lines(fh)]:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            kg.lines += 1
            token = s.split()[0].split(",")[0].strip('"').lower()
            if ":" in token:  # "md5:abcd..."
                token = token.split(":", 1)[1]
            st = _BY_LEN.get(len(token))
            if st and _HEX.match(token):
                kg.hashes[st].add(token)
            else:
                kg.bad_lines += 1
    return kg


def _bounded_lines(fh: io.TextIOBase) -> Iterable[str]:
    while True:
        line = fh.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            fh.readline()  # drop the rest of an over-long line
            yield ""
            continue
        yield line


# --------------------------------------------------------------------------- groups
@dataclass
class DuplicateStack:
    id: int
    sha256: str
    paths: list[str]


@dataclass
class GroupMember:
    sha256: str
    paths: list[str]
    distance: int  # PDQ distance to the group's first member (best dihedral variant)
    transform: str  # the variant of this member that is closest to the first member
    pdq: str
    pdq_quality: int


@dataclass
class NearDuplicateGroup:
    id: int
    members: list[GroupMember]

    @property
    def files(self) -> int:
        return sum(len(m.paths) for m in self.members)


def content_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that are content (files and archive members), not archives, links or walk errors."""
    return [r for r in rows if r["kind"] in ("file", "member")]


def exact_duplicate_stacks(rows: list[dict[str, Any]]) -> list[DuplicateStack]:
    by_sha: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.get("sha256"):
            by_sha[r["sha256"]].append(r["path"])
    stacks = [(sha, sorted(ps)) for sha, ps in by_sha.items() if len(ps) > 1]
    stacks.sort(key=lambda s: (-len(s[1]), s[1][0]))
    return [DuplicateStack(i + 1, sha, ps) for i, (sha, ps) in enumerate(stacks)]


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _find(parent, i):
    """The root of ``i`` (union-find over ``parent``, halving the path on the way)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


_find = cached_njit(_find)[0]


def _union_all(parent, i, others):
    """Join ``i`` with each of ``others``; the smaller root wins, so roots are first members."""
    for k in range(others.shape[0]):
        a = _find(parent, i)
        b = _find(parent, others[k])
        if a != b:
            parent[max(a, b)] = min(a, b)


_union_all = cached_njit(_union_all)[0]


def _roots(parent):
    out = np.empty_like(parent)
    for i in range(parent.shape[0]):
        out[i] = _find(parent, i)
    return out


_roots = cached_njit(_roots)[0]


def near_duplicate_groups(rows: list[dict[str, Any]], threshold: int = PDQ_THRESHOLD) -> list[NearDuplicateGroup]:
    """Connected components of photos whose PDQ hashes (any of the 8 dihedral variants) are within
    ``threshold``; exact duplicates count once. Uses the exact PDQ index (no O(n^2) scan);
    hashes below quality 50 are left out as they are for matching."""
    reps: dict[str, dict[str, Any]] = {}
    paths: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        sha, variants = r.get("sha256"), r.get("pdq_variants")
        if not sha or not variants or (r.get("pdq_quality") or 0) < PDQ_MIN_QUALITY:
            continue
        reps.setdefault(sha, r)
        paths[sha].append(r["path"])
    shas = sorted(reps, key=lambda s: min(paths[s]))
    if len(shas) < 2:
        return []
    ids = np.arange(len(shas), dtype=np.int64)
    index = PDQIndex.build(ids, hex_to_words_many(reps[s]["pdq"] for s in shas), threshold=threshold)
    parent = np.arange(len(shas), dtype=np.int64)
    variants = hex_to_words_many(v for s in shas for v in reps[s]["pdq_variants"]).reshape(len(shas), -1, 4)
    for i in range(len(shas)):
        _union_all(parent, i, index.query_ids(variants[i], threshold, unique=False))
    roots = _roots(parent)
    comps: dict[int, list[int]] = defaultdict(list)
    for i, root in enumerate(roots.tolist()):
        comps[root].append(i)
    groups = []
    for members in comps.values():
        if len(members) < 2:
            continue
        members.sort()
        head = reps[shas[members[0]]]["pdq"]
        out = []
        for i in members:
            r = reps[shas[i]]
            dists = [_distance(v, head) for v in r["pdq_variants"]]
            k = int(np.argmin(dists))
            out.append(GroupMember(shas[i], sorted(paths[shas[i]]), dists[k], DIHEDRAL_TRANSFORMS[k],
                                   r["pdq"], int(r["pdq_quality"])))
        groups.append(out)
    groups.sort(key=lambda g: g[0].paths[0])
    return [NearDuplicateGroup(i + 1, g) for i, g in enumerate(groups)]


# --------------------------------------------------------------------------- AI evidence
@dataclass
class AiEvidenceRow:
    path: str
    sha256: str | None
    verdict: str
    summary: str
    generator: str | None = None
    model: str | None = None
    prompt: str | None = None
    seed: str | None = None
    signer: str | None = None
    sources: list[str] = field(default_factory=list)  # "c2pa (ai_generated, proof)"


def _short(v: Any, n: int = 500) -> str | None:
    if v is None or v == "":
        return None
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def ai_evidence_rows(rows: list[dict[str, Any]]) -> list[AiEvidenceRow]:
    """One row per file whose assessment carries any evidence, strongest verdicts first."""
    out = []
    for r in rows:
        a = r.get("assessment")
        if not isinstance(a, dict):
            continue
        ev = [e for e in a.get("evidence") or [] if isinstance(e, dict)]
        if not ev and a.get("verdict") not in AI_VERDICTS:
            continue
        row = AiEvidenceRow(r["path"], r.get("sha256"), str(a.get("verdict") or ""), _short(a.get("summary")) or "")
        for e in ev:
            row.sources.append(f"{e.get('source')} ({e.get('claim')}, {e.get('strength')})")
            details = e.get("details") if isinstance(e.get("details"), dict) else {}
            for k in AI_DETAIL_KEYS:
                if getattr(row, k) is None and details.get(k) not in (None, ""):
                    setattr(row, k, _short(details[k]))
        out.append(row)
    rank = {"ai_generated": 0, "ai_edited": 1}
    out.sort(key=lambda x: (rank.get(x.verdict, 2), x.path))
    return out


# --------------------------------------------------------------------------- summary
@dataclass
class Triage:
    counts: dict[str, int]
    by_bank: list[dict[str, Any]]  # {"bank", "category", "files"}
    stacks: list[DuplicateStack]
    groups: list[NearDuplicateGroup]
    ai: list[AiEvidenceRow]
    errors: list[dict[str, Any]]  # {"path", "kind", "error"}
    known_good: dict[str, Any] | None
    file_tags: dict[str, dict[str, Any]]  # path -> {"stack", "group", "categories"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts, "matches_by_bank": self.by_bank,
            "duplicate_stacks": [asdict(s) for s in self.stacks],
            "near_duplicate_groups": [{"id": g.id, "members": [asdict(m) for m in g.members]} for g in self.groups],
            "ai_evidence": [asdict(a) for a in self.ai], "errors": self.errors, "known_good": self.known_good,
        }


def match_categories(row: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(bank, category) pairs of a row's matches."""
    out = []
    for m in row.get("matches") or []:
        cat = (m.get("provenance") or {}).get("category")
        pair = (m.get("bank"), None if cat in (None, "") else str(cat))
        if pair not in out:
            out.append(pair)
    return out


def triage(rows: list[dict[str, Any]], known_good: KnownGood | None = None) -> Triage:
    content = content_rows(rows)
    stacks = exact_duplicate_stacks(content)
    groups = near_duplicate_groups(content)
    ai = ai_evidence_rows(content)
    per: Counter = Counter()
    tags: dict[str, dict[str, Any]] = defaultdict(dict)
    for s in stacks:
        for p in s.paths:
            tags[p]["stack"] = s.id
    for g in groups:
        for m in g.members:
            for p in m.paths:
                tags[p]["group"] = g.id
    matched = 0
    for r in content:
        cats = match_categories(r)
        if cats:
            matched += 1
            tags[r["path"]]["categories"] = cats
        for pair in cats:
            per[pair] += 1
    by_bank = [{"bank": b, "category": c, "files": n}
               for (b, c), n in sorted(per.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or ""))]
    errors = [{"path": r["path"], "kind": r["kind"], "error": r["error"]} for r in rows if r["status"] == "error"]
    counts = {
        "items": len(rows),
        "content": len(content),
        "files": sum(1 for r in content if r["kind"] == "file"),
        "archive_members": sum(1 for r in content if r["kind"] == "member"),
        "archives": sum(1 for r in rows if r["kind"] == "archive"),
        "photos": sum(1 for r in content if r.get("content_type") == "photo"),
        "videos": sum(1 for r in content if r.get("content_type") == "video"),
        "other": sum(1 for r in content if r.get("content_type") not in ("photo", "video")),
        "errors": len(errors),
        "not_followed": sum(1 for r in rows if r["status"] == "skipped"),
        "known_good": sum(1 for r in content if r.get("known_good")),
        "matched": matched,
        "ai_generated": sum(1 for a in ai if a.verdict == "ai_generated"),
        "ai_edited": sum(1 for a in ai if a.verdict == "ai_edited"),
        "with_ai_evidence": len(ai),
        "duplicate_stacks": len(stacks),
        "duplicate_files": sum(len(s.paths) for s in stacks),
        "near_duplicate_groups": len(groups),
        "near_duplicate_files": sum(g.files for g in groups),
        "unique_sha256": len({r["sha256"] for r in content if r.get("sha256")}),
    }
    return Triage(counts, by_bank, stacks, groups, ai, errors,
                  known_good.summary() if known_good else None, dict(tags))
