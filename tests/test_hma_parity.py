"""Issue 22 (what HMA offers that platforms use): hash comparison, gradual rollout per bank,
timed disabling of entries and banks, signal types switched on and off while running.

Benign data only: random hashes and drawn test images."""

from __future__ import annotations

import io
import json
import secrets
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from consentry.banks.formats.records import HashRecord
from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankError, BankService, rollout_bucket
from consentry.config import Settings
from consentry.db.models import Entry
from consentry.db.models import ROLES
from consentry.instance_settings import SettingsError, change_signal_type, enabled_signal_types, set_signal_types
from consentry.keys import KeyStore
from consentry.web.app import create_app

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _flip(hexhash: str, bits: list[int]) -> str:
    v = int(hexhash, 16)
    for b in bits:
        v ^= 1 << int(b)
    return f"{v:064x}"


def _rand_pdq() -> str:
    return secrets.token_hex(32)


def _frames(hexes: list[str]) -> list[str]:
    return [f"{h},100,{i}.000" for i, h in enumerate(hexes)]


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path)


@pytest.fixture
def app(db, settings):
    application = create_app(settings, db, background=False)
    yield application
    application.state.consentry.match_log.close()


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(db):
    store = KeyStore(db)
    return {role: store.create(role, f"test {role}")[0] for role in ROLES}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------ 4. compare hashes
def test_compare_pdq_exact_and_vpdq(client, keys):
    h = auth(keys["matcher"])
    near = _flip(PDQ_A, range(10))
    r = client.get("/v1/compare/hashes", params={"signal_type": "pdq", "a": PDQ_A, "b": near}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["distance"], body["threshold"], body["threshold_source"], body["match"]) == (10, 31, "default", True)
    far = _flip(PDQ_A, range(40))
    r = client.get("/v1/compare/hashes", params={"signal_type": "PDQ", "a": PDQ_A.upper(), "b": far}, headers=h)
    assert (r.json()["distance"], r.json()["match"]) == (40, False)

    md5 = secrets.token_hex(16)
    r = client.get("/v1/compare/hashes", params={"signal_type": "md5", "a": md5, "b": md5.upper()}, headers=h)
    assert (r.json()["distance"], r.json()["match"], r.json()["threshold"]) == (0, True, 0)
    r = client.get("/v1/compare/hashes", params={"signal_type": "sha256", "a": "a" * 64, "b": "b" * 64}, headers=h)
    assert (r.json()["distance"], r.json()["match"]) == (1, False)

    hexes = [_rand_pdq() for _ in range(10)]
    a = json.dumps(_frames(hexes))
    b = json.dumps(_frames(hexes[:9] + [_rand_pdq()]))  # 9 of 10 frames shared
    r = client.get("/v1/compare/hashes", params={"signal_type": "vpdq", "a": a, "b": b}, headers=h)
    body = r.json()
    assert r.status_code == 200, r.text
    assert (body["query_match_percent"], body["compared_match_percent"], body["match"]) == (90.0, 90.0, True)
    b = json.dumps(_frames(hexes[:5] + [_rand_pdq() for _ in range(5)]))
    body = client.get("/v1/compare/hashes", params={"signal_type": "vpdq", "a": a, "b": b}, headers=h).json()
    assert (body["query_match_percent"], body["match"]) == (50.0, False)


def test_compare_uses_a_banks_threshold_and_refuses_bad_input(client, keys, db):
    BankService(db).create_bank("strict", "ncii", thresholds={"pdq": 8})
    h = auth(keys["curator"])
    near = _flip(PDQ_A, range(10))
    body = client.get("/v1/compare/hashes", params={"signal_type": "pdq", "a": PDQ_A, "b": near, "bank": "strict"},
                      headers=h).json()
    assert (body["threshold"], body["threshold_source"], body["match"]) == (8, "bank", False)
    r = client.get("/v1/compare/hashes", params={"signal_type": "pdq", "a": PDQ_A, "b": near, "bank": "nope"}, headers=h)
    assert r.status_code == 404
    # a partner does not see unpublished banks
    r = client.get("/v1/compare/hashes", params={"signal_type": "pdq", "a": PDQ_A, "b": near, "bank": "strict"},
                   headers=auth(keys["partner"]))
    assert r.status_code == 404
    for params in ({"signal_type": "pdq", "a": "zz", "b": PDQ_A}, {"signal_type": "nope", "a": "1", "b": "2"},
                   {"signal_type": "vpdq", "a": "not json", "b": "[]"}, {"signal_type": "pdq", "a": PDQ_A}):
        r = client.get("/v1/compare/hashes", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/compare/hashes", params={"signal_type": "md5", "a": "1", "b": "2"},
                      headers=auth(keys["auditor"])).status_code == 403


