"""``run_scan``: walk -> per-file worker -> match -> ``scan.db`` -> triage -> reports.

The one function behind ``consentry scan`` (and anything else that wants a bulk scan). Results
are committed file by file; a re-run with the same output folder resumes.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from consentry import __version__
from consentry.config import MediaLimits
from consentry.errors import ConsentryError
from consentry.scan.executors import make_executor
from consentry.scan.genai.scan import ModelLane
from consentry.scan.store import ScanStore, utcnow
from consentry.scan.triage import KnownGood, Triage, content_rows, load_known_good, triage
from consentry.scan.walk import Walker, WalkLimits, WalkRecord
from consentry.scan.worker import FileResult, WorkerOptions

TOOL_NAME = "Consentry"
DB_NAME = "scan.db"


@dataclass
class ScanOptions:
    paths: list[str]
    out: Path
    banks: list[str] | None = None  # None: every bank of the database, when there is one
    known_good: Path | None = None
    workers: int = 1
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    examiner: str | None = None
    case_id: str | None = None
    include_thumbnails: bool = False  # in the PDF (the HTML always has them, blurred)
    match: bool = True
    verify_skipped: bool = False  # re-hash files whose path/size/mtime say "done" before skipping
    reports: bool = True
    limits: MediaLimits = field(default_factory=MediaLimits)
    walk_limits: WalkLimits = field(default_factory=WalkLimits)
    evidence: bool = True
    genai: bool = True  # model inventory, generator artefacts, image <-> model links, sessions
    prompt_terms: Path | None = None  # operator's term list: prompts that use a term are flagged
    show_prompts: bool = False  # prompts in clear in report.html / report.pdf
    database: Any = None  # a consentry.db.Database; default: the configured one, if it exists


@dataclass
class Progress:
    done: int  # top-level files and archives finished (the unit of ``total``)
    total: int | None
    results: int  # files and members recorded in this run
    skipped: int
    errors: int
    elapsed: float


@dataclass
class ScanSummary:
    out: Path
    run_id: int
    scanned: int  # files and members processed in this run
    skipped: int  # already done in an earlier run
    errors: int  # errors recorded in this run
    elapsed: float
    counts: dict[str, int]
    reports: dict[str, Path]
    matching: str  # what was matched, or why nothing was
    genai: dict[str, int] = field(default_factory=dict)  # models, artefacts, sessions, links, flags

    @property
    def files_per_second(self) -> float:
        return self.scanned / self.elapsed if self.elapsed > 0 else 0.0


def count_inputs(paths: list[str]) -> int:
    """Regular files under the inputs (for the progress bar; archives count once)."""
    n = 0
    for raw in paths:
        if os.path.isdir(raw):
            for _root, _dirs, files in os.walk(raw, followlinks=False):
                n += len(files)
        else:
            n += 1
    return n


# --------------------------------------------------------------------------- matching
class _Matching:
    def __init__(self, opts: ScanOptions):
        self.matcher = None
        self.key: str | None = None
        self.note = "no banks"
        if not opts.match:
            self.note = "matching turned off"
            return
        db = opts.database
        if db is None:
            from consentry.config import get_settings

            settings = get_settings()
            url = settings.effective_database_url
            if url.startswith("sqlite:") and not (settings.home / "consentry.db").exists():
                if opts.banks:
                    raise ConsentryError(f"no database at {settings.home / 'consentry.db'}: "
                                         "cannot match against --bank (set CONSENTRY_HOME or DATABASE_URL)")
                self.note = "no bank database configured: nothing matched"
                return
            from consentry.db import open_database

            db = open_database(settings)
        from consentry.banks.matcher import Matcher

        self.matcher = Matcher(db).load()
        known = {b.name: b for b in self.matcher.banks.list_banks()}
        for b in opts.banks or []:
            if b not in known:
                raise ConsentryError(f"no bank named {b!r}")
        self.banks = sorted(opts.banks) if opts.banks else None
        names = self.banks or sorted(n for n, b in known.items() if b.kind != "allow")
        self.key = ",".join(self.banks) if self.banks else "*"
        self.note = f"matched against: {', '.join(names) or '(no banks)'}"

    def match(self, row: dict[str, Any]) -> list[dict[str, Any]] | None:
        if self.matcher is None:
            return None
        q = query_from_row(row)
        if q is None:
            return []
        return [m.to_dict() for m in self.matcher.match(q, self.banks).matches]


def query_from_row(row: dict[str, Any]):
    """Query signals from a stored row or a FileResult dict (None: nothing to match)."""
    from consentry.banks.matcher import QuerySignals
    from consentry.signals.vpdq import parse_frames

    q = QuerySignals(exact={st: row[st] for st in ("md5", "sha1", "sha256") if row.get(st)})
    if row.get("pdq_variants"):
        q.pdq, q.pdq_quality = list(row["pdq_variants"]), row.get("pdq_quality")
        q.pdq_extra = [(str(k), list(v), int(qual)) for k, v, qual in row.get("pdq_extra") or []]
    if row.get("vpdq"):
        try:
            q.vpdq = parse_frames(row["vpdq"])
            q.vpdq_extra = [(str(k), parse_frames(v)) for k, v in row.get("vpdq_extra") or []]
        except ConsentryError:
            q.vpdq, q.vpdq_extra = None, []
    if not (q.exact or q.pdq or q.vpdq):
        return None
    return q


# --------------------------------------------------------------------------- the scan
def _ticking(source: Iterable[Any], store: ScanStore) -> Iterator[Any]:
    """The walk, committing the store's open batch when it is old enough as each file starts."""
    for w in source:
        store.tick()
        yield w


