"""The hash-chained audit log on SQLite and PostgreSQL: appends, tamper detection, hooks, CLI, API."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from consentry.banks.service import BankService
from consentry.db.models_audit import AuditEvent
from consentry.keys import KeyStore
from consentry.review.audit import GENESIS, AuditLog, event_hash


def _fill(db, n=6):
    log = AuditLog(db)
    for i in range(n):
        log.record(f"test.event{i}", "alice", {"i": i, "note": "a lighthouse at dusk"})
    return log


def test_chain_links_each_event_to_the_previous(db):
    log = _fill(db, 4)
    events = log.list()
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS
    for prev, cur in zip(events, events[1:]):
        assert cur.prev_hash == prev.hash
    for e in events:  # recomputed independently of the stored value
        assert event_hash(e.seq, e.at, e.event_type, e.actor, e.data, e.prev_hash) == e.hash
    res = log.verify()
    assert res.ok and res.checked == 4 and res.head_seq == 4 and res.first_bad_seq is None


def test_record_inside_a_caller_transaction_rolls_back_with_it(db):
    log = _fill(db, 2)
    with pytest.raises(RuntimeError):
        with db.session() as s:
            log.record("test.rollback", "bob", {"x": 1}, session=s)
            raise RuntimeError("boom")
    assert log.count() == 2 and log.verify().ok
    with db.session() as s:  # committed with the caller's transaction
        log.record("test.committed", "bob", {"y": 2}, session=s)
    assert log.list(after_seq=2)[0].event_type == "test.committed" and log.verify().ok


def test_verify_catches_an_edited_event(db):
    log = _fill(db)
    with db.session() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(data={"i": 99}))
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 3 and res.problem == "edited"
    assert "#3" in res.message


def test_verify_catches_an_edited_and_rehashed_event(db):
    log = _fill(db)
    with db.session() as s:
        e = s.scalar(select(AuditEvent).where(AuditEvent.seq == 2))
        e.actor = "mallory"
        e.hash = event_hash(e.seq, e.at, e.event_type, e.actor, e.data, e.prev_hash)
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 2 and res.problem == "edited"


def test_verify_catches_a_deleted_event(db):
    log = _fill(db)
    with db.session() as s:
        s.execute(AuditEvent.__table__.delete().where(AuditEvent.seq == 4))
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 4 and res.problem == "deleted"
    assert res.checked == 3


def test_verify_catches_deleted_events_at_the_end(db):
    log = _fill(db)
    with db.session() as s:
        s.execute(AuditEvent.__table__.delete().where(AuditEvent.seq >= 5))
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 5 and res.problem == "deleted"


def test_verify_catches_a_deletion_with_renumbering(db):
    log = _fill(db)
    with db.session() as s:
        s.execute(AuditEvent.__table__.delete().where(AuditEvent.seq == 2))
        for seq in (3, 4, 5, 6):
            s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 2 and res.problem == "deleted"


def test_verify_catches_a_swapped_pair(db):
    log = _fill(db)
    with db.session() as s:  # swap the order of events 3 and 4 (via a free seq: seq is unique)
        s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=1000))
        s.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(seq=3))
        s.execute(update(AuditEvent).where(AuditEvent.seq == 1000).values(seq=4))
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 3 and res.problem == "reordered"
    assert res.details["written_as"] == 4


def test_concurrent_writers_never_fork_the_chain(db):
    log = AuditLog(db)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                log.record("test.concurrent", name, {"i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = log.list(limit=1000)
    assert [e.seq for e in events] == list(range(1, 61))
    assert log.verify().ok


def test_bank_and_key_changes_are_recorded(db):
    banks = BankService(db)
    banks.create_bank("hub", "ncii", actor="key:7 (curator)")
    entry, _ = banks.add_entry("hub", "md5", "d41d8cd98f00b204e9800998ecf8427e", added_by="key:7 (curator)")
    banks.withdraw("hub", entry_id=entry.id, actor="key:7 (curator)")
    banks.update_bank("hub", actor="cli:root", description="helpline")
    _secret, info = KeyStore(db).create("auditor", "audit team", actor="cli:root")
    KeyStore(db).revoke(info.id, actor="cli:root")
    banks.delete_bank("hub", actor="cli:root")
    events = AuditLog(db).list()
    got = [(e.event_type, e.actor) for e in events]
    assert got == [("bank.create", "key:7 (curator)"), ("bank.entries", "key:7 (curator)"),
                   ("bank.entries", "key:7 (curator)"), ("bank.update", "cli:root"),
                   ("key.create", "cli:root"), ("key.revoke", "cli:root"), ("bank.delete", "cli:root")]
    assert events[1].data["added"] == 1 and events[2].data["status"] == "withdrawn"
    assert events[4].data["role"] == "auditor" and "key_hash" not in events[4].data
    assert AuditLog(db).verify().ok


def test_cli_verify_and_list(db, monkeypatch):
    from consentry.cli import app

    monkeypatch.setenv("DATABASE_URL", db.url)
    import consentry.config as config

    monkeypatch.setattr(config, "_settings", None)
    _fill(db, 3)
    runner = CliRunner()
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["audit", "list", "--type", "test.event1"])
    assert r.exit_code == 0 and '"seq": 2' in r.stdout and r.stdout.count("\n") == 1
    with db.session() as s:
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 1
    assert '"first_bad_seq": 2' in r.stdout and '"problem": "edited"' in r.stdout


def test_audit_api_for_auditors_only(db, tmp_path):
    from fastapi.testclient import TestClient

    from consentry.config import Settings
    from consentry.web.app import create_app

    store = KeyStore(db)
    auditor, _ = store.create("auditor", "a")
    matcher, _ = store.create("matcher", "m")
    _fill(db, 3)
    app = create_app(Settings(home=tmp_path), db, background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {auditor}"}
        page = client.get("/v1/audit", params={"limit": 2}, headers=h).json()
        # 2 key.create events came first
        assert [e["seq"] for e in page["events"]] == [1, 2] and page["next_cursor"] == 2
        rest = client.get("/v1/audit", params={"cursor": 2}, headers=h).json()
        assert [e["event_type"] for e in rest["events"]] == ["test.event0", "test.event1", "test.event2"]
        assert client.get("/v1/audit/verify", headers=h).json()["ok"] is True
        assert client.get("/v1/webhooks/deliveries", headers=h).json() == {"deliveries": [], "next_cursor": None}
        for path in ("/v1/audit", "/v1/audit/verify", "/v1/webhooks/deliveries"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": f"Bearer {matcher}"}).status_code == 403
        with db.session() as s:
            s.execute(AuditEvent.__table__.delete().where(AuditEvent.seq == 3))
        res = client.get("/v1/audit/verify", headers=h).json()
        assert res["ok"] is False and res["first_bad_seq"] == 3 and res["problem"] == "deleted"
    app.state.consentry.match_log.close()