# ------------------------------------------------------------------ 2. gradual rollout
def test_rollout_bucket_is_deterministic_and_spread():
    assert rollout_bucket("b", "x") == rollout_bucket("b", "x")
    assert rollout_bucket("b", "x") != rollout_bucket("c", "x")
    buckets = [rollout_bucket("bank", f"sha256:{i}") for i in range(2000)]
    assert all(0 <= v < 100 for v in buckets)
    share = sum(v < 30 for v in buckets) / len(buckets)
    assert 0.25 < share < 0.35


def test_rollout_matches_a_deterministic_share(db):
    svc = BankService(db)
    svc.create_bank("trial", "ncii", match_percent=30)
    assert svc.get_bank("trial").match_percent == 30
    md5s = [secrets.token_hex(16) for _ in range(200)]
    svc.add_records("trial", [HashRecord("md5", v) for v in md5s])
    m = Matcher(db).load()
    first = {}
    for v in md5s:
        out = m.match(QuerySignals(exact={"md5": v}))
        assert len(out.matches) + len(out.rollout_skipped) == 1
        first[v] = bool(out.matches)
        assert out.to_dict()["rollout_skipped"] == ([] if out.matches else
                                                    [{"bank": "trial", "entry_id": out.rollout_skipped[0].entry_id,
                                                      "signal_type": "md5"}])
    assert 30 < sum(first.values()) < 90  # about 30 % of 200
    for v in md5s[:50]:  # the same content always gets the same answer
        assert bool(m.match(QuerySignals(exact={"md5": v})).matches) == first[v]
    # the content's SHA-256 decides when known (an upload): same key, same answer for every hash
    key = "sha256:" + "ab" * 32
    answers = {bool(m.match(QuerySignals(exact={"md5": v}, content_key=key)).matches) for v in md5s}
    assert len(answers) == 1
    svc.update_bank("trial", match_percent=100)
    m.refresh()
    assert all(m.match(QuerySignals(exact={"md5": v})).matches for v in md5s[:20])
    svc.update_bank("trial", match_percent=0)
    m.refresh()
    assert not any(m.match(QuerySignals(exact={"md5": v})).matches for v in md5s[:20])
    with pytest.raises(BankError):
        svc.update_bank("trial", match_percent=101)
    with pytest.raises(BankError):
        svc.create_bank("bad", match_percent=-1)


def test_rollout_over_http_shows_skips_to_curators_only(client, keys, db):
    h = auth(keys["curator"])
    r = client.post("/v1/banks", json={"name": "trial", "kind": "ncii", "match_percent": 0}, headers=h)
    assert r.status_code == 201 and r.json()["match_percent"] == 0
    md5 = secrets.token_hex(16)
    e = client.post("/v1/banks/trial/entries", json={"signal_type": "md5", "value": md5}, headers=h).json()["entry"]
    r = client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["matches"] == []
    assert r.json()["rollout_skipped"] == [{"bank": "trial", "entry_id": e["id"], "signal_type": "md5"}]
    assert r.json()["verdict"]["decision"] == "no_match"
    r = client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=auth(keys["matcher"]))
    assert r.json()["matches"] == [] and r.json()["rollout_skipped"] is None
    r = client.patch("/v1/banks/trial", json={"match_percent": 100}, headers=h)
    assert r.json()["match_percent"] == 100
    assert client.get("/v1/banks/trial", headers=h).json()["match_percent"] == 100
    r = client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=auth(keys["matcher"]))
    assert [m["entry_id"] for m in r.json()["matches"]] == [e["id"]]
    assert client.patch("/v1/banks/trial", json={"match_percent": 150}, headers=h).status_code == 422


# ------------------------------------------------------------------ 3. timed disabling
def _backdate(db, model, row_id):
    """Let the disable run out without any new change (as if the time had passed)."""
    with db.session() as s:
        s.execute(update(model).where(model.id == row_id)
                  .values(disabled_until=datetime.now(timezone.utc) - timedelta(seconds=1)))


