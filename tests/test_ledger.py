"""The content ledger and the sweep (issue 14), on SQLite and PostgreSQL.

Content is ledgered first; a hash added to a bank afterwards is found by the sweep (a rotated
copy too), notified once to a real webhook receiver with content ids and URLs, never again after
a second sweep or a restart; deleted content is not matched; ``consentry sweep --bank`` re-sweeps;
``consentry content import`` is idempotent. Images are benign drawings (tests/imagegen.py).
"""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from consentry.banks.service import BankService
from consentry.ledger import ContentRecord, LedgerService, Sweeper
from consentry.ledger.follow import ChangeFollower
from consentry.media.content import Content
from consentry.policy.rules import RuleSet
from consentry.review.webhooks import WebhookDispatcher
from imagegen import encode, scene
from test_webhooks import SECRET, Receiver, _wait

RULES = """
sinks:
  ts: {url: "%s", secret_env: CONSENTRY_TEST_LEDGER_SECRET, max_attempts: 2, backoff_s: 0.01}
rules:
  - name: notify-copies
    when: {match: {bank_kind: [ncii]}}
    actions: [{webhook: ts}]
"""


def _photo(seed: int, rotate: bool = False) -> Content:
    img = scene(256, 256, seed=seed)
    if rotate:
        img = img.rotate(90, expand=True)
    from consentry.config import MediaLimits

    return Content.from_bytes(encode(img, "PNG"), MediaLimits())


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("CONSENTRY_TEST_LEDGER_SECRET", SECRET)
    r = Receiver()
    yield r
    r.close()


def _sweeper(db, tmp_path, rules) -> tuple[Sweeper, WebhookDispatcher]:
    wh = WebhookDispatcher(db, lambda: rules.sinks)
    return Sweeper(db, home=tmp_path, rules=lambda: rules, webhooks=wh), wh


def _payloads(receiver) -> list[dict]:
    return [json.loads(r["body"]) for r in receiver.requests]


def test_a_new_bank_hash_finds_ledgered_copies_once(db, tmp_path, receiver):
    ledger, banks = LedgerService(db), BankService(db)
    original = _photo(1)
    ledger.write(ContentRecord.from_content(original, content_id="post-1", url="https://ex.org/p/1",
                                            uploader_id="u-1", surface="feed"))
    ledger.write(ContentRecord.from_content(_photo(1, rotate=True), content_id="post-2",
                                            url="https://ex.org/p/2", uploader_id="u-2"))
    ledger.write(ContentRecord.from_content(_photo(7), content_id="other", url="https://ex.org/p/3"))
    rules = RuleSet.from_yaml(RULES % receiver.url)
    sweeper, wh = _sweeper(db, tmp_path, rules)
    assert sweeper.follow().hits == []  # nothing in any bank yet

    banks.create_bank("victims", "ncii")
    pdq = ContentRecord.from_content(original, content_id="x").pdq
    entry, _ = banks.add_entry("victims", "pdq", pdq, quality=100)
    report = sweeper.follow()
    found = {h.content.content_id: h for h in report.hits}
    assert set(found) == {"post-1", "post-2"}  # the rotated copy through its dihedral variants
    assert found["post-1"].transform == "original" and found["post-2"].transform != "original"
    assert all(h.new and h.entry_id == entry.id for h in report.hits)
    assert report.webhooks == 1
    wh.run_once()  # (the dispatcher's own thread, started by the sweep, may deliver first)
    _wait(lambda: receiver.requests)
    (payload,) = _payloads(receiver)
    assert receiver.requests[0]["valid"] and payload["type"] == "content.matched"
    got = {c["content_id"]: c for c in payload["data"]["contents"]}
    assert set(got) == {"post-1", "post-2"}
    assert got["post-1"]["url"] == "https://ex.org/p/1" and got["post-1"]["uploader_id"] == "u-1"
    assert got["post-2"]["matches"][0]["entry_id"] == entry.id

    # a second sweep, a re-sweep of the bank and a restarted sweeper notify nobody again
    assert sweeper.follow().new_hits == []
    restarted, wh2 = _sweeper(db, tmp_path, rules)
    assert restarted.follow().new_hits == []
    again = restarted.sweep_bank("victims")
    assert len(again.hits) == 2 and again.new_hits == [] and again.webhooks == 0
    wh.run_once()
    wh2.run_once()
    assert len(receiver.requests) == 1 and not [d for d in wh.list() if d.status != "delivered"]
    assert {h["content_id"] for h in ledger.hits(bank="victims")} == {"post-1", "post-2"}

    # deleted content is out of every later sweep
    ledger.delete("post-1")
    sha = ContentRecord.from_content(original, content_id="x").sha256
    banks.create_bank("exact", "ncii")
    banks.add_entry("exact", "sha256", sha)
    assert [c.content.content_id for c in restarted.find_copies(pdq=[pdq])] == ["post-2"]
    assert restarted.follow().hits == []
    assert ledger.resolve("https://ex.org/p/2").content_id == "post-2"
    assert ledger.resolve("https://ex.org/p/1") is None
    wh.stop()
    wh2.stop()


