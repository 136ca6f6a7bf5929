"""Volume and faults (issue 13): ``consentry exchange pull`` killed with SIGKILL in the middle of a
multi-page pull, then pulled again, on SQLite and PostgreSQL.

The stand-in holds the request for page N (so pages before it are applied and nothing after it)
while the test kills the process; the next pull must not be blocked by the dead process's lock,
must resume from the saved checkpoint, and must end with every active hash present once, every
withdrawn hash withdrawn (including withdrawals applied before the kill) and the checkpoint moved
only once the run (StopNCII) or the range (NCMEC) completed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from exchange_standin import StandIn

SECRET = "test-instance-secret"
SUB, FETCH = "sub-key-" + "a" * 12, "fetch-fn-" + "b" * 12
NS = "https://hashsharing.ncmec.org/hashsharing/v2"
USER, PASSWORD = "esp-user", "pa55-" + "d" * 12


def hx(n: int = 64) -> str:
    return os.urandom(n // 2).hex()


@pytest.fixture
def env(db, db_url, tmp_path):
    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.exchanges.base import ExchangeStore

    home = tmp_path / "home"
    home.mkdir()
    store = ExchangeStore(BankService(db), Settings(home=home, secret_key=SECRET))
    environ = dict(os.environ, CONSENTRY_HOME=str(home), DATABASE_URL=db_url, CONSENTRY_SECRET_KEY=SECRET)
    return store, environ


def cli_pull(environ, name):
    return subprocess.Popen([sys.executable, "-m", "consentry", "exchange", "pull", name], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Gate:
    """Holds the request the route marks, until the test has killed the puller."""

    def __init__(self):
        self.reached, self.release, self.armed = threading.Event(), threading.Event(), True

    def hold(self):
        if self.armed:
            self.reached.set()
            self.release.wait(60)


def kill_at_gate(proc, gate, settled=None):
    """SIGKILL the pull held at ``gate``; first, if given, wait until ``settled()``: a group's write
    runs while the next page is fetched, so the page before the gate may still be landing."""
    assert gate.reached.wait(120), proc.communicate()[1] if proc.poll() is not None else "gate not reached"
    deadline = time.monotonic() + 60
    while settled is not None and not settled():
        assert time.monotonic() < deadline, "the writes before the gate did not land"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    gate.armed = False
    gate.release.set()


def finish(environ, name):
    proc = cli_pull(environ, name)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["busy"] is False  # the killed process's lock did not survive it
    return report


def saved_link(store, name) -> str:
    """The paging link in an exchange's saved checkpoint (``describe`` never shows it)."""
    from consentry.db.models_victims import ExchangeConfig

    with store.db.session() as s:
        state = s.scalar(select(ExchangeConfig.state).where(ExchangeConfig.name == name)) or {}
    return str(state.get("paging_url") or "")


def bank_counts(store, bank):
    from consentry.db.models import Bank, Change, Entry

    with store.db.session() as s:
        bank_id = s.scalar(select(Bank.id).where(Bank.name == bank))
        status = {v: st for v, st in s.execute(select(Entry.value, Entry.status).where(Entry.bank_id == bank_id))}
        dup = s.scalar(select(func.count()).select_from(
            select(Entry.signal_type, Entry.value).where(Entry.bank_id == bank_id)
            .group_by(Entry.signal_type, Entry.value).having(func.count() > 1).subquery()))
        adds: dict[str, int] = {}
        for v, n in s.execute(select(Entry.value, func.count()).join(Change, Change.entry_id == Entry.id)
                              .where(Entry.bank_id == bank_id, Change.op == "add").group_by(Entry.value)):
            adds[v] = int(n)
    return status, dup, adds


# ------------------------------------------------------------------------------------ StopNCII
def sn_rec(value, status="Active", ts=1700000000):
    return {"lastModtimestamp": ts, "signalType": "ImagePDQ", "hashValue": value, "hashStatus": status,
            "caseNumbers": {"c1": status}, "CSPFeedbacks": []}