def test_timed_disabled_entry_matches_again_by_itself(db):
    svc = BankService(db)
    svc.create_bank("v", "ncii")
    entry, _ = svc.add_entry("v", "pdq", PDQ_A)
    m = Matcher(db).load()
    until = datetime.now(timezone.utc) + timedelta(hours=1)
    (e,) = svc.set_status("v", "disabled", entry_id=entry.id, until=until.isoformat())
    assert e.status == "disabled" and e.disabled_until is not None
    assert e.to_dict()["disabled_until"].startswith(until.isoformat()[:19])
    m.refresh()
    assert m.match(QuerySignals(pdq=[PDQ_A])).matches == []
    # a second worker loading from scratch keeps it out too
    assert Matcher(db).load().match(QuerySignals(pdq=[PDQ_A])).matches == []
    cursor = svc.change_cursor()
    _backdate(db, Entry, entry.id)
    assert svc.change_cursor() == cursor
    assert [x.entry_id for x in m.match(QuerySignals(pdq=[PDQ_A])).matches] == [entry.id]  # no refresh needed
    assert svc.get_entry(entry.id).status == "active"
    assert [x.id for x in svc.list_entries("v", status="active")] == [entry.id]
    assert svc.list_entries("v", status="disabled") == []
    assert svc.get_bank("v").counts["active"] == 1
    # the sweep writes an ``enable`` change (partners and stopped workers follow)
    assert svc.expire_timed() == 1
    changes = svc.changes_since(cursor)
    assert [(c["op"], c["entry_id"]) for c in changes] == [("enable", entry.id)]
    assert svc.expire_timed() == 0
    # a permanent disable stays; a past time or an until with another status is refused
    svc.set_status("v", "disabled", entry_id=entry.id)
    m.refresh()
    assert m.match(QuerySignals(pdq=[PDQ_A])).matches == []
    with pytest.raises(BankError):
        svc.set_status("v", "disabled", entry_id=entry.id, until="2001-01-01T00:00:00Z")
    with pytest.raises(BankError):
        svc.set_status("v", "disabled", entry_id=entry.id, until="tomorrow")
    with pytest.raises(BankError):
        svc.set_status("v", "withdrawn", entry_id=entry.id, until=until)


def test_timed_disabled_bank(db):
    svc = BankService(db)
    svc.create_bank("v", "ncii")
    entry, _ = svc.add_entry("v", "md5", "0d12d4462273b533b9197f78b9aeb0d7")
    m = Matcher(db).load()
    q = QuerySignals(exact={"md5": "0d12d4462273b533b9197f78b9aeb0d7"})
    b = svc.update_bank("v", disabled_until=datetime.now(timezone.utc) + timedelta(seconds=1.5))
    assert b.disabled_until is not None and b.to_dict()["disabled_until"]
    m.refresh()
    assert m.match(q).matches == []
    cursor = svc.change_cursor()
    time.sleep(1.6)
    assert m.refresh() == 0  # nothing new in the log, yet the bank is back
    assert [x.entry_id for x in m.match(q).matches] == [entry.id]
    assert svc.change_cursor() == cursor
    assert svc.expire_timed() == 1
    assert svc.get_bank("v").disabled_until is None
    svc.update_bank("v", disabled_until=datetime.now(timezone.utc) + timedelta(days=1))
    m.refresh()
    assert m.match(q).matches == []
    svc.update_bank("v", disabled_until=None)  # cleared at once
    m.refresh()
    assert len(m.match(q).matches) == 1
    with pytest.raises(BankError):
        svc.update_bank("v", disabled_until="1999-12-31T00:00:00")


def test_timed_disable_over_http(client, keys, db):
    h = auth(keys["curator"])
    client.post("/v1/banks", json={"name": "v", "kind": "ncii"}, headers=h)
    md5 = secrets.token_hex(16)
    e = client.post("/v1/banks/v/entries", json={"signal_type": "md5", "value": md5}, headers=h).json()["entry"]
    until = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    r = client.post(f"/v1/banks/v/entries/{e['id']}/disable", params={"until": until}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "disabled" and r.json()["disabled_until"]
    assert client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=h).json()["matches"] == []
    changes = client.get("/v1/changes", headers=h).json()["changes"]
    assert changes[-1]["op"] == "disable" and changes[-1]["disabled_until"]
    r = client.post(f"/v1/banks/v/entries/{e['id']}/disable", params={"until": "2000-01-01T00:00:00Z"}, headers=h)
    assert r.status_code == 422
    _backdate(db, Entry, e["id"])
    assert len(client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=h).json()["matches"]) == 1
    r = client.patch("/v1/banks/v", json={"disabled_until": until}, headers=h)
    assert r.status_code == 200 and r.json()["disabled_until"]
    assert client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=h).json()["matches"] == []
    r = client.patch("/v1/banks/v", json={"disabled_until": None}, headers=h)
    assert r.json()["disabled_until"] is None
    assert len(client.get("/v1/match", params={"signal_type": "md5", "value": md5}, headers=h).json()["matches"]) == 1


