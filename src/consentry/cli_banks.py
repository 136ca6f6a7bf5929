"""``consentry bank ...``, ``consentry match`` and ``consentry db`` commands."""

from __future__ import annotations

import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

from consentry.cli_common import (
    EXIT_FAILED, EXIT_OK, EXIT_USAGE, err_console, fail, plural, print_table, progress_bar, write_result,
)
from consentry.config import get_settings
from consentry.errors import ConsentryError

bank_app = typer.Typer(help="Create banks (hash lists), import/export them, add and withdraw entries.",
                       no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)

FORMAT_NAMES = ["te", "stopncii", "ncmec", "vics", "csv", "consentry"]


def _service():
    from consentry.banks.service import BankService
    from consentry.db import open_database

    return BankService(open_database())


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def _cli_actor() -> str:
    """Who the audit log names for a CLI change: ``cli:<login name>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:200]
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def _parse_thresholds(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"--threshold must look like pdq=31, got {item!r}", EXIT_USAGE)
        out[name.strip().lower()] = value.strip()
    return out


@bank_app.command("create")
def bank_create(
    name: str = typer.Argument(..., help="Bank name (letters, digits, . _ -)."),
    kind: str = typer.Option("custom", "--kind", "-k",
                             help="ncii, csam, ai-abuse, terror, allow (suppresses matches) or custom."),
    description: str = typer.Option("", "--description", "-d"),
    threshold: Optional[List[str]] = typer.Option(None, "--threshold", "-t",
                                                  help="Per-signal threshold, e.g. pdq=31 (repeatable)."),
    shared: bool = typer.Option(False, "--shared", help="Bank is shared with partners."),
    match_percent: float = typer.Option(100.0, "--match-percent", min=0, max=100,
                                        help="Gradual rollout: the share of lookups (0-100, picked per content) "
                                             "that may match this bank."),
) -> None:
    """Create a bank."""
    try:
        bank = _service().create_bank(name, kind, description, _parse_thresholds(threshold), shared=shared,
                                      actor=_cli_actor(), match_percent=match_percent)
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(bank.to_dict()))


@bank_app.command("list")
def bank_list(fmt: ListFormat = typer.Option(ListFormat.table, "--format", "-f")) -> None:
    """List banks with their entry counts."""
    banks = _service().list_banks()
    if fmt is ListFormat.json:
        for b in banks:
            print(json.dumps(b.to_dict()))
        return
    print_table(["name", "kind", "active", "disabled", "withdrawn", "thresholds", "match %", "disabled until",
                 "description"],
                [[b.name, b.kind, str(b.counts.get("active", 0)), str(b.counts.get("disabled", 0)),
                  str(b.counts.get("withdrawn", 0)), json.dumps(b.thresholds) if b.thresholds else "",
                  f"{b.match_percent:g}", b.disabled_until.isoformat() if b.disabled_at() else "", b.description]
                 for b in banks])


@bank_app.command("show")
def bank_show(name: str, entries: int = typer.Option(0, "--entries", "-n", help="Also list N entries.")) -> None:
    """Show one bank (JSON)."""
    svc = _service()
    try:
        out = svc.get_bank(name).to_dict()
        if entries:
            out["entries"] = [e.to_dict() for e in svc.list_entries(name, limit=entries)]
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(out, default=str, indent=2))


@bank_app.command("update")
def bank_update(
    name: str,
    match_percent: Optional[float] = typer.Option(None, "--match-percent", min=0, max=100,
                                                  help="Gradual rollout share (0-100); 100 = every lookup."),
    until: Optional[str] = typer.Option(None, "--until", help="Disable the bank until this ISO 8601 time "
                                        "(e.g. 2030-01-31T12:00:00Z); it matches again by itself afterwards."),
    enable: bool = typer.Option(False, "--enable", help="End a timed disable now."),
    description: Optional[str] = typer.Option(None, "--description", "-d"),
    kind: Optional[str] = typer.Option(None, "--kind", "-k"),
    threshold: Optional[List[str]] = typer.Option(None, "--threshold", "-t", help="e.g. pdq=31 (repeatable)."),
    shared: Optional[bool] = typer.Option(None, "--shared/--not-shared", help="Publish to partners or not."),
) -> None:
    """Change a bank: rollout share, timed disable, description, kind, thresholds, sharing."""
    if until and enable:
        fail("give --until or --enable, not both", EXIT_USAGE)
    changes: dict[str, Any] = {"match_percent": match_percent, "description": description, "kind": kind,
                               "thresholds": _parse_thresholds(threshold) if threshold else None, "shared": shared}
    if until or enable:
        changes["disabled_until"] = until if until else None
    try:
        bank = _service().update_bank(name, actor=_cli_actor(), **changes)
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(bank.to_dict()))


@bank_app.command("delete")
def bank_delete(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a bank and all its entries."""
    svc = _service()
    try:
        info = svc.get_bank(name)
    except ConsentryError as exc:
        fail(str(exc))
    total = sum(info.counts.values())
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to delete without --yes when not interactive", EXIT_USAGE)
        typer.confirm(f"Delete bank {name!r} and its {plural(total, 'entry', 'entries')}?", abort=True)
    n = svc.delete_bank(name, actor=_cli_actor())
    err_console.print(f"deleted bank {name!r} ({plural(n, 'entry', 'entries')})", highlight=False)


