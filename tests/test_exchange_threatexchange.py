"""ThreatExchange (Graph API) client against a loopback stand-in: threat_updates and reactions."""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs

from exchange_standin import StandIn
from test_exchange_stopncii import store  # noqa: F401  (fixture)

TOKEN = "1234567890|" + "s" * 24


def hx(n=64):
    return os.urandom(n // 2).hex()


def upd(i, typ, value, t, tags=("nciitag",), delete=False, status="MALICIOUS"):
    u = {"id": str(i), "indicator": value, "type": typ, "last_updated": t, "should_delete": delete}
    if not delete:
        u["descriptors"] = {"data": [{"id": str(9000 + i), "owner": {"id": "55"}, "status": status,
                                      "tags": list(tags)}]}
    return u


def test_threat_updates_paging_tombstones_tags_checkpoint_and_reactions(store):
    from consentry.exchanges.base import pull
    from consentry.exchanges.feedback import OutboxItem
    from consentry.exchanges.programs import add_program, client_for_program, describe

    p1, p2, m1, other = hx(), hx(), hx(32), hx()
    phase = {"n": 1}

    def route(req):
        if req.method == "POST":
            return 200, json.dumps({"success": True})
        assert req.path == "/777/threat_updates/"
        if phase["n"] == 2:
            return 200, json.dumps({"data": [upd(1, "HASH_PDQ", p1, 300, delete=True)]})
        if req.query.get("after") == "2":
            return 200, json.dumps({"data": [upd(3, "HASH_VIDEO_MD5", m1, 200),
                                             upd(4, "HASH_PDQ", other, 210, tags=("unrelated",)),
                                             upd(5, "URI", "http://x", 220)]})
        nxt = f"{srv.url}/777/threat_updates/?after=2&limit=2"
        return 200, json.dumps({"data": [upd(1, "HASH_PDQ", p1, 100), upd(2, "HASH_PDQ", p2, 150, status="NON_MALICIOUS")],
                                "paging": {"next": nxt}})

    with StandIn(route) as srv:
        add_program(store, "threatexchange", "te", "te", json.dumps({"access_token": TOKEN}),
                    options={"base_url": srv.url, "privacy_groups": "777", "require_tags": "nciitag"})
        pull(store, "te", client=client_for_program(store, "te", sleep=lambda s: None))
        e = store.banks.find_entry("te", "pdq", p1)
        assert e.status == "active" and e.tags == ["nciitag"] and "te:9001" in e.external_ids
        assert store.banks.find_entry("te", "pdq", p2) is None  # only a NON_MALICIOUS opinion
        assert store.banks.find_entry("te", "md5", m1).status == "active"
        assert store.banks.find_entry("te", "pdq", other) is None  # not carrying a required tag
        assert describe(store, "te")["checkpoint"]["groups"] == {"777": 220}
        phase["n"] = 2
        srv.seen.clear()
        pull(store, "te", client=client_for_program(store, "te", sleep=lambda s: None))
        assert srv.seen[0].query["start_time"] == "220"
        assert store.banks.find_entry("te", "pdq", p1).status == "withdrawn"
        cl = client_for_program(store, "te")
        out = cl.send([OutboxItem(1, "te", "feedback", "pdq", p1, "pending_review", "te:9001", "pending", 0,
                                  None, None, None, None),
                       OutboxItem(2, "te", "feedback", "pdq", p1, "not_blocked", "te:9001", "pending", 0,
                                  None, None, None, None)])
        assert out == {1: None, 2: None}
    posts = [s for s in srv.seen if s.method == "POST"]
    assert [p.path for p in posts] == ["/9001", "/9001"]
    assert [parse_qs(p.body.decode())["reactions"] for p in posts] == [["SAW_THIS_TOO"], ["DISAGREE_WITH_TAGS"]]
    for s in srv.seen:
        assert s.headers["authorization"] == f"OAuth {TOKEN}" and TOKEN.split("|")[1] not in s.raw_path