def run_scan(opts: ScanOptions, progress: Callable[[Progress], None] | None = None,
             total: int | None = None) -> ScanSummary:
    if not opts.paths:
        raise ConsentryError("nothing to scan: give at least one path")
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ConsentryError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    known_good: KnownGood | None = load_known_good(opts.known_good) if opts.known_good else None
    matching = _Matching(opts)
    store = ScanStore(out / DB_NAME)
    try:
        if store.get_meta("started_at") is None:
            store.set_meta("started_at", utcnow())
        for k, v in (("examiner", opts.examiner), ("case_id", opts.case_id)):
            if v:
                store.set_meta(k, v)
        inputs = sorted(set((store.get_meta("inputs") or []) + [os.path.abspath(p) for p in opts.paths]))
        store.set_meta("inputs", inputs)
        executor = make_executor(opts.executor, opts.workers, opts.ray_address)
        run_id = store.start_run(socket.gethostname(), executor.name, executor.workers,
                                 [os.path.abspath(p) for p in opts.paths])
        walker = Walker(opts.walk_limits, store.is_done, opts.verify_skipped)
        wopts = WorkerOptions(limits=opts.limits, evidence=opts.evidence, genai=opts.genai,
                              canonical=matching.matcher is not None and opts.limits.canonical_query)
        t0 = time.monotonic()
        scanned = errors = done = 0
        status = "interrupted"
        lane = ModelLane(opts.genai, executor.workers)  # model files: hashed in their own worker, beside the rest

        def record(fr: FileResult) -> None:
            nonlocal scanned, errors, done
            matches = matching.match(fr.to_dict()) if matching.matcher is not None else None
            store.record_result(fr, run_id, matches=matches, match_key=matching.key)
            scanned += 1
            errors += fr.error is not None
            if fr.kind == "file":
                done += 1

        try:
            with executor:
                last_skipped = 0
                store.start_batching()  # rows committed in small groups (see ScanStore.start_batching)
                for produced in executor.run(lane.divert(_ticking(walker.walk(opts.paths), store)), wopts):
                    for fr in lane.ready():
                        record(fr)
                    if isinstance(produced, FileResult):
                        record(produced)
                    else:
                        assert isinstance(produced, WalkRecord)
                        store.record_walk(produced, run_id)
                        errors += produced.status == "error"
                        if produced.parent is None and produced.kind != "directory":
                            done += 1
                    if progress:
                        done += walker.skipped_top - last_skipped
                        last_skipped = walker.skipped_top
                        progress(Progress(done, total, scanned, walker.skipped, errors, time.monotonic() - t0))
                for fr in lane.drain():
                    record(fr)
                    if progress:
                        progress(Progress(done, total, scanned, walker.skipped, errors, time.monotonic() - t0))
            status = "finished"
        finally:
            lane.close()
            store.stop_batching()
            if status == "finished":
                store.mark_archives_complete(run_id)
            store.finish_run(run_id, scanned, walker.skipped, errors, status)
        elapsed = time.monotonic() - t0
        # rows matched against another bank selection (or none) in an earlier run: match again
        if matching.matcher is not None:
            for row in content_rows(store.items()):
                if row.get("match_key") != matching.key:
                    store.set_matches(row["path"], matching.match(row), matching.key)
        rows = list(store.items())
        marks = {}
        if known_good is not None:
            for r in content_rows(rows):
                by = known_good.which(r)
                if by:
                    marks[r["path"]] = f"{Path(known_good.source).name} ({by})"
        store.set_known_good(marks)
        for r in rows:
            r["known_good"] = 1 if r["path"] in marks else 0
            r["known_good_by"] = marks.get(r["path"])
        store.set_meta("finished_at", utcnow())
        store.set_meta("matching", matching.note)
        result = triage(rows, known_good)
        genai = None
        if opts.genai:
            from consentry.scan.genai.prompts import load_terms
            from consentry.scan.genai.summary import analyse

            genai = analyse(rows, load_terms(opts.prompt_terms), opts.show_prompts)
        reports: dict[str, Path] = {}
        if opts.reports:
            reports, ctx = write_all_reports(store, rows, result, opts, genai)
            runs = store.runs()
    finally:
        store.close()
    if opts.reports:
        # last, with scan.db closed (its WAL folded in), so every hash is of the final bytes
        from consentry.reports.custody import write_custody

        reports["chain-of-custody.json"] = write_custody(
            out / "chain-of-custody.json", ctx, runs, rows, reports, out / DB_NAME)
    return ScanSummary(out, run_id, scanned, walker.skipped, errors, elapsed, result.counts, reports,
                       matching.note, genai.counts if genai is not None else {})