def test_withdrawn_and_allow_bank_entries_do_not_sweep(db, tmp_path):
    ledger, banks = LedgerService(db), BankService(db)
    ledger.write(ContentRecord.from_dict({"content_id": "c", "sha256": "ab" * 32, "url": "https://ex.org/c"}))
    banks.create_bank("allow", "allow")
    banks.add_entry("allow", "sha256", "ab" * 32)
    banks.create_bank("v", "ncii")
    banks.add_entry("v", "sha256", "ab" * 32)
    banks.withdraw("v", signal_type="sha256", value="ab" * 32)
    sweeper = Sweeper(db, home=tmp_path)
    assert sweeper.follow().hits == []
    banks.set_status("v", "active", signal_type="sha256", value="ab" * 32)  # re-enabled: an 'add'
    assert [h.content.content_id for h in sweeper.follow().hits] == ["c"]


def test_an_empty_ledger_is_swept_without_reading_the_entries(db, tmp_path, monkeypatch):
    """A service started on a large fresh bank with nothing hosted on record has nothing to sweep:
    the entries are not loaded; once content is on record, new entries are swept as before."""
    banks = BankService(db)
    banks.create_bank("v", "ncii")
    banks.add_entry("v", "sha256", "cd" * 32)
    sweeper = Sweeper(db, home=tmp_path)

    def refuse(ids):
        raise AssertionError("entries read for an empty ledger")

    monkeypatch.setattr(sweeper.banks, "entries_by_id", refuse)
    report = sweeper.follow()
    assert report.hits == [] and report.changes >= 1 and report.cursor > 0
    monkeypatch.undo()
    LedgerService(db).write(ContentRecord.from_dict({"content_id": "c", "sha256": "ef" * 32, "url": "https://ex.org/c"}))
    banks.add_entry("v", "sha256", "ef" * 32)
    assert [h.content.content_id for h in sweeper.follow().hits] == ["c"]


def test_follower_waits_for_a_late_commit_and_never_skips():
    rows: list[dict] = []

    def fetch(after, limit):
        return [r for r in sorted(rows, key=lambda r: r["cursor"]) if r["cursor"] > after][:limit]

    f = ChangeFollower(fetch, 0)
    rows += [{"cursor": 1, "at": None}, {"cursor": 3, "at": None}]  # 2 not committed yet
    assert [r["cursor"] for r in f.poll()] == [1, 3]
    assert f.cursor == 1  # the durable watermark stays below the gap
    rows.append({"cursor": 2, "at": None})
    assert [r["cursor"] for r in f.poll()] == [2]
    assert f.poll() == [] and f.cursor == 3
    resumed = ChangeFollower(fetch, 1)  # a restart from a stored watermark re-reads, skips nothing
    assert [r["cursor"] for r in resumed.poll()] == [2, 3]


