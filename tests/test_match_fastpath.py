"""GET /v1/match's fast path (web/fastpath.py, issue 20.5): the ordinary lookup is answered without
the framework's per-request machinery, with the same bytes as the declared route; every other
request (no key, a key not yet cached, a revoked key, a role that may not match, an unusual query)
still goes through the route and its checks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.keys import KeyStore
from consentry.web import fastpath
from consentry.web.app import create_app
from consentry.web.fastpath import simple_query

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _flip(hexhash: str, bits) -> str:
    v = int(hexhash, 16)
    for b in bits:
        v ^= 1 << int(b)
    return f"{v:064x}"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def _seed(db) -> None:
    svc = BankService(db)
    svc.create_bank("hub", "ncii", shared=True)
    svc.create_bank("own", "custom")
    svc.create_bank("trial", "custom", match_percent=0)  # gradual rollout: held back for every lookup
    svc.create_bank("ok", "allow")
    svc.add_entry("hub", "pdq", PDQ_A, source="test", tags=["a"])
    svc.add_entry("own", "md5", MD5)
    svc.add_entry("trial", "pdq", _flip(PDQ_A, [7]))
    far = _flip(PDQ_A, range(0, 200, 5))
    svc.add_entry("hub", "pdq", far)
    svc.add_entry("ok", "pdq", far)


QUERIES = [
    {"signal_type": "pdq", "value": _flip(PDQ_A, [1, 2, 3])},  # a match (and a held-back one)
    {"signal_type": "pdq", "value": "0" * 64},  # a miss (and a low-quality warning)
    {"signal_type": "MD5", "value": MD5.upper()},  # an exact hash, canonicalised
    {"signal_type": "pdq", "value": _flip(PDQ_A, range(0, 200, 5))},  # on the allow bank
    {"signal_type": "pdq", "value": PDQ_A, "bank": ["own", "hub"], "uploader_id": "u1", "surface": "feed"},
    {"signal_type": "pdq", "value": "nothex"},  # a bad value: 422 problem
    {"signal_type": "sha1", "value": "zz"},  # a bad exact value: 422 problem
    {"signal_type": "tmk", "value": "00"},  # an unknown signal type: 422 problem
    {"signal_type": "pdq", "value": PDQ_A, "bank": ["nope"]},  # an unknown bank: 404 problem
    {"signal_type": "photodna", "value": "0" * 288},  # needs a plug-in: 422
]


def _answers(db, tmp_path, keys: dict[str, str], with_fast_path: bool) -> list[tuple[int, str, bytes]]:
    app = create_app(Settings(home=tmp_path / ("fast" if with_fast_path else "slow")), db, background=False)
    app.match_fast_path = with_fast_path  # False: the declared route alone (the stack is built on first use)
    out = []
    with TestClient(app, raise_server_exceptions=False) as c:
        for role in ("matcher", "curator", "partner"):
            for q in QUERIES:
                c.get("/v1/match", params=q, headers=auth(keys[role]))  # the first call caches the key
                r = c.get("/v1/match", params=q, headers=auth(keys[role]))
                out.append((r.status_code, r.headers["content-type"], r.content))
    app.state.consentry.match_log.close()
    return out


def test_fast_path_answers_with_the_routes_bytes(db, tmp_path, monkeypatch):
    _seed(db)
    store = KeyStore(db)
    keys = {role: store.create(role, role)[0] for role in ("matcher", "curator", "partner")}
    calls = []
    real = fastpath.lookup_value
    monkeypatch.setattr(fastpath, "lookup_value", lambda *a, **k: calls.append(k) or real(*a, **k))

    slow = _answers(db, tmp_path, keys, with_fast_path=False)
    assert not calls
    fast = _answers(db, tmp_path, keys, with_fast_path=True)
    # every second call of each query went through the fast path (the first cached the key)
    assert len(calls) >= len(QUERIES) * 3
    assert [s for s, _, _ in slow][:len(QUERIES)] == [200, 200, 200, 200, 200, 422, 422, 422, 404, 422]
    for (ss, st, sb), (fs, ft, fb), q in zip(slow, fast, QUERIES * 3):
        assert (fs, ft) == (ss, st), q
        assert fb == sb, q
    # the answers say what they should: a match, a partner's view without provenance
    import json

    first = json.loads(fast[0][2])
    assert first["matches"][0]["bank"] == "hub" and first["matches"][0]["provenance"]["source"] == "test"
    assert first["rollout_skipped"] is None  # a matcher key does not see held-back matches
    curator = json.loads(fast[len(QUERIES)][2])
    assert [x["bank"] for x in curator["rollout_skipped"]] == ["trial"]
    partner = json.loads(fast[2 * len(QUERIES)][2])
    assert partner["matches"][0]["provenance"]["source"] is None


def test_other_requests_go_through_the_route(db, tmp_path, monkeypatch):
    _seed(db)
    store = KeyStore(db)
    matcher, matcher_info = store.create("matcher", "m")
    auditor = store.create("auditor", "a")[0]
    calls = []
    real = fastpath.lookup_value
    monkeypatch.setattr(fastpath, "lookup_value", lambda *a, **k: calls.append(k) or real(*a, **k))
    app = create_app(Settings(home=tmp_path), db, background=False)
    q = {"signal_type": "pdq", "value": PDQ_A}
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/match", params=q)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        r = c.get("/v1/match", params=q, headers=auth("cst_not-a-key"))
        assert r.status_code == 401
        assert c.get("/v1/match", params=q, headers=auth(auditor)).status_code == 403
        assert c.get("/v1/match", params=q, headers=auth(auditor)).status_code == 403  # cached, still 403
        assert not calls
        # a key seen for the first time is verified by the route, then answered fast
        assert c.get("/v1/match", params=q, headers=auth(matcher)).json()["matches"]
        assert not calls
        assert c.get("/v1/match", params=q, headers=auth(matcher)).json()["matches"]
        assert len(calls) == 1
        assert c.get("/v1/match", params={"signal_type": "pdq"}, headers=auth(matcher)).status_code == 422
        # an unusual query (a parameter twice, an unknown one) is the route's
        assert c.get("/v1/match?signal_type=pdq&signal_type=md5&value=" + MD5, headers=auth(matcher)).json()[
            "query"] == {"signal_type": "md5", "value": MD5}
        assert c.get("/v1/match", params={**q, "extra": "1"}, headers=auth(matcher)).status_code == 200
        assert len(calls) == 1
        # revoking through this worker's store takes effect at once: the fast path no longer knows
        # the key (other workers' caches expire within KeyStore.cache_seconds, as before)
        app.state.keys.revoke(matcher_info.id)
        assert c.get("/v1/match", params=q, headers=auth(matcher)).status_code == 401
        assert len(calls) == 1
    app.state.consentry.match_log.close()


@pytest.mark.parametrize("raw, expected", [
    (b"signal_type=pdq&value=ab", {"signal_type": "pdq", "value": "ab"}),
    (b"signal_type=pdq&value=ab&bank=a&bank=b&uploader_id=u&surface=s",
     {"signal_type": "pdq", "value": "ab", "bank": ["a", "b"], "uploader_id": "u", "surface": "s"}),
    (b"signal_type=pdq&value=a%20b", {"signal_type": "pdq", "value": "a b"}),
    (b"signal_type=pdq", None),
    (b"value=ab", None),
    (b"signal_type=pdq&value=ab&value=cd", None),
    (b"signal_type=pdq&value=ab&other=1", None),
    (b"signal_type=pdq&value=ab&uploader_id=" + b"x" * 201, None),
])
def test_simple_query(raw, expected):
    got = simple_query(raw)
    if expected is None:
        assert got is None
    else:
        assert got == {"bank": None, "uploader_id": None, "surface": None, **expected}