def test_timed_bank_disable_reaches_partners(client, keys, tmp_path):
    """A hub bank disabled until a date: the partner's entries pulled from it are disabled until
    the same date (with disable changes for its own workers and partners), and active again when
    the hub clears it; an entry disabled on the partner for its own reasons stays disabled."""
    from consentry.db import Database
    from consentry.exchanges.base import PullReport
    from consentry.exchanges.consentry_hub import apply_changes

    h, p = auth(keys["curator"]), auth(keys["partner"])
    assert client.post("/v1/banks", json={"name": "hub", "kind": "ncii", "shared": True}, headers=h).status_code == 201
    md5s = [secrets.token_hex(16) for _ in range(3)]
    for v in md5s:
        assert client.post("/v1/banks/hub/entries", json={"signal_type": "md5", "value": v}, headers=h).status_code == 201
    partner_db = Database(f"sqlite:///{tmp_path / 'partner.db'}")
    partner_db.upgrade()
    partner = BankService(partner_db)
    partner.create_bank("helpline", "ncii")
    cursor = 0

    def pull() -> PullReport:
        nonlocal cursor
        body = client.get("/v1/changes", params={"cursor": cursor}, headers=p).json()
        report = PullReport("hub", cursor, body["next_cursor"])
        apply_changes(partner, "helpline", body["changes"], "hub", report)
        cursor = body["next_cursor"]
        return report

    def status() -> list[tuple[str, str | None]]:
        return [(e.status, e.disabled_until.isoformat() if e.disabled_until else None)
                for e in (partner.find_entry("helpline", "md5", v) for v in md5s)]

    assert pull().added == 3
    partner.set_status("helpline", "disabled", signal_type="md5", value=md5s[2])  # the partner's own call
    m = Matcher(partner_db).load()
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    assert client.patch("/v1/banks/hub", json={"disabled_until": until.isoformat()}, headers=h).status_code == 200
    before = partner.change_cursor()
    pull()
    assert status() == [("disabled", until.isoformat())] * 2 + [("disabled", None)]
    assert [c["op"] for c in partner.changes_since(before, 10)] == ["disable", "disable"]
    m.refresh()
    assert m.match(QuerySignals(exact={"md5": md5s[0]})).matches == []
    pull()  # the same state again (an unrelated bank change, or a re-read page): nothing changes
    assert partner.change_cursor() == before + 2
    assert client.patch("/v1/banks/hub", json={"disabled_until": None}, headers=h).status_code == 200
    pull()
    assert status() == [("active", None)] * 2 + [("disabled", None)]
    assert [c["op"] for c in partner.changes_since(before + 2, 10)] == ["enable", "enable"]
    m.refresh()
    assert len(m.match(QuerySignals(exact={"md5": md5s[0]})).matches) == 1
    assert "hub_bank_disabled" not in partner.find_entry("helpline", "md5", md5s[0]).meta


# ------------------------------------------------------------------ 5. signal types on/off
def test_signal_type_setting_in_the_database(db):
    assert enabled_signal_types(db) is None
    assert enabled_signal_types(db, ["md5", "pdq"]) == {"md5", "pdq"}  # the env default
    svc = BankService(db)
    svc.create_bank("v", "ncii")
    svc.add_entry("v", "pdq", PDQ_A)
    svc.add_entry("v", "md5", "0d12d4462273b533b9197f78b9aeb0d7")
    m = Matcher(db).load()
    other_worker = Matcher(db).load()
    q = QuerySignals(exact={"md5": "0d12d4462273b533b9197f78b9aeb0d7"}, pdq=[PDQ_A])
    assert len(m.match(q).matches) == 2
    change_signal_type(db, "pdq", False)
    assert "pdq" not in enabled_signal_types(db)
    other_worker.refresh()  # the change log tells every worker
    out = other_worker.match(q)
    assert [x.signal_type for x in out.matches] == ["md5"] and out.disabled_types == ["pdq"]
    change_signal_type(db, "pdq", True)
    other_worker.refresh()
    assert len(other_worker.match(q).matches) == 2
    with pytest.raises(SettingsError):
        set_signal_types(db, ["nope"])
    with pytest.raises(SettingsError):
        set_signal_types(db, [])