def test_cli_import_is_idempotent_and_sweep_bank_resweeps(db_url, tmp_path, monkeypatch, request):
    from consentry.cli import app

    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    from consentry.config import set_settings

    set_settings(None)  # re-read the environment above
    request.addfinalizer(lambda: set_settings(None))
    lines = [json.dumps({"content_id": f"c{i}", "url": f"https://ex.org/{i}", "sha256": f"{i:064x}"})
             for i in range(1, 301)]
    src = tmp_path / "catalogue.jsonl"
    src.write_text("\n".join(lines + ["not json"]) + "\n")
    runner = CliRunner()
    first = runner.invoke(app, ["content", "import", str(src)])
    assert first.exit_code == 0, first.output
    r1 = json.loads(first.stdout)
    assert (r1["read"], r1["written"], r1["error_count"]) == (301, 300, 1)
    r2 = json.loads(runner.invoke(app, ["content", "import", str(src)]).stdout)
    assert (r2["written"], r2["unchanged"]) == (0, 300)
    csv_src = tmp_path / "more.csv"
    csv_src.write_text("content_id,url,sha256\nc1,https://ex.org/1-moved," + f"{1:064x}" + "\n")
    r3 = json.loads(runner.invoke(app, ["content", "import", str(csv_src)]).stdout)
    assert r3["written"] == 1  # a changed URL is an update

    from consentry.db import Database

    database = Database(db_url)
    try:
        banks = BankService(database)
        banks.create_bank("victims", "ncii")
        banks.add_entry("victims", "sha256", f"{5:064x}")
        banks.add_entry("victims", "sha256", f"{1:064x}")
        out = runner.invoke(app, ["sweep", "--bank", "victims"])
        assert out.exit_code == 0, out.output
        rep = json.loads(out.stdout)
        assert rep["hits"] == 2 and rep["new_hits"] == 2
        assert {f["url"] for f in rep["found"]} == {"https://ex.org/5", "https://ex.org/1-moved"}
        rep2 = json.loads(runner.invoke(app, ["sweep", "--bank", "victims"]).stdout)
        assert rep2["hits"] == 2 and rep2["new_hits"] == 0
        rep3 = json.loads(runner.invoke(app, ["sweep"]).stdout)  # the change log: same hits, not new
        assert rep3["new_hits"] == 0
        shown = json.loads(runner.invoke(app, ["content", "show", "https://ex.org/5"]).stdout)
        assert shown["content"]["content_id"] == "c5" and len(shown["hits"]) == 1
        bad = runner.invoke(app, ["sweep", "--bank", "nope"])
        assert bad.exit_code == 1 and "Traceback" not in bad.output
    finally:
        database.dispose()


def test_content_routes(db, tmp_path):
    from fastapi.testclient import TestClient

    from consentry.config import Settings
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    app = create_app(Settings(home=tmp_path), db, background=False)
    keys = KeyStore(db)
    up, _ = keys.create("uploader")
    mod, _ = keys.create("moderator")
    matcher, _ = keys.create("matcher")
    h = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
    with TestClient(app) as c:
        body = {"content_id": "p-9", "url": "https://ex.org/p/9", "sha256": "cd" * 32, "uploader_id": "u"}
        assert c.post("/v1/content", json=body, headers=h(matcher)).status_code == 403
        r = c.post("/v1/content?match=true", json=body, headers=h(up))
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True and r.json()["match"]["matches"] == []
        assert c.post("/v1/content", json=body, headers=h(up)).json()["changed"] is False
        assert c.post("/v1/content", json={"content_id": "x"}, headers=h(up)).status_code == 422
        png = io.BytesIO(encode(scene(128, 128, seed=3), "PNG"))
        r = c.post("/v1/content/upload", data={"content_id": "p-10", "url": "https://ex.org/p/10"},
                   files={"file": ("a.png", png, "image/png")}, headers=h(up))
        assert r.status_code == 200 and r.json()["content"]["pdq_variants"] == 7
        BankService(db).create_bank("v", "ncii")
        BankService(db).add_entry("v", "sha256", "cd" * 32)
        rep = app.state.sweeper.follow()
        assert [x.content.content_id for x in rep.new_hits] == ["p-9"]
        got = c.get("/v1/content/p-9", headers=h(mod)).json()
        assert got["hits"][0]["bank"] == "v"
        assert c.get("/v1/sweep/hits", headers=h(mod)).json()["hits"][0]["content_id"] == "p-9"
        assert c.delete("/v1/content/p-9", headers=h(mod)).status_code == 403
        assert c.delete("/v1/content/p-9", headers=h(up)).json()["status"] == "deleted"
        assert c.delete("/v1/content/nope", headers=h(up)).status_code == 404


