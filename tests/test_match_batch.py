"""POST /v1/match/batch and `consentry match --stdin` (issue 20.4): per item, in order, with the
same answers, rules, match logging and rate accounting as one GET /v1/match per item."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db.models import ROLES
from consentry.index import words_to_hex
from consentry.keys import KeyStore
from consentry.web.app import create_app
from consentry.web.auth import MATCHERS

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _flip(hexhash: str, bits) -> str:
    v = int(hexhash, 16)
    for b in bits:
        v ^= 1 << int(b)
    return f"{v:064x}"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(db):
    store = KeyStore(db)
    return {role: store.create(role, f"test {role}")[0] for role in ROLES}


def _app(db, tmp_path, **settings):
    return create_app(Settings(home=tmp_path, **settings), db, background=False)


def _seed(db) -> dict[str, int]:
    svc = BankService(db)
    svc.create_bank("hub", "ncii")
    svc.create_bank("ok", "allow")
    ids = {"pdq": svc.add_entry("hub", "pdq", PDQ_A)[0].id, "md5": svc.add_entry("hub", "md5", MD5)[0].id}
    far = _flip(PDQ_A, range(0, 200, 5))
    ids["allowed"] = svc.add_entry("hub", "pdq", far)[0].id
    svc.add_entry("ok", "pdq", far)
    return ids


def test_batch_answers_each_item_in_order_as_single_lookups_do(db, tmp_path, keys):
    ids = _seed(db)
    rng = np.random.default_rng(3)
    items = [
        {"id": "c1", "signal_type": "pdq", "value": _flip(PDQ_A, [1, 2, 3])},
        {"id": "c2", "signal_type": "md5", "value": MD5.upper()},
        {"id": "c3", "signal_type": "pdq", "value": "nothex"},  # a bad value: an error in its place
        {"id": "c4", "md5": "0" * 32, "pdq": PDQ_A, "pdq_quality": 90},  # a content's hashes
        {"id": "c5", "signal_type": "pdq", "value": _flip(PDQ_A, range(0, 200, 5))},  # on the allow bank
        {"id": "c6", "pdq": PDQ_A, "pdq_quality": 10},  # too weak to use: exact hashes only (none)
        {"id": "c7"},  # nothing to look up
    ] + [{"signal_type": "pdq", "value": words_to_hex(w)} for w in rng.integers(0, 2**64, (5, 4), dtype=np.uint64)]
    app = _app(db, tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        h = auth(keys["matcher"])
        r = c.post("/v1/match/batch", json={"items": items}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        res = body["results"]
        assert body["count"] == len(items) == len(res) and body["errors"] == 2
        assert [x["query"].get("id") for x in res[:7]] == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
        assert [(m["entry_id"], m["distance"]) for m in res[0]["matches"]] == [(ids["pdq"], 3)]
        assert res[0]["verdict"]["decision"] == "block"
        assert [m["entry_id"] for m in res[1]["matches"]] == [ids["md5"]] and res[1]["query"]["value"] == MD5
        assert res[2]["error"]["status"] == 422 and "matches" not in res[2]
        assert {m["signal_type"] for m in res[3]["matches"]} == {"pdq"}
        assert res[4]["matches"] == [] and res[4]["suppressed"] and res[4]["allowed_by"]
        assert res[5]["matches"] == [] and res[5]["warnings"]
        assert res[6]["error"]["status"] == 422
        # every answered item equals the single lookup of the same signal, minus the echoed id
        for item, got in zip(items, res):
            if "signal_type" not in item or "error" in got:
                continue
            one = c.get("/v1/match", params={"signal_type": item["signal_type"], "value": item["value"]},
                        headers=h).json()
            for k in ("matches", "suppressed", "allowed_by", "verdict", "warnings", "rollout_skipped"):
                assert got[k] == one[k], k
    app.state.consentry.match_log.close()


def test_batch_logs_and_rate_counts_per_item(db, tmp_path, keys):
    from sqlalchemy import select

    from consentry.db.models import MatchLog

    _seed(db)
    app = _app(db, tmp_path, match_rate_limit=1.0, match_rate_burst=5.0)
    with TestClient(app, raise_server_exceptions=False) as c:
        h = auth(keys["matcher"])
        items = [{"id": str(i), "signal_type": "md5", "value": MD5} for i in range(8)]
        r = c.post("/v1/match/batch", json={"items": items}, headers=h)
        assert r.status_code == 200
        res = r.json()["results"]
        # a bucket of 5 tokens: 5 items answered, the rest refused one by one, in order
        assert [("error" in x) for x in res] == [False] * 5 + [True] * 3
        assert res[7]["error"]["status"] == 429 and res[7]["error"]["retry_after"] >= 1
        assert res[7]["query"] == {"id": "7"}
        # no token left for even the first item: the request itself is a 429
        r = c.post("/v1/match/batch", json={"items": items[:1]}, headers=h)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    app.state.consentry.match_log.close()
    with db.session() as s:
        rows = list(s.scalars(select(MatchLog)))
    assert len(rows) == 5 and {r.route for r in rows} == {"POST /v1/match/batch"}
    assert all(r.signal_types == "md5" and r.result_count == 1 for r in rows)


def test_batch_runs_the_rules_per_item(db, tmp_path, keys):
    BankService(db).create_bank("mine", "custom")
    BankService(db).add_entry("mine", "md5", MD5)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: mine-from-u1, description: known uploader, "
                     "when: {match: {bank: mine}, uploader_id: u1}, actions: [block]}\n")
    app = _app(db, tmp_path, rules_path=rules)
    with TestClient(app) as c:
        items = [{"md5": MD5, "uploader_id": "u1"}, {"md5": MD5}, {"md5": MD5, "uploader_id": "u2"}]
        res = c.post("/v1/match/batch", json={"items": items, "uploader_id": "u1"},
                     headers=auth(keys["matcher"])).json()["results"]
        # the item's uploader wins over the batch's, which is the default
        assert [x["verdict"]["rules"] for x in res] == [["mine-from-u1"], ["mine-from-u1"], []]
        assert [x["verdict"]["decision"] for x in res] == ["block", "block", "review"]
    app.state.consentry.match_log.close()


def test_batch_limits_roles_and_bad_input(db, tmp_path, keys):
    _seed(db)
    app = _app(db, tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        item = {"signal_type": "md5", "value": MD5}
        assert c.post("/v1/match/batch", json={"items": [item]}).status_code == 401
        for role in ROLES:
            r = c.post("/v1/match/batch", json={"items": [item]}, headers=auth(keys[role]))
            assert r.status_code == (200 if role in (*MATCHERS, "admin") else 403), role
        h = auth(keys["matcher"])
        miss = {"signal_type": "md5", "value": "0" * 32}  # no match: no review cases for 1,000 items
        assert c.post("/v1/match/batch", json={"items": [miss] * 1000}, headers=h).status_code == 200
        r = c.post("/v1/match/batch", json={"items": [item] * 1001}, headers=h)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert c.post("/v1/match/batch", json={"items": []}, headers=h).status_code == 422
        assert c.post("/v1/match/batch", content=b"{not json", headers=h).status_code == 422
        assert c.post("/v1/match/batch", json={"items": [item], "bank": ["nope"]}, headers=h).status_code == 404
        r = c.post("/v1/match/batch", json={"items": [{"signal_type": "teapot", "value": "x"}]}, headers=h)
        assert r.status_code == 200 and r.json()["results"][0]["error"]["type"] == "bad-signal-type"
        r = c.post("/v1/match/batch", json={"items": [item], "bank": ["ok"]}, headers=h)
        assert r.json()["results"][0]["matches"] == []  # only the banks asked for
    app.state.consentry.match_log.close()


def test_match_many_equals_match_one_by_one(db):
    _seed(db)
    m = Matcher(db).load()
    rng = np.random.default_rng(8)
    qs = [QuerySignals(pdq=[_flip(PDQ_A, rng.choice(256, size=int(k), replace=False))]) for k in range(0, 40, 3)]
    qs += [QuerySignals(exact={"md5": MD5}), QuerySignals(), QuerySignals(pdq=[PDQ_A] * 8)]
    for banks in (None, ["hub"], ["ok"]):
        many = m.match_many(qs, banks)
        assert [o.to_dict() for o in many] == [m.match(q, banks).to_dict() for q in qs]
        assert sum(bool(o.matches) for o in many) >= (3 if banks != ["ok"] else 0)


def test_cli_match_stdin_uses_the_batch_path(db, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from consentry.cli import app as cli

    ids = _seed(db)
    monkeypatch.setenv("DATABASE_URL", str(db.engine.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path))
    import consentry.config as config

    monkeypatch.setattr(config, "_settings", None)
    calls = []
    orig = Matcher.match_many

    def spy(self, queries, banks=None):
        calls.append(len(queries))
        return orig(self, queries, banks)

    monkeypatch.setattr(Matcher, "match_many", spy)
    lines = [f"pdq {_flip(PDQ_A, [4])}", "md5 " + "0" * 32, "pdq nothex",
             json.dumps({"path": "a.jpg", "md5": MD5}), f"md5 {MD5}"]
    r = CliRunner().invoke(cli, ["match", "--stdin"], input="\n".join(lines) + "\n")
    assert r.exit_code != 0  # a bad line makes the exit status non-zero, as before
    out = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(out) == 5
    assert [m["entry_id"] for m in out[0]["matches"]] == [ids["pdq"]] and out[0]["matches"][0]["distance"] == 1
    assert out[1]["matches"] == [] and out[2]["error"] and out[2]["matches"] == []
    assert [m["entry_id"] for m in out[3]["matches"]] == [ids["md5"]] and out[3]["query"]["line"] == 4
    assert [m["entry_id"] for m in out[4]["matches"]] == [ids["md5"]]
    assert sum(calls) == 4 and len(calls) >= 1
