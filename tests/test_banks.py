"""Bank lifecycle and entries on SQLite and PostgreSQL (service layer)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from consentry.banks.formats.records import HashRecord, RecordError
from consentry.banks.service import BankError, BankService, Conflict, NotFound
from consentry.db.migrate import current

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "d8f8f0cec0f4a84f8e370a22038f67f0b36a2ed597231e1d72e6b39c4a9c9b22"
MD5_A = "0d12d4462273b533b9197f78b9aeb0d7"


def _head() -> str:
    from alembic.script import ScriptDirectory

    from consentry.db.migrate import MIGRATIONS

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_migrations_create_the_schema(db):
    assert current(db.engine) == _head()
    tables = set(inspect(db.engine).get_table_names())
    assert {"banks", "entries", "changes", "alembic_version"} <= tables
    db.upgrade()  # idempotent
    assert current(db.engine) == _head()


def test_bank_lifecycle(db):
    svc = BankService(db)
    b = svc.create_bank("victims-hub", "ncii", "hashes from a helpline", {"pdq": 28})
    assert (b.name, b.kind, b.thresholds) == ("victims-hub", "ncii", {"pdq": 28})
    assert b.threshold("pdq") == 28 and b.threshold("md5") == 0
    with pytest.raises(Conflict):
        svc.create_bank("victims-hub", "ncii")
    for bad in [("", "ncii"), ("has space", "ncii"), ("ok", "not-a-kind")]:
        with pytest.raises(BankError):
            svc.create_bank(*bad)
    with pytest.raises(BankError):
        svc.create_bank("t", "custom", thresholds={"pdq": "lots"})
    with pytest.raises(BankError):
        svc.create_bank("t", "custom", thresholds={"nope": 3})
    svc.create_bank("allowlist", "allow")
    assert [x.name for x in svc.list_banks()] == ["allowlist", "victims-hub"]
    updated = svc.update_bank("victims-hub", description="d2", thresholds={"pdq": 31})
    assert updated.description == "d2" and updated.thresholds == {"pdq": 31}
    svc.add_entry("victims-hub", "pdq", PDQ_A, quality=100)
    assert svc.delete_bank("victims-hub") == 1
    with pytest.raises(NotFound):
        svc.get_bank("victims-hub")
    assert [x.name for x in svc.list_banks()] == ["allowlist"]


def test_entries_are_idempotent_and_can_be_withdrawn_disabled_enabled(db):
    svc = BankService(db)
    svc.create_bank("own", "custom")
    e, created = svc.add_entry("own", "pdq", PDQ_A.upper(), quality=90, source="test",
                               external_ids=["x:1"], tags=["t1"], category="c", added_by="alice")
    assert created and e.value == PDQ_A and e.quality == 90 and e.status == "active"
    assert e.provenance["external_ids"] == ["x:1"] and e.provenance["added_by"] == "alice"
    again, created = svc.add_entry("own", "pdq", PDQ_A)
    assert not created and again.id == e.id
    assert svc.get_bank("own").counts["active"] == 1
    cursor = svc.change_cursor()
    (w,) = svc.withdraw("own", signal_type="pdq", value=PDQ_A)
    assert w.status == "withdrawn"
    changes = svc.changes_since(cursor)
    assert [(c["op"], c["entry_id"]) for c in changes] == [("withdraw", e.id)]
    revived, created = svc.add_entry("own", "pdq", PDQ_A)
    assert created and revived.id == e.id and revived.status == "active"
    (d,) = svc.set_status("own", "disabled", entry_id=e.id)
    assert d.status == "disabled"
    (en,) = svc.set_status("own", "active", entry_id=e.id)
    assert en.status == "active"
    with pytest.raises(NotFound):
        svc.withdraw("own", entry_id=999999)
    with pytest.raises(Exception):
        svc.add_entry("own", "pdq", "not-a-hash")


def test_add_records_reports_and_batches(db):
    svc = BankService(db)
    svc.create_bank("list", "csam")
    records = [
        HashRecord("pdq", PDQ_A, position="line 1"),
        HashRecord("md5", MD5_A, position="line 2"),
        RecordError("line 3", "bad hex"),
        HashRecord("pdq", "zz", position="line 4"),
        HashRecord("nosuch", "ab", position="line 5"),
        HashRecord("pdq", PDQ_A, position="line 6"),  # duplicate inside the file
        HashRecord("pdq", PDQ_B, op="remove", position="line 7"),  # remove of something absent
    ]
    report = svc.add_records("list", records, batch_size=3)
    assert (report.records, report.added, report.unchanged, report.remove_not_found) == (7, 2, 1, 1)
    assert [e.position for e in report.errors] == ["line 3", "line 4", "line 5"]
    again = svc.add_records("list", [HashRecord("pdq", PDQ_A), HashRecord("md5", MD5_A)])
    assert (again.added, again.unchanged) == (0, 2)
    removed = svc.add_records("list", [HashRecord("md5", MD5_A, op="remove")])
    assert removed.removed == 1
    assert svc.find_entry("list", "md5", MD5_A).status == "withdrawn"
    assert svc.get_bank("list").counts == {"active": 1, "disabled": 0, "withdrawn": 1}


def test_cursor_pagination_and_export_records(db):
    svc = BankService(db)
    svc.create_bank("p", "custom")
    values = [f"{i:064x}" for i in range(1, 26)]
    svc.add_records("p", [HashRecord("pdq", v, tags=[f"n{i}"]) for i, v in enumerate(values)])
    seen, after = [], 0
    while page := svc.list_entries("p", after_id=after, limit=10):
        seen += [e.value for e in page]
        after = page[-1].id
    assert seen == values
    svc.withdraw("p", signal_type="pdq", value=values[0])
    exported = list(svc.iter_records("p"))
    assert [r.value for r in exported] == values[1:]
    with_tomb = list(svc.iter_records("p", include_withdrawn=True))
    assert with_tomb[0].op == "remove" and with_tomb[0].value == values[0]


def test_long_vpdq_values_fit_the_unique_index(db):
    import json

    svc = BankService(db)
    svc.create_bank("videos", "custom")
    frames = [f"{i:064x},100,{float(i)}" for i in range(3000)]  # a 50-minute video at 1 fps
    e, created = svc.add_entry("videos", "vpdq", json.dumps(frames))
    assert created and len(e.value) > 200_000
    _, created = svc.add_entry("videos", "vpdq", json.dumps(frames))
    assert not created


def test_tombstones_without_hashes_remove_by_external_id(db):
    """NCMEC deletedImage names only member/id: every entry carrying that id is withdrawn."""
    svc = BankService(db)
    svc.create_bank("ncmec", "csam")
    svc.add_records("ncmec", [
        HashRecord("md5", MD5_A, external_ids=["ncmec:12/entry_1"]),
        HashRecord("pdq", PDQ_A, external_ids=["ncmec:12/entry_1"]),
        HashRecord("pdq", PDQ_B, external_ids=["ncmec:12/entryx1"]),  # '_' must not act as a wildcard
    ])
    tomb = HashRecord("", "", op="remove", external_ids=["ncmec:12/entry_1"], meta={"remove_by": "external_id"})
    report = svc.add_records("ncmec", [tomb, HashRecord("", "", op="remove", external_ids=["ncmec:9/none"],
                                                        meta={"remove_by": "external_id"})])
    assert (report.removed, report.remove_not_found, report.errors) == (2, 1, [])
    assert svc.find_entry("ncmec", "pdq", PDQ_B).status == "active"
    assert svc.find_entry("ncmec", "pdq", PDQ_A).status == "withdrawn"


def test_demo_bank_seeding_races_are_harmless(db):
    """Two hosts starting at once on one database both try to seed the demo bank: the loser
    must not crash (it used to exit with 'a bank named demo already exists')."""
    import threading

    from consentry.banks.service import BankService
    from consentry.bootstrap import DEMO_BANK, ensure_demo_bank

    real = BankService.list_banks
    gate = threading.Barrier(2)

    def racing_list(self):  # both see "no banks yet" before either creates one
        out = real(self)
        gate.wait(timeout=10)
        return out

    results, errors = [], []

    def run():
        try:
            results.append(ensure_demo_bank(db))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    BankService.list_banks = racing_list
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        BankService.list_banks = real
    assert not errors, errors
    assert sorted(results) == [False, True]
    assert [b.name for b in BankService(db).list_banks()] == [DEMO_BANK]