def test_import_in_many_batches_written_in_order_behind_the_reader(db):
    """Small batches, so the writer thread runs behind the reader: every content written once with
    one change row, in order (a later record for the same content id wins, across batches), bad
    records counted, and a second import of the same stream writes nothing."""
    from sqlalchemy import func, select

    from consentry.db.models_ledger import LedgerChange, LedgerContent

    ledger = LedgerService(db)
    pdqs = [f"{i:064x}" for i in range(1, 251)]

    def stream():
        for i, h in enumerate(pdqs):
            yield {"content_id": f"c{i}", "pdq": h, "url": f"https://example.org/{i}"}
            if i == 100:
                yield {"content_id": "", "pdq": h}  # a bad record: counted, skipped
        for i in range(7, 250, 50):  # moved since, in later batches: these win
            yield {"content_id": f"c{i}", "pdq": pdqs[i], "url": f"https://example.org/moved/{i}"}
    batches = []
    report = ledger.import_stream(stream(), batch=16, on_batch=lambda r: batches.append(r.written + r.unchanged))
    assert (report.read, report.error_count) == (256, 1)
    assert report.written + report.unchanged == 255 and len(batches) == 16
    assert batches == sorted(batches)  # counted batch by batch, in order
    assert ledger.get("c57").url == "https://example.org/moved/57"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerContent)) == 250
        logged = list(s.scalars(select(LedgerChange.content_pk).order_by(LedgerChange.id)))
    assert len(logged) == report.written == 255  # one change per write: a moved content twice
    again = ledger.import_stream(stream(), batch=16)
    assert again.read == 256 and again.written == 10  # the 5 moved ones: back to the old URL, then moved
    assert ledger.get("c57").url == "https://example.org/moved/57"