# write_rows: "1" writes each page as it arrives (pages 1-3 in the bank at the kill); "1200" gathers
# pages: page 1 is written alone (page 2 withdraws some of its hashes), pages 2-3 (1060 records)
# still wait for more when page 4 is requested, so only page 1 is in the bank at the kill.
@pytest.mark.parametrize("write_rows,applied", [("1", 3), ("1200", 1)])
def test_stopncii_sigkill_mid_pull_resumes_without_duplicates_or_lost_withdrawals(env, write_rows, applied):
    from consentry.exchanges.programs import add_program, describe

    store, environ = env
    pages_n, per_page, kill_at = 6, 500, 4  # page 4 requested when killed
    active = [[hx() for _ in range(per_page)] for _ in range(pages_n)]
    early = active[0][:60]  # active on page 1, withdrawn on page 2 (before the kill)
    late = active[1][:60]  # active on page 2, withdrawn on page 6 (after the kill)
    late2 = active[4][:40]  # active on page 5, withdrawn on page 6 (both after the kill)
    pages = [[sn_rec(v, ts=1700000000 + k) for v in vals] for k, vals in enumerate(active, 1)]
    pages[1] += [sn_rec(v, "Withdrawn", 1700000002) for v in early]
    pages[5] += [sn_rec(v, "Withdrawn", 1700000006) for v in late + late2]
    final_ts = 1700009999
    gate = Gate()

    def route(req):
        assert req.path == "/FetchHashes"
        if req.query["startTimestamp"] == str(final_ts):  # nothing since the last complete run
            return 200, json.dumps({"count": 0, "nextPageToken": "", "nextSetTimestamp": final_ts,
                                    "hasMoreRecords": False, "hashRecords": []})
        k = int((req.query.get("nextPageToken") or "p1")[1:])
        if k == kill_at:
            gate.hold()
        more = k < pages_n
        body = {"count": len(pages[k - 1]), "nextPageToken": f"p{k + 1}" if more else "",
                "nextSetTimestamp": final_ts if not more else 1700000000 + k, "hasMoreRecords": more,
                "hashRecords": pages[k - 1]}
        return 200, json.dumps(body), {"Content-Type": "application/json"}

    with StandIn(route) as srv:
        add_program(store, "stopncii", "sn", "sn", json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH}),
                    options={"base_url": srv.url, "start_timestamp": "1000", "write_rows": write_rows})
        proc = cli_pull(environ, "sn")
        assert gate.reached.wait(120)
        n_seen = len(srv.seen)
        other = cli_pull(environ, "sn")  # while the first one runs: the lock is really held
        out, err = other.communicate(timeout=120)
        assert other.returncode == 0 and json.loads(out.strip().splitlines()[-1])["busy"] is True, err[-2000:]
        assert len(srv.seen) == n_seen
        kill_at_gate(proc, gate, lambda: len(bank_counts(store, "sn")[0]) == applied * per_page)
        d = describe(store, "sn")
        assert d["checkpoint"] == {} and d["last_success_at"] is None  # a run that did not complete
        status, dup, _ = bank_counts(store, "sn")
        assert all(status.get(v) == "active" for p in active[:applied] for v in p if applied < 2 or v not in early)
        if applied >= 2:
            assert all(status[v] == "withdrawn" for v in early)  # applied before the kill
        assert not any(v in status for p in active[applied:] for v in p)  # nothing of a group not written

        srv.seen.clear()
        report = finish(environ, "sn")
        first = srv.seen[0].query
        assert first["startTimestamp"] == "1000" and "nextPageToken" not in first  # from the checkpoint
        status, dup, adds = bank_counts(store, "sn")
        withdrawn = set(early + late + late2)
        assert dup == 0
        assert len(status) == pages_n * per_page
        assert {v for v, st in status.items() if st == "withdrawn"} == withdrawn
        assert all(status[v] == "active" for p in active for v in p if v not in withdrawn)
        # one change-log add per hash: the re-read page 1 did not bring back a hash withdrawn before
        # the kill (its Active snapshot is older than the withdrawal), not even until page 2
        assert all(adds[v] == 1 for v in status)
        for v in list(withdrawn)[:5]:
            assert store.banks.find_entry("sn", "pdq", v).status == "withdrawn"
        d = describe(store, "sn")
        assert d["checkpoint"]["next_set_timestamp"] == final_ts and d["last_error"] is None
        # the early ones stayed withdrawn when applied before the kill
        assert report["removed"] == len(late) + len(late2) + (len(early) if applied < 2 else 0)

        srv.seen.clear()
        report = finish(environ, "sn")  # the next run starts at the saved checkpoint
        assert srv.seen[0].query["startTimestamp"] == str(final_ts)
        assert report["added"] == 0 and report["removed"] == 0