def write_all_reports(store: ScanStore, rows: list[dict[str, Any]], result: Triage,
                      opts: ScanOptions, genai: Any = None) -> tuple[dict[str, Path], Any]:
    from consentry.reports.html import ReportContext, write_html, write_pdf
    from consentry.reports.tabular import write_csv, write_jsonl, write_vics

    out = Path(opts.out)
    ctx = ReportContext(
        tool=TOOL_NAME, version=__version__, examiner=store.get_meta("examiner"),
        case_id=store.get_meta("case_id"), started_at=store.get_meta("started_at"),
        finished_at=store.get_meta("finished_at"), inputs=store.get_meta("inputs") or [],
        matching=store.get_meta("matching") or "", host=socket.gethostname(),
        rows=rows, triage=result, genai=genai, show_prompts=opts.show_prompts,
    )
    reports = {
        "results.jsonl": write_jsonl(out / "results.jsonl", rows, result, genai),
        "results.csv": write_csv(out / "results.csv", rows, result, opts.show_prompts),
        "vics.json": write_vics(out / "vics.json", rows, result),
        "report.html": write_html(out / "report.html", ctx, store),
        "report.pdf": write_pdf(out / "report.pdf", ctx, store, include_thumbnails=opts.include_thumbnails),
    }
    return reports, ctx
