"""Bulk import (issue 13): set-based batches keep every import semantic, on SQLite and PostgreSQL.

Small ``batch_size`` values force many batches, so the staging table, the worker thread that writes
one batch while the next is read, and the ordering between batches and tombstones are all used.
"""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from consentry.banks.formats.records import HashRecord, RecordError
from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.db.models import Change, Entry
from consentry.errors import ConsentryError


def _hex(n: int) -> str:
    return os.urandom(n).hex()


def _changes(db, bank_id: int) -> list[tuple[str, int]]:
    with db.session() as s:
        return [(op, eid) for op, eid in s.execute(
            select(Change.op, Change.entry_id).where(Change.bank_id == bank_id, Change.entry_id.is_not(None))
            .order_by(Change.id))]


def test_many_batches_are_idempotent_and_logged(db):
    svc = BankService(db)
    bank = svc.create_bank("big", "custom")
    values = [_hex(32) for _ in range(230)]
    recs = [HashRecord("pdq", v.upper() if i % 7 == 0 else v, position=f"line {i + 1}") for i, v in enumerate(values)]
    report = svc.add_records("big", recs, batch_size=50)
    assert (report.records, report.added, report.unchanged, report.errors) == (230, 230, 0, [])
    changes = _changes(db, bank.id)
    assert len(changes) == 230 and {op for op, _ in changes} == {"add"}
    ids = {e.id for e in svc.list_entries("big", limit=1000)}
    assert {eid for _, eid in changes} == ids  # one change-log row per added entry, no more
    assert {e.value for e in svc.list_entries("big", limit=1000)} == set(values)  # canonical (lower case)

    again = svc.add_records("big", recs, batch_size=64)
    assert (again.added, again.unchanged, again.reactivated) == (0, 230, 0)
    assert len(_changes(db, bank.id)) == 230  # nothing logged for unchanged entries


def test_duplicates_mixed_types_errors_and_provenance(db):
    svc = BankService(db)
    svc.create_bank("mix", "custom")
    md5, sha1, sha256, pdq = _hex(16), _hex(20), _hex(32), _hex(32)
    frames = json.dumps([f"{i:064x},100,{float(i)}" for i in range(40)])  # long: value_key is a digest
    recs = [
        HashRecord("md5", md5, external_ids=["x:1"], tags=["a", "b"], category="A1", source="ncmec",
                   meta={"quality": 77, "k": "v"}, position="r1"),
        HashRecord("sha1", sha1, position="r2"),
        RecordError("r3", "unreadable"),
        HashRecord("sha256", sha256, position="r4"),
        HashRecord("pdq", "not-hex", position="r5"),
        HashRecord("md5", md5.upper(), position="r6"),  # duplicate inside the batch: the last one wins
        HashRecord("vpdq", frames, position="r7"),
        HashRecord("nosuch", "ab", position="r8"),
        HashRecord("pdq", pdq, position="r9"),
        HashRecord("sha1", sha1, position="r10"),  # duplicate in a later batch
    ]
    report = svc.add_records("mix", recs, batch_size=4, added_by="curator-1")
    assert [e.position for e in report.errors] == ["r3", "r5", "r8"]  # input order, across batches
    assert (report.records, report.added, report.unchanged) == (10, 5, 2)
    e = svc.find_entry("mix", "md5", md5)
    assert e.tags == [] and e.external_ids == []  # r6 (last for the value in its batch) won
    assert svc.find_entry("mix", "vpdq", frames).value == frames
    assert svc.find_entry("mix", "sha256", sha256).added_by == "curator-1"

    svc.create_bank("prov", "custom")
    svc.add_records("prov", recs[:1])
    p = svc.find_entry("prov", "md5", md5)
    assert (p.quality, p.external_ids, p.tags, p.category, p.source, p.meta) == (
        77, ["x:1"], ["a", "b"], "A1", "ncmec", {"k": "v"})
    assert p.status == "active" and p.added_at is not None