# ------------------------------------------------------------------------------------ NCMEC
def nc_entries(body: str, next_: str = "") -> str:
    paging = f"<paging><next>{next_}</next></paging>" if next_ else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}">{body}{paging}</queryResult>'


def nc_image(eid, md5):
    return (f'<image><member id="42">M</member><timestamp>2024-01-01T00:00:00Z</timestamp><id>{eid}</id>'
            f"<classification>A1</classification><fingerprints><md5>{md5}</md5></fingerprints></image>")


def nc_deleted(eid):
    return (f'<deletedImage><member id="42">M</member><id>{eid}</id>'
            "<timestamp>2024-01-02T00:00:00Z</timestamp></deletedImage>")


# write_rows "800": pages 1-2 (850 records) are written together with page 2's checkpoint (the link
# to page 3); page 3 waits for more when page 4 is requested, so the pull resumes at page 3.
@pytest.mark.parametrize("write_rows,applied", [("1", 3), ("800", 2)])
def test_ncmec_sigkill_mid_next_chain_resumes_the_range_with_tombstones(env, write_rows, applied):
    from consentry.exchanges.programs import add_program, describe

    store, environ = env
    pages_n, per_page, kill_at = 6, 400, 4
    ids = [[f"img{k}-{i}" for i in range(per_page)] for k in range(pages_n)]
    md5 = {eid: hx(32) for p in ids for eid in p}
    early = ids[0][:50]  # on page 1, tombstoned on page 2 (before the kill)
    late = ids[1][:50]  # on page 2, tombstoned on page 6 (after the kill)
    bodies = [[nc_image(e, md5[e]) for e in p] for p in ids]
    bodies[1] += [nc_deleted(e) for e in early]
    bodies[5] += [nc_deleted(e) for e in late]
    gate = Gate()
    start = 1_600_000_000

    def route(req):
        if req.path == "/v2/status":
            return 200, (f'<?xml version="1.0"?><status xmlns="{NS}"><username>{USER}</username>'
                         '<member id="7">Us</member></status>')
        assert req.path == "/v2/entries"
        k = int(req.query.get("page") or 1)
        if "page" not in req.query and req.query.get("from") != "2020-09-13T12:26:40Z":
            return 200, nc_entries("")  # a later range: nothing new
        if k == kill_at:
            gate.hold()
        nxt = f"/v2/entries?page={k + 1}&amp;from=x" if k < pages_n else ""
        return 200, nc_entries(f'<images count="{len(bodies[k - 1])}">{"".join(bodies[k - 1])}</images>', nxt)

    with StandIn(route) as srv:
        add_program(store, "ncmec", "nc", "nc", f"{USER}:{PASSWORD}",
                    options={"base_url": srv.url, "start_timestamp": str(start), "write_rows": write_rows})
        proc = cli_pull(environ, "nc")
        kill_at_gate(proc, gate, lambda: saved_link(store, "nc").endswith(f"page={applied + 1}&from=x"))
        d = describe(store, "nc")
        assert d["checkpoint"]["to"] == start and d["checkpoint"]["paging_from"] == start  # range not done
        status, _, _ = bank_counts(store, "nc")
        assert all(status[md5[e]] == "withdrawn" for e in early)
        assert all(status[md5[e]] == "active" for p in ids[:applied] for e in p if e not in early)
        assert not any(md5[e] in status for p in ids[applied:] for e in p)  # nothing of a group not written

        srv.seen.clear()
        report = finish(environ, "nc")
        entries_seen = [s.raw_path for s in srv.seen if s.path == "/v2/entries"]
        # the link saved with the last page written, not page 1
        assert entries_seen[0] == f"/v2/entries?page={applied + 1}&from=x"
        status, dup, adds = bank_counts(store, "nc")
        gone = {md5[e] for e in early + late}
        assert dup == 0 and len(status) == pages_n * per_page
        assert {v for v, st in status.items() if st == "withdrawn"} == gone
        assert all(n == 1 for n in adds.values()) and len(adds) == pages_n * per_page
        assert report["removed"] == len(late)
        d = describe(store, "nc")
        assert d["checkpoint"]["to"] > start and "paging_url" not in json.dumps(d["checkpoint"])
        assert d["last_error"] is None


