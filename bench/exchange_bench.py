#!/usr/bin/env python3
"""Bank import at volume: ``consentry bank import`` (in-process ``BankService.add_records`` fed by
the format readers, exactly what the CLI runs) on SQLite and PostgreSQL, against a plain
``executemany`` INSERT of the same rows into ``entries`` in the same run (the baseline: what the
database costs with no checks, no idempotency and no change log).

Scenarios, each on a fresh database:

* ``te``        - N new entries from a ThreatExchange text file (``pdq <hex>``);
* ``te again``  - the same file imported again (idempotent: all unchanged);
* ``stopncii``  - N new entries from a StopNCII ``FetchHashes`` JSON file (case numbers, feedback tags);
* ``10% withdrawn`` - a StopNCII file of N records on top of the ``stopncii`` bank: 90% new hashes,
  10% ``Withdrawn`` for hashes already in the bank, interleaved;
* ``ncmec``     - N new entries from an NCMEC v2 XML file (one PDQ fingerprint per image);
* ``stopncii pull`` - ``consentry exchange pull`` of a StopNCII program serving N ``Active`` records
  then 1% of them ``Withdrawn``, in ``FetchHashes`` pages of 800 (the client's page size) with
  ``nextPageToken`` paging: the real client (JSON parsing, checks) over an in-process HTTP transport;
* ``ncmec pull``    - the same for an NCMEC v2 program: N images in ``/v2/entries`` pages of 1,000
  with ``<paging><next>`` links, then ``deletedImage`` tombstones for 1% of them.

A pull is checked after it ends: every record added once with its change-log row, every withdrawal
and tombstone in force, the checkpoint moved.

For each it prints the wall time, entries/s, the ratio to the baseline, the format reader's own time
(parse only, no database) and the process CPU time. Every file is random hex (benign by
construction) written to a temporary directory.

Usage: python bench/exchange_bench.py [--records 1000000] [--start-postgres | --postgres URL]
                                      [--no-sqlite]
                                      [--scenarios te,again,stopncii,withdraw,ncmec,snpull,ncpull]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


# ------------------------------------------------------------------ data files
def hexes(n: int, nbytes: int = 32) -> list[str]:
    raw = os.urandom(n * nbytes).hex()
    w = nbytes * 2
    return [raw[i * w:(i + 1) * w] for i in range(n)]


def write_te(path: Path, values: list[str]) -> None:
    with open(path, "w") as fh:
        fh.writelines(f"pdq {v}\n" for v in values)


def write_stopncii(path: Path, adds: list[str], withdraws: list[str] = ()) -> None:
    """One FetchHashes object; withdrawals interleaved (every tenth record when 10%)."""
    every = max(1, (len(adds) + len(withdraws)) // max(1, len(withdraws))) if withdraws else 0
    with open(path, "w") as fh:
        fh.write('{"hashRecords": [\n')
        ai = wi = 0
        first = True
        k = 0
        while ai < len(adds) or wi < len(withdraws):
            k += 1
            if wi < len(withdraws) and (ai >= len(adds) or (every and k % every == 0)):
                v, status = withdraws[wi], "Withdrawn"
                wi += 1
            else:
                v, status = adds[ai], "Active"
                ai += 1
            rec = {"lastModtimestamp": 1700000000 + k, "signalType": "ImagePDQ", "hashValue": v,
                   "hashStatus": status, "caseNumbers": {f"case-{k}": status},
                   "CSPFeedbacks": [{"source": "bench", "feedbackValue": "Blocked", "tags": ["bench"]}]}
            fh.write(("" if first else ",\n") + json.dumps(rec))
            first = False
        fh.write('\n], "count": %d, "hasMoreRecords": false}\n' % k)


def write_ncmec(path: Path, values: list[str]) -> None:
    with open(path, "w") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">\n'
                 f'<images count="{len(values)}" maxTimestamp="2024-01-01T00:00:00Z">\n')
        for i, v in enumerate(values):
            fh.write(f'<image><member id="42">Bench</member><timestamp>2024-01-01T00:00:00Z</timestamp>'
                     f'<id>img{i}</id><classification>A1</classification>'
                     f'<fingerprints><pdq>{v}</pdq></fingerprints></image>\n')
        fh.write('</images>\n</queryResult>\n')


# ------------------------------------------------------------------ exchange feeds (pulls)
SN_PAGE, NC_PAGE = 800, 1000


def stopncii_pages(values: list[str], withdraw: list[str]) -> list[bytes]:
    """``FetchHashes`` answers: ``values`` Active, then ``withdraw`` Withdrawn, 800 a page."""
    recs = [{"lastModtimestamp": 1700000000 + k, "signalType": "ImagePDQ", "hashValue": v, "hashStatus": "Active",
             "caseNumbers": {f"case-{k}": "Active"}, "CSPFeedbacks": [{"source": "bench", "feedbackValue": "Blocked",
                                                                       "tags": ["bench"]}]}
            for k, v in enumerate(values)]
    recs += [{"lastModtimestamp": 1800000000 + k, "signalType": "ImagePDQ", "hashValue": v,
              "hashStatus": "Withdrawn", "caseNumbers": {f"case-w{k}": "Withdrawn"}, "CSPFeedbacks": []}
             for k, v in enumerate(withdraw)]
    n = (len(recs) + SN_PAGE - 1) // SN_PAGE
    return [json.dumps({"count": len(recs[i * SN_PAGE:(i + 1) * SN_PAGE]), "nextPageToken": f"p{i + 1}" if i + 1 < n else "",
                        "nextSetTimestamp": 1900000000, "hasMoreRecords": i + 1 < n,
                        "hashRecords": recs[i * SN_PAGE:(i + 1) * SN_PAGE]}).encode() for i in range(n)]


NC_NS = "https://hashsharing.ncmec.org/hashsharing/v2"


def ncmec_pages(values: list[str], tombstoned: int) -> list[bytes]:
    """``/v2/entries`` answers: an image per value, then ``deletedImage`` for the first ``tombstoned``."""
    items = [f'<image><member id="42">Bench</member><timestamp>2024-01-01T00:00:00Z</timestamp><id>img{i}</id>'
             f'<classification>A1</classification><fingerprints><pdq>{v}</pdq></fingerprints></image>'
             for i, v in enumerate(values)]
    items += [f'<deletedImage><member id="42">Bench</member><id>img{i}</id>'
              '<timestamp>2024-01-02T00:00:00Z</timestamp></deletedImage>' for i in range(tombstoned)]
    n = (len(items) + NC_PAGE - 1) // NC_PAGE
    out = []
    for i in range(n):
        part = items[i * NC_PAGE:(i + 1) * NC_PAGE]
        nxt = f"<paging><next>/v2/entries?page={i + 1}</next></paging>" if i + 1 < n else ""
        out.append((f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NC_NS}">'
                    f'<images count="{len(part)}">{"".join(part)}</images>{nxt}</queryResult>').encode())
    return out


def do_pull(db, tmp: Path, kind: str, pages: list[bytes]):
    """``pull_program`` (what ``consentry exchange pull`` runs) with the real client over an in-process
    transport serving ``pages``; returns (seconds, cpu seconds, PullReport, store)."""
    import httpx

    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.exchanges.base import ExchangeStore
    from consentry.exchanges.programs import add_program, client_for_program, pull_program

    home = tmp / ("home-" + uuid.uuid4().hex[:8])
    home.mkdir()
    store = ExchangeStore(BankService(db), Settings(home=home, secret_key="bench-secret"))
    if kind == "stopncii":
        creds = json.dumps({"subscription_key": "s" * 16, "fetch_function_key": "f" * 16})
    else:
        creds = "bench-user:" + "p" * 16

    def route(req: httpx.Request) -> httpx.Response:
        if kind == "stopncii":
            k = int((req.url.params.get("nextPageToken") or "p0")[1:])
            return httpx.Response(200, content=pages[k], headers={"Content-Type": "application/json"})
        if req.url.path.endswith("/v2/status"):
            return httpx.Response(200, content=f'<status xmlns="{NC_NS}"><member id="7">Us</member></status>'.encode())
        return httpx.Response(200, content=pages[int(req.url.params.get("page") or 0)])

    add_program(store, kind, "x", "x", creds, options={"base_url": "http://bench.invalid/api", "start_timestamp": "1000"})
    client = client_for_program(store, "x", transport=httpx.MockTransport(route))
    t0, c0 = time.perf_counter(), time.process_time()
    report = pull_program(store, "x", client=client)
    return time.perf_counter() - t0, time.process_time() - c0, report, store


def bank_state(db, bank: str) -> tuple[int, int, int]:
    """(active entries, withdrawn entries, change-log rows with an entry) of ``bank``."""
    from sqlalchemy import text

    with db.engine.connect() as c:
        st = dict(c.execute(text("SELECT e.status, count(*) FROM entries e JOIN banks b ON b.id = e.bank_id "
                                 "WHERE b.name = :n GROUP BY e.status"), {"n": bank}).all())
    return st.get("active", 0), st.get("withdrawn", 0), changes_for(db, bank)


# ------------------------------------------------------------------ databases
def start_postgres() -> tuple[str, callable]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="consentry-bench-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(prefix + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                             "-E", "UTF8", "--no-sync", "--locale=C"], check=True, capture_output=True)
    # durable settings left at their defaults except fsync, as a throw-away bench server
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=512MB " \
           f"-c max_wal_size=4GB"
    subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w",
                             "-t", "60", "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


class Fresh:
    """A fresh, migrated database per scenario (a SQLite file, or a new PostgreSQL database)."""

    def __init__(self, kind: str, server: str | None, tmp: Path):
        self.kind, self.server, self.tmp = kind, server, tmp

    def make(self):
        from consentry.db import Database

        if self.kind == "sqlite":
            url = f"sqlite:///{self.tmp / ('b' + uuid.uuid4().hex[:8] + '.db')}"
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            name = "bench_" + uuid.uuid4().hex[:10]
            u = make_url(self.server)
            with psycopg.connect(f"host={u.host} port={u.port} user={u.username} dbname={u.database}",
                                 autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = u.set(database=name).render_as_string(hide_password=False)
        db = Database(url)
        db.upgrade()
        return db


# ------------------------------------------------------------------ measurements
def baseline(db, values: list[str], batch: int = 50_000) -> float:
    """Plain executemany INSERT of the same rows into entries, committed every ``batch``."""
    from consentry.banks.service import BankService
    from consentry.db.models import utcnow

    bank_id = BankService(db).create_bank("baseline", "custom").id
    now = utcnow()
    pg = db.dialect == "postgresql"
    stamp = now if pg else now.strftime("%Y-%m-%d %H:%M:%S.%f")
    mark = "%s" if pg else "?"
    sql = ("INSERT INTO entries (bank_id, signal_type, value, value_key, quality, status, source, "
           "external_ids, tags, category, meta, added_by, added_at, updated_at) VALUES ("
           + ",".join([mark] * 14) + ")")
    raw = db.engine.raw_connection()
    try:
        t0 = time.perf_counter()
        cur = raw.cursor()
        for i in range(0, len(values), batch):
            cur.executemany(sql, [(bank_id, "pdq", v, v, None, "active", "te", "[]", "[]", None, "{}", None,
                                   stamp, stamp) for v in values[i:i + batch]])
            raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()


def parse_only(fmt: str, path: Path) -> float:
    from consentry.banks.formats import get_format

    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        for _ in get_format(fmt).read(io.BufferedReader(fh, 1 << 16)):
            pass
    return time.perf_counter() - t0


def do_import(db, bank: str, fmt: str, path: Path):
    from consentry.banks.formats import get_format
    from consentry.banks.service import BankService

    svc = BankService(db)
    t0, c0 = time.perf_counter(), time.process_time()
    with open(path, "rb") as fh:
        report = svc.add_records(bank, get_format(fmt).read(io.BufferedReader(fh, 1 << 16)))
    return time.perf_counter() - t0, time.process_time() - c0, report


def changes_for(db, bank: str) -> int:
    from sqlalchemy import text

    with db.engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM changes c JOIN banks b ON b.id = c.bank_id "
                              "WHERE b.name = :n AND c.entry_id IS NOT NULL"), {"n": bank}).scalar_one()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="a PostgreSQL server URL (a database is created per scenario)")
    ap.add_argument("--start-postgres", action="store_true", help="start a throw-away PostgreSQL server")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--scenarios", default="te,again,stopncii,withdraw,ncmec,snpull,ncpull")
    args = ap.parse_args()
    n = args.records
    wanted = set(args.scenarios.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="consentry-exchange-bench-"))
    stop = None
    server = args.postgres
    if args.start_postgres and not server:
        server, stop = start_postgres()
    try:
        print(f"generating {n:,} records of each kind in {tmp} ...", flush=True)
        values, more = hexes(n), hexes(n - n // 10)
        files = {"te": tmp / "list.te"}
        write_te(files["te"], values)
        if wanted & {"stopncii", "withdraw"}:
            files["stopncii"] = tmp / "list.json"
            write_stopncii(files["stopncii"], values)
            files["withdraw"] = tmp / "withdraw.json"
            write_stopncii(files["withdraw"], more, values[: n // 10])
        if "ncmec" in wanted:
            files["ncmec"] = tmp / "list.xml"
            write_ncmec(files["ncmec"], values)
        parse = {k: parse_only("te" if k == "te" else "ncmec" if k == "ncmec" else "stopncii", p)
                 for k, p in files.items()}
        w = max(1, n // 100)  # withdrawals / tombstones in a pull
        feeds = {}
        if "snpull" in wanted:
            feeds["stopncii"] = stopncii_pages(values, values[:w])
        if "ncpull" in wanted:
            feeds["ncmec"] = ncmec_pages(values, w)
        dbs = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if server else [])
        rows = []
        for kind in dbs:
            fresh = Fresh(kind, server, tmp)
            db = fresh.make()
            base = baseline(db, values)
            db.dispose()
            rows.append((kind, "executemany baseline", n, base, None, None, "-"))
            print(f"{kind}: baseline {n / base:,.0f} rows/s", flush=True)

            def run(label, key, fmt, db, bank, check):
                dt, cpu, rep = do_import(db, bank, fmt, files[key])
                check(rep)
                rows.append((kind, label, rep.records, dt, parse[key], cpu, rep.to_dict()))
                print(f"{kind}: {label} {rep.records / dt:,.0f} records/s {rep.to_dict()}", flush=True)

            from consentry.banks.service import BankService

            if wanted & {"te", "again"}:
                db = fresh.make()
                BankService(db).create_bank("te", "custom")
                run("te", "te", "te", db, "te", lambda r: r.added == n or sys.exit(f"te: {r.to_dict()}"))
                assert changes_for(db, "te") == n, "every added entry has its change-log row"
                if "again" in wanted:
                    run("te again (all unchanged)", "te", "te", db, "te",
                        lambda r: (r.added, r.unchanged) == (0, n) or sys.exit(f"again: {r.to_dict()}"))
                db.dispose()
            if wanted & {"stopncii", "withdraw"}:
                db = fresh.make()
                BankService(db).create_bank("s", "ncii")
                run("stopncii", "stopncii", "stopncii", db, "s", lambda r: r.added == n or sys.exit("stopncii"))
                if "withdraw" in wanted:
                    run("stopncii 90% new + 10% withdrawn", "withdraw", "stopncii", db, "s",
                        lambda r: (r.added, r.removed) == (n - n // 10, n // 10) or sys.exit(f"w: {r.to_dict()}"))
                db.dispose()
            if "ncmec" in wanted:
                db = fresh.make()
                BankService(db).create_bank("n", "csam")
                run("ncmec", "ncmec", "ncmec", db, "n", lambda r: r.added == n or sys.exit("ncmec"))
                db.dispose()
            for kind_pull, feed in feeds.items():
                db = fresh.make()
                dt, cpu, rep, store = do_pull(db, tmp, kind_pull, feed)
                active, withdrawn, logged = bank_state(db, "x")
                from consentry.exchanges.programs import describe

                ok = (rep.added, rep.removed, active, withdrawn, logged) == (n, w, n - w, w, n + w)
                if not ok or describe(store, "x")["checkpoint"].get("cursor") in (None, 0, 1000):
                    sys.exit(f"{kind_pull} pull: {rep.__dict__} active={active} withdrawn={withdrawn} changes={logged}")
                recs = n + w
                rows.append((kind, f"{kind_pull} pull ({len(feed)} pages, {w:,} withdrawn)", recs, dt, None, cpu,
                             {"added": rep.added, "removed": rep.removed}))
                print(f"{kind}: {kind_pull} pull {recs / dt:,.0f} records/s added={rep.added} removed={rep.removed}",
                      flush=True)
                db.dispose()
        print()
        print(f"{'database':<11}{'scenario':<36}{'records':>10}{'seconds':>9}{'records/s':>11}"
              f"{'x baseline':>11}{'parse s':>9}{'cpu s':>8}")
        bases = {r[0]: r[3] for r in rows if r[1] == "executemany baseline"}
        for kind, label, recs, dt, ps, cpu, _ in rows:
            ratio = dt / bases[kind]
            print(f"{kind:<11}{label:<36}{recs:>10,}{dt:>9.1f}{recs / dt:>11,.0f}{ratio:>11.2f}"
                  f"{'' if ps is None else f'{ps:.1f}':>9}{'' if cpu is None else f'{cpu:.1f}':>8}")
        print("\n'x baseline': import time / executemany time for the same number of rows (lower is better);"
              "\n'parse s': the format reader alone, no database; 'cpu s': process CPU during the import."
              f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        if stop:
            stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