class _CountingReader(io.RawIOBase):
    """Wraps a binary file and reports bytes read (for the progress bar)."""

    def __init__(self, raw, on_read):
        self.raw, self.on_read = raw, on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        if n:
            self.on_read(n)
        return n or 0


@bank_app.command("import")
def bank_import(
    name: str = typer.Argument(..., help="Bank to import into (must exist)."),
    file: Path = typer.Argument(..., help="Hash list file ('-' for stdin).", allow_dash=True),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="te, stopncii, ncmec, vics, csv, or consentry (what `consentry hash` prints) (default: detect)."),
    errors_out: Optional[Path] = typer.Option(None, "--errors-out", help="Write every bad record here (JSON Lines)."),
    added_by: Optional[str] = typer.Option(None, "--added-by", help="Who is importing (provenance)."),
) -> None:
    """Import a hash list (streaming, idempotent). Withdrawals in the list remove entries."""
    from consentry.banks.formats import get_format, sniff_format

    svc = _service()
    try:
        svc.get_bank(name)
    except ConsentryError as exc:
        fail(str(exc))
    if str(file) == "-":
        raw, size = sys.stdin.buffer.raw, None
    else:
        try:
            raw, size = open(file, "rb", buffering=0), file.stat().st_size
        except OSError as exc:
            fail(f"cannot open {file}: {exc.strerror or exc}")
    with progress_bar() as progress:
        task = progress.add_task("importing", total=size, rate="")
        reader = io.BufferedReader(_CountingReader(raw, lambda n: progress.update(task, advance=n)),
                                   buffer_size=1 << 16)
        if fmt is None:
            fmt = sniff_format(reader.peek(4096)[:4096])
            if fmt is None:
                fail("cannot tell the list format; pass --format " + "|".join(FORMAT_NAMES), EXIT_USAGE)
        try:
            module = get_format(fmt)
        except KeyError as exc:
            fail(str(exc.args[0]), EXIT_USAGE)
        progress.update(task, description=f"importing ({fmt})")
        try:
            report = svc.add_records(name, module.read(reader, source_name=str(file)), added_by=added_by)
        except ConsentryError as exc:
            fail(str(exc))
    if errors_out:
        with open(errors_out, "w") as fh:
            for e in report.errors:
                fh.write(json.dumps({"position": e.position, "error": e.message}) + "\n")
    for e in report.errors[:20]:
        err_console.print(f"  {e.position}: {e.message}", highlight=False, markup=False)
    if len(report.errors) > 20:
        err_console.print(f"  ... and {len(report.errors) - 20} more (--errors-out FILE lists all)")
    print(json.dumps({"bank": name, "format": fmt, **report.to_dict()}))
    raise typer.Exit(EXIT_FAILED if report.errors else EXIT_OK)