# ------------------------------------------------------------------------------------ gathered writes
def test_pull_gathers_pages_into_writes_and_moves_the_checkpoint_only_after_them(env, monkeypatch):
    """Pages are written in groups of ``write_rows`` records; a page withdrawing a hash an earlier
    gathered page adds starts a new group (the entry exists, withdrawn); each checkpoint is saved
    only after the write holding its page committed (what the client sees when it asks for a page)."""
    from consentry.banks.formats.records import HashRecord
    from consentry.exchanges import programs
    from consentry.exchanges.programs import Batch, add_program, describe, pull_program

    store, _ = env
    monkeypatch.setattr(programs, "PULL_WRITE_SECONDS", 1e9)  # sizes only, whatever the machine's speed
    add_program(store, "stopncii", "g", "g", json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH}),
                options={"base_url": "http://stand-in.invalid", "start_timestamp": "1000"})
    vals = [[hx() for _ in range(100)] for _ in range(5)]
    saved_when_asked: list = []

    class Pages:
        def fetch(self, state):
            for k, vs in enumerate(vals):
                cur = describe(store, "g")["checkpoint"].get("cursor")  # the checkpoint, then the bank
                saved_when_asked.append((cur, len(bank_counts(store, "g")[0])))
                recs = [HashRecord("pdq", v, "add", [], [], None, "x", {"last_modified": 1}) for v in vs]
                if k == 1:  # withdraws a hash page 0 adds: page 0 is written first
                    recs.append(HashRecord("pdq", vals[0][0], "remove", [], [], None, "x", {"last_modified": 2}))
                yield Batch(records=recs, rows=len(recs), state={"cursor": 10 + k})

        def close(self):
            pass

    writes: list[int] = []
    real = store.banks.add_records
    monkeypatch.setattr(store.banks, "add_records", lambda bank, recs, **kw: writes.append(len(recs)) or real(bank, recs, **kw))
    told: list[tuple[int, int]] = []  # what a progress line shows, after each write
    report = pull_program(store, "g", client=Pages(), write_rows=250,
                          progress=lambda r: told.append((r.added, r.removed)))
    assert writes == [100, 301, 100]  # page 0 | pages 1-3 (>= 250) | page 4
    assert told == [(100, 0), (400, 1), (500, 1)]
    # a group is written while the next pages are read, so when a page is asked for the saved
    # checkpoint may lag behind the groups handed over ([None, None, 10, 10, 13] at the latest),
    # and never runs ahead of what is in the bank
    latest = [-1, -1, 10, 10, 13]
    for k, (cur, n_in_bank) in enumerate(saved_when_asked):
        assert cur is None or cur <= latest[k]
        assert cur is None or n_in_bank >= 100 * (cur - 10 + 1)
    assert describe(store, "g")["checkpoint"]["cursor"] == 14
    status, dup, adds = bank_counts(store, "g")
    assert dup == 0 and len(status) == 500 and report.added == 500 and report.removed == 1
    assert status[vals[0][0]] == "withdrawn" and sum(st == "active" for st in status.values()) == 499
    assert store.banks.find_entry("g", "pdq", vals[0][0]).meta["withdrawn_last_modified"] == 2