def test_withdrawals_and_revivals_in_one_import(db):
    svc = BankService(db)
    bank = svc.create_bank("w", "ncii")
    vals = [_hex(32) for _ in range(60)]
    svc.add_records("w", [HashRecord("pdq", v) for v in vals[:40]])
    old = {e.value: e.id for e in svc.list_entries("w", limit=100)}
    cursor = svc.change_cursor()
    recs = []
    for i in range(40, 60):  # new ones, each withdrawn later in the same import (another batch)
        recs.append(HashRecord("pdq", vals[i]))
    recs += [HashRecord("pdq", v, op="remove") for v in vals[:10]]  # withdraw existing entries
    recs += [HashRecord("pdq", v, op="remove") for v in vals[40:45]]  # withdraw ones added above
    recs += [HashRecord("pdq", _hex(32), op="remove")]  # never seen
    recs += [HashRecord("pdq", vals[0])]  # re-added after its withdrawal: revived
    report = svc.add_records("w", recs, batch_size=8)
    assert (report.added, report.removed, report.remove_not_found, report.reactivated) == (20, 15, 1, 1)
    assert svc.find_entry("w", "pdq", vals[0]).status == "active"
    assert all(svc.find_entry("w", "pdq", v).status == "withdrawn" for v in vals[1:10] + vals[40:45])
    assert svc.get_bank("w").counts == {"active": 46, "disabled": 0, "withdrawn": 14}
    changes = [(c["op"], c["entry_id"], c["signal_type"]) for c in svc.changes_since(cursor)]
    assert sorted(eid for op, eid, _ in changes if op == "withdraw") == sorted(
        [old[v] for v in vals[:10]] + [svc.find_entry("w", "pdq", v).id for v in vals[40:45]])
    assert ("add", old[vals[0]], "pdq") in changes  # the revival is logged as an add
    assert all(st == "pdq" for _, _, st in changes)

    # withdrawing again changes nothing; a remove and a later add of one value in one batch: add wins
    again = svc.add_records("w", [HashRecord("pdq", v, op="remove") for v in vals[1:10]])
    assert (again.removed, again.unchanged, again.remove_not_found) == (0, 9, 0)
    both = svc.add_records("w", [HashRecord("pdq", vals[1], op="remove"), HashRecord("pdq", vals[1])])
    assert both.reactivated == 1 and svc.find_entry("w", "pdq", vals[1]).status == "active"
    assert len(_changes(db, bank.id)) == len(changes) + 40 + 1


def test_external_id_tombstones_keep_their_place_in_the_stream(db):
    svc = BankService(db)
    svc.create_bank("n", "csam")
    vals = [_hex(16) for _ in range(30)]

    def add(i: int) -> HashRecord:
        return HashRecord("md5", vals[i], external_ids=[f"ncmec:1/e{i}"])

    def tomb(i: int) -> HashRecord:
        return HashRecord("", "", op="remove", external_ids=[f"ncmec:1/e{i}"], meta={"remove_by": "external_id"},
                          position=f"tomb {i}")

    recs = [add(i) for i in range(20)]
    recs += [tomb(i) for i in range(8)]  # a group of 8: one pass over the bank
    recs += [tomb(3)]  # the same entry again: already withdrawn, so not found
    recs += [add(20), tomb(20)]  # added then tombstoned in the same import: withdrawn
    recs += [tomb(21), add(21)]  # tombstone before its add: nothing to remove, then added
    recs += [HashRecord("", "", op="remove", external_ids=[], meta={"remove_by": "external_id"}, position="empty")]
    recs += [tomb(i) for i in range(10, 12)] + [tomb(99)]  # a small group (LIKE each id)
    report = svc.add_records("n", recs, batch_size=7)
    assert [e.position for e in report.errors] == ["empty"]
    assert (report.added, report.removed, report.remove_not_found) == (22, 11, 3)
    status = {i: svc.find_entry("n", "md5", vals[i]).status for i in range(22)}
    assert [i for i, s in status.items() if s == "withdrawn"] == [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 20]


def test_matcher_sees_an_import_batch_by_batch(db):
    svc = BankService(db)
    svc.create_bank("live", "custom")
    matcher = Matcher(db).load()
    vals = [_hex(32) for _ in range(120)]
    seen: list[int] = []

    def records():
        for i, v in enumerate(vals):
            if i == 100:  # two batches of 50 are committed (the second may be in flight): refresh
                seen.append(matcher.refresh())
            yield HashRecord("pdq" if i % 2 else "sha256", v)

    report = svc.add_records("live", records(), batch_size=50)
    assert report.added == 120
    assert seen and seen[0] >= 50  # the first batch was matchable before the import ended
    matcher.refresh()
    for i in (0, 1, 119):
        q = QuerySignals(pdq=[vals[i]]) if i % 2 else QuerySignals(exact={"sha256": vals[i]})
        assert [m.bank for m in matcher.match(q).matches] == ["live"]
    svc.add_records("live", [HashRecord("pdq", vals[1], op="remove")])
    matcher.refresh()
    assert matcher.match(QuerySignals(pdq=[vals[1]])).matches == []