@bank_app.command("export")
def bank_export(
    name: str,
    fmt: str = typer.Option(..., "--format", "-f", help="te, stopncii, ncmec, vics, csv or consentry."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default stdout)."),
    include_withdrawn: bool = typer.Option(False, "--include-withdrawn",
                                           help="Write withdrawn entries as tombstones where the format has them."),
) -> None:
    """Export a bank's active entries (streaming)."""
    from consentry.banks.formats import get_format

    svc = _service()
    try:
        module = get_format(fmt)
        svc.get_bank(name)
    except KeyError as exc:
        fail(str(exc.args[0]), EXIT_USAGE)
    except ConsentryError as exc:
        fail(str(exc))
    records = svc.iter_records(name, include_withdrawn=include_withdrawn,
                                                as_exchanged=fmt != "consentry")
    if out is None:
        n = module.write(records, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        tmp = out.with_name(out.name + ".partial")
        with open(tmp, "wb") as fh:
            n = module.write(records, fh)
        tmp.replace(out)  # never leave a half-written list under the real name
    err_console.print(f"exported {plural(n, 'record')} from {name!r} as {fmt}", highlight=False)


@bank_app.command("add")
def bank_add(
    name: str,
    paths: List[Path] = typer.Argument(..., help="Files or directories to hash and add."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag (repeatable)."),
    category: Optional[str] = typer.Option(None, "--category"),
    added_by: Optional[str] = typer.Option(None, "--added-by"),
) -> None:
    """Hash files and add their signals (md5, sha256, PDQ or vPDQ) to a bank.

    A photo's PDQ entry also keeps local hashes of its crops, small rotations and borderless copy
    (pdq_variants in the output; CONSENTRY_CANONICAL_STORED=0: none), and a video keeps every frame
    less near-repeats, so re-cut, cropped or straightened re-uploads still match. Exports and
    exchanges carry the standard hashes only."""
    from consentry.banks.formats.records import records_from_hash
    from consentry.hashing import hash_path_for_bank, iter_files

    svc = _service()
    try:
        svc.get_bank(name)
    except ConsentryError as exc:
        fail(str(exc))
    limits = get_settings().limits
    files = list(iter_files(paths))
    failures = 0
    with progress_bar() as progress:
        task = progress.add_task("adding", total=len(files), rate="")
        for path in files:
            r, variants = hash_path_for_bank(path, limits)
            line: dict[str, Any] = {"path": r.path, "added": [], "error": r.error}
            if r.error is None:
                recs = records_from_hash(r, list(tag or []), category, "file")
                svc.add_records(name, recs, added_by=added_by)
                if variants:
                    line["pdq_variants"] = svc.set_variants(name, r.pdq, variants)
                for rec in recs:
                    e = svc.find_entry(name, rec.signal_type, rec.value)
                    line["added"].append({"signal_type": rec.signal_type, "entry_id": e.id if e else None})
                if r.pdq and (r.pdq_quality or 0) < 50:
                    line["warning"] = f"PDQ quality {r.pdq_quality} < 50: kept but not used to match"
            else:
                failures += 1
            write_result(json.dumps(line), progress)
            progress.update(task, advance=1)
    raise typer.Exit(EXIT_FAILED if failures else EXIT_OK)


def _set_status(name: str, status: str, entry: Optional[int], pdq: Optional[str], md5: Optional[str],
                sha256: Optional[str], until: Optional[str] = None) -> None:
    picked = [(k, v) for k, v in (("pdq", pdq), ("md5", md5), ("sha256", sha256)) if v]
    if (entry is None) == (len(picked) == 0) or len(picked) > 1:
        fail("give exactly one of --entry, --pdq, --md5, --sha256", EXIT_USAGE)
    try:
        if entry is not None:
            changed = _service().set_status(name, status, entry_id=entry, actor=_cli_actor(), until=until)
        else:
            changed = _service().set_status(name, status, signal_type=picked[0][0], value=picked[0][1],
                                            actor=_cli_actor(), until=until)
    except ConsentryError as exc:
        fail(str(exc))
    for e in changed:
        line = {"entry_id": e.id, "bank": e.bank, "signal_type": e.signal_type, "status": e.status}
        if e.disabled_until is not None:
            line["disabled_until"] = e.disabled_until.isoformat()
        print(json.dumps(line))


def _status_command(command: str, status: str, doc: str) -> None:
    def command_fn(
        name: str,
        entry: Optional[int] = typer.Option(None, "--entry", min=1, max=2**63 - 1, help="Entry id."),
        pdq: Optional[str] = typer.Option(None, "--pdq"),
        md5: Optional[str] = typer.Option(None, "--md5"),
        sha256: Optional[str] = typer.Option(None, "--sha256"),
    ) -> None:
        _set_status(name, status, entry, pdq, md5, sha256)

    command_fn.__doc__ = doc
    bank_app.command(command)(command_fn)


_status_command("withdraw", "withdrawn", "Withdraw an entry: it stops matching immediately.")
@bank_app.command("disable")
def bank_disable(
    name: str,
    entry: Optional[int] = typer.Option(None, "--entry", min=1, max=2**63 - 1, help="Entry id."),
    pdq: Optional[str] = typer.Option(None, "--pdq"),
    md5: Optional[str] = typer.Option(None, "--md5"),
    sha256: Optional[str] = typer.Option(None, "--sha256"),
    until: Optional[str] = typer.Option(None, "--until", help="ISO 8601 time (e.g. 2030-01-31T12:00:00Z): the "
                                        "entry matches again from then on by itself."),
) -> None:
    """Disable an entry (reversible with `bank enable`), for good or until a time."""
    _set_status(name, "disabled", entry, pdq, md5, sha256, until)



_status_command("enable", "active", "Re-enable a disabled or withdrawn entry.")


#: `consentry match --stdin` lines matched together (as one POST /v1/match/batch)
STDIN_BATCH = 1000


def match_cmd(
    paths: Optional[List[Path]] = typer.Argument(None, help="Files or directories to match."),
    bank: Optional[List[str]] = typer.Option(None, "--bank", "-b", help="Only these banks (repeatable)."),
    pdq: Optional[List[str]] = typer.Option(None, "--pdq", help="PDQ hash to look up (repeatable)."),
    md5: Optional[List[str]] = typer.Option(None, "--md5", help="MD5 to look up (repeatable)."),
    sha1: Optional[List[str]] = typer.Option(None, "--sha1", help="SHA-1 to look up (repeatable)."),
    sha256: Optional[List[str]] = typer.Option(None, "--sha256", help="SHA-256 to look up (repeatable)."),
    stdin: bool = typer.Option(False, "--stdin", help="Read queries from stdin: `consentry hash` JSON "
                                                      "lines or `pdq <hex>` / `md5 <hex>` / `sha1 <hex>` lines."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl (the only format for now)."),
) -> None:
    """Match files or hashes against the banks; one JSON object per query.

    Files are matched by MD5, SHA-1, SHA-256 and PDQ (photos) or vPDQ (videos). A photo whose PDQ
    quality is below 50 is matched by its exact hashes only: a warning on stderr says so.
    """
    from consentry.banks.matcher import Matcher, QuerySignals, query_from_content, query_from_hash_line
    from consentry.db import open_database
    from consentry.hashing import iter_files
    from consentry.media.content import Content
    from consentry.signals import PDQ_MIN_QUALITY, get_signal_type
    from consentry.signals.vpdq import usable_unique_frames

    if fmt != "jsonl":
        fail("only --format jsonl is supported", EXIT_USAGE)
    if not (paths or pdq or md5 or sha1 or sha256 or stdin):
        fail("give files, --pdq/--md5/--sha1/--sha256 values or --stdin", EXIT_USAGE)
    matcher = Matcher(open_database(), get_settings().signal_types).load()
    if bank:
        known = {b.name for b in matcher.banks.list_banks()}
        for b in bank:
            if b not in known:
                fail(f"no bank named {b!r}", EXIT_USAGE)
    limits = get_settings().limits
    failures = 0

    # --stdin lines are matched in batches (Matcher.match_many, the path of POST /v1/match/batch):
    # answered in order, up to STDIN_BATCH lines at a time
    pending: list[tuple[dict[str, Any], QuerySignals | None, str | None]] = []
    batching = False

    def emit(query: dict[str, Any], signals: QuerySignals | None, error: str | None) -> None:
        nonlocal failures
        if signals is not None and error is None:
            _warn_weak_query(query, signals)
        if batching:
            pending.append((query, signals, error))
            if len(pending) >= STDIN_BATCH:
                flush()
            return
        out: dict[str, Any] = {"query": query, "matches": [], "error": error}
        if signals is not None and error is None:
            outcome = matcher.match(signals, bank)
            out.update(outcome.to_dict())
        if error:
            failures += 1
        print(json.dumps(out), flush=True)

    def flush() -> None:
        nonlocal failures
        todo = [s for _q, s, e in pending if s is not None and e is None]
        outcomes = iter(matcher.match_many(todo, bank) if todo else [])
        lines = []
        for query, signals, error in pending:
            out: dict[str, Any] = {"query": query, "matches": [], "error": error}
            if signals is not None and error is None:
                out.update(next(outcomes).to_dict())
            if error:
                failures += 1
            lines.append(json.dumps(out))
        pending.clear()
        if lines:
            print("\n".join(lines), flush=True)

    def value_query(st: str, value: str) -> None:
        try:
            canonical = get_signal_type(st).parse(value)
        except ConsentryError as exc:
            emit({"signal_type": st, "value": value[:80]}, None, str(exc))
            return
        q = QuerySignals()
        if st == "pdq":
            q.pdq = [canonical]
        elif st == "vpdq":
            from consentry.signals.vpdq import parse_frames

            q.vpdq = parse_frames(canonical)
        else:
            q.exact[st] = canonical
        emit({"signal_type": st, "value": canonical if st != "vpdq" else "(frames)"}, q, None)

    def _warn_weak_query(query: dict[str, Any], signals: QuerySignals) -> None:
        """Same words as `bank add`: a weak PDQ (or a video with no usable frame) does not match."""
        what = query.get("path") or (f"line {query['line']}" if query.get("line") else "query")
        q = signals.pdq_quality
        if signals.pdq and q is not None and q < PDQ_MIN_QUALITY:
            err_console.print(f"warning: {what}: PDQ quality {q} < {PDQ_MIN_QUALITY}: not used to match "
                              "(matched by exact hashes only)", highlight=False, markup=False, soft_wrap=True)
        if signals.vpdq is not None and len(signals.vpdq) and not usable_unique_frames(signals.vpdq):
            err_console.print(f"warning: {what}: no vPDQ frame has quality {PDQ_MIN_QUALITY} or more: not used "
                              "to match (matched by exact hashes only)", highlight=False, markup=False,
                              soft_wrap=True)

    for st, values in (("pdq", pdq), ("md5", md5), ("sha1", sha1), ("sha256", sha256)):
        for v in values or []:
            value_query(st, v)
    for path in iter_files(paths or []):
        try:
            content = Content.from_path(path, limits)
            digests = content.digests(("md5", "sha1", "sha256"))  # one pass; query_from_content reuses it
            q = query_from_content(content)
            q.exact.setdefault("sha1", digests["sha1"])
            emit({"path": str(path), "content_type": content.content_type}, q, None)
        except ConsentryError as exc:
            emit({"path": str(path)}, None, str(exc))
    if stdin:
        batching = True
        for n, line in enumerate(sys.stdin, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                    emit({"path": obj.get("path"), "line": n}, query_from_hash_line(obj), obj.get("error"))
                except (json.JSONDecodeError, ConsentryError, AttributeError) as exc:
                    emit({"line": n}, None, f"bad JSON query line: {str(exc)[:100]}")
                continue
            parts = line.split()
            if len(parts) < 2:
                emit({"line": n}, None, "expected 'signal_type value'")
                continue
            try:
                value_query(parts[0].lower(), parts[1])
            except KeyError as exc:
                emit({"line": n}, None, str(exc.args[0]))
        flush()
    raise typer.Exit(EXIT_FAILED if failures else EXIT_OK)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically on start)."""
    from consentry.db import open_database
    from consentry.db.migrate import current

    db = open_database(upgrade=True)
    print(json.dumps({"database": db.engine.url.render_as_string(hide_password=True),
                      "revision": current(db.engine)}))


keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)


def _keystore():
    from consentry.db import open_database
    from consentry.keys import KeyStore

    return KeyStore(open_database())


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", "-r", help="admin, curator, matcher, moderator, auditor, submitter or partner."),
    name: str = typer.Option("", "--name", "-n", help="Who or what the key is for."),
    allow_url: bool = typer.Option(False, "--allow-url", help="The key may hash, match and add media by URL "
                                   "(hosts in CONSENTRY_URL_ALLOWLIST only)."),
) -> None:
    """Create an API key and print it once (it cannot be shown again)."""
    try:
        secret, info = _keystore().create(role, name, actor=_cli_actor(), allow_url=allow_url)
    except ConsentryError as exc:
        fail(str(exc), EXIT_USAGE)
    err_console.print(f"API key {info.id} ({info.role}) created; it will not be shown again:", highlight=False)
    print(secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    for k in _keystore().list():
        print(json.dumps(k.to_dict()))


@keys_app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="Key id (from `keys list`).")) -> None:
    """Revoke a key at once."""
    try:
        info = _keystore().revoke(key_id, actor=_cli_actor())
    except ConsentryError as exc:
        fail(str(exc))
    print(json.dumps(info.to_dict()))