def test_signal_types_over_http(client, keys, db):
    from imagegen import encode, scene

    admin, curator = auth(keys["admin"]), auth(keys["curator"])
    r = client.put("/v1/settings/signal-types", json={"enabled": ["md5", "sha256"]}, headers=curator)
    assert r.status_code == 403
    r = client.put("/v1/settings/signal-types", json={"enabled": ["md5", "sha256"]}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] == ["md5", "sha256"] and "pdq" in r.json()["disabled"]
    assert client.get("/v1/settings/signal-types", headers=curator).json()["source"] == "database"
    photo = encode(scene(seed=1), "png")
    r = client.post("/v1/hash", files={"file": ("a.png", io.BytesIO(photo), "image/png")}, headers=curator)
    assert r.status_code == 200, r.text
    assert r.json()["pdq"] is None and r.json()["md5"]
    assert [w["code"] for w in r.json()["warnings"]] == ["signal-type-disabled"]
    client.post("/v1/banks", json={"name": "v", "kind": "ncii"}, headers=curator)
    client.post("/v1/banks/v/entries", json={"signal_type": "pdq", "value": PDQ_A}, headers=curator)
    r = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=curator)
    assert r.json()["matches"] == []
    assert "signal-type-disabled" in [w["code"] for w in r.json()["warnings"]]
    assert client.put("/v1/settings/signal-types", json={"enabled": ["bogus"]}, headers=admin).status_code == 422
    client.put("/v1/settings/signal-types", json={"enabled": ["md5", "sha256", "pdq", "vpdq"]}, headers=admin)
    r = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=curator)
    assert len(r.json()["matches"]) == 1 and r.json()["warnings"] == []


# ------------------------------------------------------------------ CLI
@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from consentry import config
    from consentry.cli import app as cli_app

    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CONSENTRY_SIGNAL_TYPES", raising=False)
    config.set_settings(None)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli_app, [str(a) for a in args], catch_exceptions=False)

    yield run
    config.set_settings(None)


def test_cli_rollout_timed_disable_signals_and_url_keys(run_cli):
    r = run_cli("bank", "create", "trial", "--kind", "ncii", "--match-percent", "25")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["match_percent"] == 25
    assert run_cli("bank", "create", "bad", "--match-percent", "120").exit_code == 2
    r = run_cli("bank", "update", "trial", "--match-percent", "60")
    assert r.exit_code == 0 and json.loads(r.stdout)["match_percent"] == 60
    r = run_cli("bank", "update", "trial", "--until", "2999-01-01T00:00:00Z")
    assert r.exit_code == 0 and json.loads(r.stdout)["disabled_until"].startswith("2999-01-01")
    assert run_cli("bank", "update", "trial", "--until", "2001-01-01").exit_code == 1
    shown = json.loads(run_cli("bank", "show", "trial").stdout)
    assert (shown["match_percent"], shown["disabled_until"][:4]) == (60, "2999")
    assert "60" in run_cli("bank", "list").stdout
    r = run_cli("bank", "update", "trial", "--enable")
    assert json.loads(r.stdout)["disabled_until"] is None
    md5 = "0d12d4462273b533b9197f78b9aeb0d7"
    from consentry.db import open_database

    BankService(open_database()).add_entry("trial", "md5", md5)
    r = run_cli("bank", "disable", "trial", "--md5", md5, "--until", "2999-06-01T00:00:00+00:00")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "disabled" and json.loads(r.stdout)["disabled_until"].startswith("2999")
    assert run_cli("bank", "disable", "trial", "--md5", md5, "--until", "soon").exit_code == 1

    r = run_cli("signals", "disable", "vpdq")
    assert r.exit_code == 0, r.output
    assert "vpdq" in json.loads(r.stdout)["disabled"]
    assert "vpdq" not in json.loads(run_cli("signals", "list").stdout)["enabled"]
    assert run_cli("signals", "disable", "nope").exit_code == 1
    assert "vpdq" in json.loads(run_cli("signals", "enable", "vpdq").stdout)["enabled"]

    r = run_cli("keys", "create", "--role", "matcher", "--allow-url")
    assert r.exit_code == 0
    listed = [json.loads(x) for x in run_cli("keys", "list").stdout.splitlines()]
    assert listed[-1]["allow_url"] is True