def test_partly_known_batches_and_awkward_text_round_trip(db):
    """New entries go straight in (PostgreSQL: COPY); a batch holding a value already in the bank
    falls back to the merge without losing or doubling anything, and free text with tabs,
    newlines and backslashes survives the COPY text format."""
    svc = BankService(db)
    bank = svc.create_bank("part", "custom")
    old = [_hex(32) for _ in range(60)]
    assert svc.add_records("part", [HashRecord("pdq", v) for v in old], batch_size=25).added == 60
    awkward = "tab\there\nnew line \\back\\slash\r end"
    new = [_hex(32) for _ in range(70)]
    recs = [HashRecord("pdq", v, tags=[awkward], source="src\t1", category="c\\1", meta={"note": awkward},
                       external_ids=[f"id\t{i}"]) for i, v in enumerate(new)]
    mixed = recs[:30] + [HashRecord("pdq", v) for v in old[:20]] + recs[30:]
    report = svc.add_records("part", mixed, batch_size=25)
    assert (report.added, report.unchanged, report.errors) == (70, 20, [])
    entries = svc.list_entries("part", limit=1000)
    assert len(entries) == 130 and {e.value for e in entries} == set(old) | set(new)
    got = {e.value: e for e in entries}
    for i, v in enumerate(new):
        e = got[v]
        assert (e.tags, e.source, e.category, e.meta, e.external_ids) == (
            [awkward], "src\t1", "c\\1", {"note": awkward}, [f"id\t{i}"])
    changes = _changes(db, bank.id)
    assert len(changes) == 130 and {eid for _, eid in changes} == {e.id for e in entries}


def test_an_import_stops_when_its_bank_is_deleted(db):
    svc = BankService(db)
    bank_id = svc.create_bank("gone", "custom").id

    def records():
        yield from (HashRecord("pdq", _hex(32)) for _ in range(10))
        svc.delete_bank("gone")  # between two batches
        yield from (HashRecord("pdq", _hex(32)) for _ in range(10))

    with pytest.raises(ConsentryError, match="deleted during the import"):
        svc.add_records("gone", records(), batch_size=10)
    with db.session() as s:  # nothing left behind for a bank that no longer exists
        assert s.scalar(select(Entry.id).where(Entry.bank_id == bank_id)) is None


def test_tombstones_find_non_ascii_ids_written_by_imports_and_by_the_orm(db):
    """Imports write JSON columns with orjson (UTF-8), the ORM with json (\\u escapes): a
    tombstone naming a non-ASCII id finds the entry whichever wrote it."""
    svc = BankService(db)
    svc.create_bank("n", "csam")
    a, b = _hex(16), _hex(16)
    svc.add_records("n", [HashRecord("md5", a, external_ids=["ncmec:1/é-1"])])
    entry, _ = svc.add_entry("n", "md5", b)
    with db.session() as s:  # as an ORM write stores it
        s.get(Entry, entry.id).external_ids = ["ncmec:1/ü_2"]
    with db.engine.connect() as c:
        stored = dict(c.exec_driver_sql("SELECT value, CAST(external_ids AS TEXT) FROM entries").all())
    assert "é" in stored[a] and "\\u00fc" in stored[b]  # both forms are really in the table
    report = svc.add_records("n", [
        HashRecord("", "", op="remove", external_ids=[ext], meta={"remove_by": "external_id"}, position=ext)
        for ext in ("ncmec:1/é-1", "ncmec:1/ü_2")])
    assert (report.removed, report.remove_not_found) == (2, 0)
    assert {svc.find_entry("n", "md5", v).status for v in (a, b)} == {"withdrawn"}


def test_fastjson_reads_and_writes_what_json_does():
    from consentry import fastjson

    for value in [{"a": [1, "é", None, True, 1.5]}, ["x"], {"big": 2**70}, {1: "non-string key"}]:
        assert json.loads(fastjson.dumps(value)) == json.loads(json.dumps(value))
    big = 123456789012345678901234567890
    assert fastjson.loads(f'{{"n": {big}, "m": [1, -{big}]}}'.encode()) == {"n": big, "m": [1, -big]}
    assert fastjson.loads(b'{"h": "12345678901234567890123", "n": 12}') == {"h": "12345678901234567890123", "n": 12}
    assert fastjson.loads('[NaN]')[0] != fastjson.loads('[NaN]')[0]  # NaN, as json reads it
    with pytest.raises(ValueError):
        fastjson.loads(b"{not json")


def test_collector_paused_during_bulk_work_and_restored_after(db):
    import gc
    import threading

    from consentry.banks.bulk_gc import collector_paused

    svc = BankService(db)
    svc.create_bank("g", "custom")
    seen = []

    def records():
        seen.append(gc.isenabled())
        yield HashRecord("md5", _hex(16))

    assert gc.isenabled()
    svc.add_records("g", records())
    assert seen == [False] and gc.isenabled()
    # nested and overlapping runs in two threads: on again only when the last one ends
    inside, release = threading.Event(), threading.Event()

    def other():
        with collector_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with collector_paused():
        t.start()
        inside.wait(5)
    assert not gc.isenabled()  # the other thread's run is still going
    release.set()
    t.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