def test_postgres_batches_stage_without_a_notice_each(db, db_url):
    """Each PostgreSQL batch stages through a temporary table; it is created once per session, not
    re-declared with IF NOT EXISTS every batch (a NOTICE from the server each time)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the staging table is PostgreSQL's")
    from sqlalchemy import event

    notices: list[str] = []
    db.engine.dispose()
    event.listen(db.engine, "connect",
                 lambda dbapi_conn, _rec: dbapi_conn.add_notice_handler(lambda d: notices.append(d.message_primary)))
    records = ({"content_id": f"n{i}", "pdq": f"{i + 1:064x}"} for i in range(40))
    report = LedgerService(db).import_stream(records, batch=8)
    assert report.written == 40
    from consentry.banks.formats.records import HashRecord

    BankService(db).create_bank("stage-notices")
    for _ in range(3):  # the first adds by COPY; the next ones meet their values: staged and merged
        BankService(db).add_records("stage-notices", [HashRecord("pdq", f"{i + 7:064x}") for i in range(3)])
    assert not [n for n in notices if "already exists" in n], notices


def test_digest_and_url_lookups_use_the_prefix_indexes_and_compare_whole_values(db, db_url):
    """Migration 0016: the ledger's lookup indexes hold 16-digit prefixes. Two contents sharing a
    prefix are told apart by the whole value; a tombstoned content imported again is revived with
    one change row; on SQLite every lookup searches its index (a plan that scans the table would
    make each notice and sweep read the whole ledger)."""
    from sqlalchemy import event, func, select

    from consentry.db.models_ledger import LedgerChange

    ledger = LedgerService(db)
    same = "ab" * 8  # the shared prefix
    ledger.write_many([
        ContentRecord.from_dict({"content_id": "a", "sha256": same + "0" * 48, "md5": same + "1" * 16,
                                 "url": "https://ex.org/a"}),
        ContentRecord.from_dict({"content_id": "b", "sha256": same + "f" * 48, "md5": same + "2" * 16,
                                 "url": "https://ex.org/b"}),
    ] + [ContentRecord.from_dict({"content_id": f"x{i}", "sha256": f"{i:064x}", "url": f"https://ex.org/x/{i}"})
         for i in range(200)])
    plans: list[str] = []
    if db.dialect == "sqlite":
        def explain(conn, cursor, statement, params, context, executemany):
            if statement.lstrip().startswith("SELECT") and "ledger_content" in statement:
                plans.append(" ".join(r[3] for r in cursor.connection.execute("EXPLAIN QUERY PLAN " + statement,
                                                                               params)))
        event.listen(db.engine, "before_cursor_execute", explain)
    try:
        assert {k: [c.content_id for c in v] for k, v in ledger.by_digest("sha256", [same + "f" * 48]).items()} \
            == {same + "f" * 48: ["b"]}
        assert [c.content_id for c in ledger.by_digest("md5", [same + "1" * 16])[same + "1" * 16]] == ["a"]
        assert ledger.by_digest("sha256", [same + "e" * 48]) == {}
        assert ledger.resolve("https://ex.org/x/7").content_id == "x7"
        assert ledger.resolve("https://ex.org/nowhere") is None
    finally:
        if plans:
            event.remove(db.engine, "before_cursor_execute", explain)
    if db.dialect == "sqlite":
        lookups = [p for p in plans if "prefix" in p or "SCAN" in p]
        assert len(lookups) == 5 and all("SEARCH" in p and "_prefix" in p for p in lookups), plans

    ledger.delete("x3")
    with db.session() as s:
        before = s.scalar(select(func.count()).select_from(LedgerChange))
    report = ledger.write_many([ContentRecord.from_dict({"content_id": "x3", "sha256": f"{3:064x}",
                                                         "url": "https://ex.org/x/3"}),
                                ContentRecord.from_dict({"content_id": "x4", "sha256": f"{4:064x}",
                                                         "url": "https://ex.org/x/4"})])
    assert (report.written, report.unchanged) == (1, 1)
    assert ledger.get("x3").status == "active"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerChange)) == before + 1


@pytest.mark.parametrize("child", [False, True])
def test_jsonl_import_in_chunks_in_process_and_in_a_child(db, monkeypatch, child):
    """``consentry content import`` of JSON Lines: read in chunks of whole lines (here 1 KB, so a
    few hundred records make many), checked in a child process or in this one with the same
    result: bad lines named by line number (not JSON, not UTF-8, a wrong field, an over-long line),
    blank lines and a byte-order mark skipped, a last line without a newline read, the last
    record of a repeated content id winning across chunks and batches, and a second import of the
    same bytes writing nothing but the content that moves within the file (back, then moved again)."""
    from consentry.ledger import records

    monkeypatch.setattr(records, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 4096)
    lines = [json.dumps({"content_id": f"c{i}", "pdq": f"{i + 1:064x}", "url": f"https://ex.org/{i}"})
             for i in range(300)]
    lines[10] = "{not json"
    lines[20] = json.dumps({"content_id": "bad", "pdq": "xyz"})
    lines[30] = ""
    lines[40] = json.dumps({"content_id": "long", "url": "u" * 5000, "md5": "ab" * 16})
    lines.append(json.dumps({"content_id": "c5", "pdq": f"{6:064x}", "url": "https://ex.org/moved/5"}))
    data = b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n\xff\xfe{}\n" + lines[299].encode()
    ledger = LedgerService(db)
    batches: list[int] = []
    report = ledger.import_jsonl(io.BytesIO(data), batch=64, child=child, on_batch=lambda r: batches.append(r.read))
    assert report.read == 302 and report.error_count == 4, report.to_dict()
    assert [e.split(":")[0] for e in report.errors] == ["line 11", "line 21", "line 41", "line 302"]
    assert "not JSON" in report.errors[0] and "pdq" in report.errors[1] and "longer than" in report.errors[2]
    assert len(batches) >= 4 and batches == sorted(batches)
    assert ledger.get("c5").url == "https://ex.org/moved/5" and ledger.get("c299").pdq == f"{300:064x}"
    assert ledger.count() == {"active": 296}
    again = ledger.import_jsonl(io.BytesIO(data), batch=64, child=child)
    assert (again.read, again.written, again.error_count) == (302, 2, 4)  # c5: its first line, then its last
    assert ledger.get("c5").url == "https://ex.org/moved/5" and ledger.count() == {"active": 296}


def test_a_failed_reading_child_is_an_error_and_keeps_what_was_written(db, monkeypatch):
    """A child that cannot start or dies is reported as a LedgerError naming the exit status; the
    batches written before stay written (nothing is lost), and the in-process path still works."""
    import sys

    from consentry.ledger import records

    monkeypatch.setattr(records, "CHUNK_BYTES", 512)
    data = "".join(json.dumps({"content_id": f"k{i}", "md5": f"{i:032x}"}) + "\n" for i in range(200)).encode()
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(records.LedgerError, match="exit status 1"):
        LedgerService(db).import_jsonl(io.BytesIO(data), batch=50, child=True)
    monkeypatch.undo()
    report = LedgerService(db).import_jsonl(io.BytesIO(data), batch=50, child=False)
    assert report.written == 200


def test_closing_the_child_reader_early_stops_it_at_once():
    """A caller that stops reading (a write failed) closes the generator: the child is stopped
    and both helper threads end, even with the answer queue full."""
    import threading
    import time

    from consentry.ledger import records

    lines = b"".join(json.dumps({"content_id": f"e{i}", "md5": f"{i:032x}"}).encode() + b"\n" for i in range(3000))
    chunks = [(lines[i:i + 4096], 1) for i in range(0, len(lines), 4096)]  # (numbering is not checked here)
    before = {t.name for t in threading.enumerate()}
    gen = records.parsed_in_child(iter(chunks), ahead=2)
    first = next(gen)
    assert first.read > 0
    time.sleep(0.5)  # let the child fill the small queue
    t0 = time.monotonic()
    gen.close()
    assert time.monotonic() - t0 < 3
    left = {t.name for t in threading.enumerate()} - before
    assert not [n for n in left if n.startswith("consentry-ledger-")], left


def test_a_bank_video_stored_with_every_frame_finds_hosted_copies_cut_at_any_offset(db, tmp_path):
    """Hosted videos are ledgered one frame a second; a bank video added from its file keeps
    every frame (issue 21). The sweep aligns each hosted copy against it, so a copy re-cut at an
    offset off the one-second grid is found, with where it starts; the same bank video as
    exchanged (one frame a second) misses that copy."""
    from consentry.config import MediaLimits
    from consentry.signals.vpdq import VPDQSignal, frames_to_json, standard_frames
    from test_vpdq_dense import _video

    ledger, banks = LedgerService(db), BankService(db)
    for cid, start, seed in (("clip-1", 3.4, 4), ("clip-2", 0.0, 4), ("other", 3.4, 8)):
        c = Content.from_bytes(_video(tmp_path / f"{cid}.mp4", 6, start=start, seed=seed), MediaLimits())
        ledger.write(ContentRecord.from_content(c, content_id=cid, url=f"https://ex.org/v/{cid}"))
    source = Content.from_bytes(_video(tmp_path / "source.mp4", 12), MediaLimits())
    every = VPDQSignal.compute_frames(source, dense=True)
    rules = RuleSet.from_yaml("rules: []\n")
    sweeper, wh = _sweeper(db, tmp_path, rules)
    sweeper.follow()
    banks.create_bank("sparse", "ncii")
    banks.add_entry("sparse", "vpdq", frames_to_json(standard_frames(every)))
    assert {h.content.content_id for h in sweeper.follow().hits} == {"clip-2"}  # on the grid only
    banks.create_bank("victims", "ncii")
    entry, _ = banks.add_entry("victims", "vpdq", frames_to_json(every))
    hits = {h.content.content_id: h for h in sweeper.follow().hits}
    assert set(hits) == {"clip-1", "clip-2"} and all(h.entry_id == entry.id for h in hits.values())
    assert hits["clip-1"].detail["offset_seconds"] == pytest.approx(3.4, abs=0.3)
    assert [c.content.content_id for c in sweeper.find_copies(vpdq=frames_to_json(every))] in (
        ["clip-1", "clip-2"], ["clip-2", "clip-1"])
    wh.stop()


def test_a_bank_picture_with_its_stored_variants_finds_hosted_crops_and_tilted_copies(db, tmp_path):
    """Issue 21 in the sweep: hosted copies cropped by 20 % or turned 3 degrees are missed by the
    banked picture's plain PDQ and found through its stored variants, which the hit names."""
    from consentry.config import MediaLimits
    from consentry.hashing import hash_content, stored_variants
    from consentry.signals.canonical import rotated_variant

    pic = scene(640, 480, seed=71)
    ledger, banks = LedgerService(db), BankService(db)
    copies = {"cropped": pic.crop((64, 48, 576, 432)), "tilted": rotated_variant(pic, 3.0),
              "other": scene(640, 480, seed=72)}
    for cid, img in copies.items():
        c = Content.from_bytes(encode(img, "JPEG"), MediaLimits())
        ledger.write(ContentRecord.from_content(c, content_id=cid, url=f"https://ex.org/p/{cid}"))
    sweeper, wh = _sweeper(db, tmp_path, RuleSet.from_yaml("rules: []\n"))
    sweeper.follow()
    banked = Content.from_bytes(encode(pic, "PNG"), MediaLimits())
    r = hash_content(banked)
    banks.create_bank("victims", "ncii")
    entry, _ = banks.add_entry("victims", "pdq", r.pdq, quality=r.pdq_quality)
    assert sweeper.follow().hits == []  # the plain hash alone finds neither copy
    banks.set_variants("victims", r.pdq, stored_variants(banked, r))
    hits = {h.content.content_id: h for h in sweeper.follow().hits}
    assert set(hits) == {"cropped", "tilted"} and all(h.entry_id == entry.id for h in hits.values())
    assert hits["cropped"].detail["stored_variant"].startswith("crop80")
    assert hits["tilted"].detail["stored_variant"] in ("rot+3", "rot+2", "rot+4")
    wh.stop()