def test_a_failed_write_stops_the_pull_before_any_later_write_or_checkpoint(env, monkeypatch):
    """Writes run behind the reading of pages: when one fails, no later group is written and the
    checkpoint stays at the last group that landed, so the next run reads the failed pages again."""
    from consentry.banks.formats.records import HashRecord
    from consentry.errors import ConsentryError
    from consentry.exchanges.programs import Batch, add_program, describe, pull_program

    store, _ = env
    add_program(store, "stopncii", "f", "f", json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH}),
                options={"base_url": "http://stand-in.invalid", "start_timestamp": "1000"})
    vals = [[hx() for _ in range(20)] for _ in range(6)]
    asked: list[int] = []

    class Pages:
        def fetch(self, state):
            for k, vs in enumerate(vals):
                asked.append(k)
                yield Batch(records=[HashRecord("pdq", v, "add", [], [], None, "x", {}) for v in vs],
                            rows=len(vs), state={"cursor": 10 + k})

        def close(self):
            pass

    writes: list[int] = []
    real = store.banks.add_records

    def add_records(bank, recs, **kw):
        writes.append(len(recs))
        if len(writes) == 2:
            raise ConsentryError("the database went away")
        return real(bank, recs, **kw)

    monkeypatch.setattr(store.banks, "add_records", add_records)
    with pytest.raises(ConsentryError, match="went away"):
        pull_program(store, "f", client=Pages(), write_rows=1)
    assert len(writes) == 2  # nothing written after the failure
    assert len(asked) <= 4  # at most one group behind: reading stopped soon after
    d = describe(store, "f")
    assert d["checkpoint"]["cursor"] == 10 and "went away" in d["last_error"]
    status, _, _ = bank_counts(store, "f")
    assert set(status) == set(vals[0])
    monkeypatch.setattr(store.banks, "add_records", lambda bank, recs, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # not one of ours: raised, and shown on the exchange
        pull_program(store, "f", client=Pages(), write_rows=1)
    d = describe(store, "f")
    assert d["last_error"] == "internal error: ZeroDivisionError" and d["checkpoint"]["cursor"] == 10


def test_cli_pull_shows_progress_at_a_terminal_and_only_json_in_a_pipe(env):
    """``consentry exchange pull`` at a terminal: a live line per write on stderr; piped: stdout
    holds the JSON report alone and stderr nothing."""
    import pty

    from consentry.exchanges.programs import add_program

    store, environ = env
    pages = [[sn_rec(hx()) for _ in range(50)] for _ in range(3)]

    def route(req):
        k = int((req.query.get("nextPageToken") or "p1")[1:])
        more = k < len(pages)
        return 200, json.dumps({"count": 50, "nextPageToken": f"p{k + 1}" if more else "", "nextSetTimestamp": 1800000000,
                                "hasMoreRecords": more, "hashRecords": pages[k - 1]}), {"Content-Type": "application/json"}

    with StandIn(route) as srv:
        for name in ("tty", "pipe"):
            add_program(store, "stopncii", name, name, json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH}),
                        options={"base_url": srv.url, "start_timestamp": "1000", "write_rows": "1"})
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "consentry", "exchange", "pull", "tty"], env=environ,
                                stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(60)
        os.close(leader)
        text = seen.decode(errors="replace")
        assert proc.returncode == 0, text[-2000:]
        assert "tty: 150 records read, 150 added, 0 removed" in text
        assert '"added": 150' in text
        piped = cli_pull(environ, "pipe")
        out, err = piped.communicate(timeout=120)
        assert piped.returncode == 0 and err == ""
        assert json.loads(out)["added"] == 150 and "records read" not in out
