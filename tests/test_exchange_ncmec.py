"""NCMEC hash sharing v2 client against a loopback stand-in (status, entries, paging, feedback)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from exchange_standin import StandIn
from test_exchange_stopncii import store  # noqa: F401  (fixture)

NS = "https://hashsharing.ncmec.org/hashsharing/v2"
USER, PASSWORD = "esp-user", "pa55-" + "d" * 12
STATUS = f'<?xml version="1.0"?><status xmlns="{NS}"><username>{USER}</username><member id="7">Us</member></status>'


def hx(n=64):
    return os.urandom(n // 2).hex()


def entries(body: str, next_: str = "") -> str:
    paging = f"<paging><next>{next_.replace('&', '&amp;')}</next></paging>" if next_ else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}">{body}{paging}</queryResult>'


def image(eid, md5, sha1=None, pdq=None, member=42):
    fps = f"<md5>{md5}</md5>" + (f"<sha1>{sha1}</sha1>" if sha1 else "") + (f"<pdq>{pdq}</pdq>" if pdq else "")
    return (f'<image><member id="{member}">M</member><timestamp>2024-01-01T00:00:00Z</timestamp><id>{eid}</id>'
            f"<classification>A1</classification><fingerprints>{fps}</fingerprints></image>")


def add(store, url, **opts):
    from consentry.exchanges.programs import add_program

    return add_program(store, "ncmec", "nc", "nc", f"{USER}:{PASSWORD}", options={"base_url": url, **opts})


def client(store, now=1_700_000_000):
    from consentry.exchanges.programs import client_for_program

    waits = []
    return client_for_program(store, "nc", sleep=waits.append, now=lambda: now), waits


def test_environments_map_to_pytx_urls(store):
    from consentry.exchanges.base import ExchangeError
    from consentry.exchanges.programs import add_program

    d = add_program(store, "ncmec", "g", None, json.dumps({"user": "u", "password": "p"}), environment="test",
                    options={"database": "ngo-generative-ai"})
    assert d["url"] == "https://hashsharing-test.ncmec.org/generative-ai-csam" and d["environment"] == "test"
    d = add_program(store, "ncmec", "i", None, "u:p")
    assert d["url"] == "https://report.cybertip.org/hashsharing"
    with pytest.raises(ExchangeError, match="database"):
        add_program(store, "ncmec", "z", None, "u:p", options={"database": "moon"})


def test_entries_follow_next_verbatim_checkpoint_after_range_and_tombstones(store):
    from consentry.exchanges.base import ExchangeError, pull
    from consentry.exchanges.programs import describe

    m1, s1, p1, m2, vm = hx(32), hx(40), hx(), hx(32), hx(32)
    nxt = "/v2/entries?from=2017-10-20T00%3A00%3A00.000Z&to=2023-11-14T22%3A13%3A15.000Z&start=2001&size=1000&max=3000&odd=%7E"
    state = {"fail": True, "phase": 1}

    def route(req):
        if req.path == "/v2/status":
            return 200, STATUS
        if req.raw_path == nxt:
            if state["fail"]:
                return 503, "busy"
            return 200, entries(f'<videos count="1" maxTimestamp="2024-01-01T00:00:00Z"><video><member id="42">M</member>'
                                f"<id>v1</id><fingerprints><md5>{vm}</md5></fingerprints></video></videos>")
        assert req.path == "/v2/entries"
        if state["phase"] == 1:
            return 200, entries(f'<images count="2" maxTimestamp="2024-01-01T00:00:00Z">{image("image1", m1, s1, p1)}'
                                f"{image('image2', m2)}</images>", nxt)
        return 200, entries('<images count="1" maxTimestamp="2024-01-02T00:00:00Z"><deletedImage><member id="42">M'
                            "</member><id>image1</id><timestamp>2024-01-02T00:00:00Z</timestamp></deletedImage></images>")

    with StandIn(route) as srv:
        add(store, srv.url)
        with pytest.raises(ExchangeError):
            pull(store, "nc", client=client(store)[0])
        d = describe(store, "nc")
        assert d["checkpoint"].get("to", 0) == 0 and d["checkpoint"]["paging_to"] == 1_700_000_000 - 5
        assert store.banks.find_entry("nc", "pdq", p1).status == "active"
        # resume: the saved paging link is followed verbatim, then the range is done
        state["fail"] = False
        srv.seen.clear()
        pull(store, "nc", client=client(store)[0])  # same clock: only the interrupted range is left
        assert [s.raw_path for s in srv.seen if s.path != "/v2/status"] == [nxt]
        assert store.banks.find_entry("nc", "md5", vm).meta["entry_type"] == "video"
        d = describe(store, "nc")
        assert d["checkpoint"]["to"] == 1_700_000_000 - 5 and "paging_url" not in json.dumps(d["checkpoint"])
        # the next run starts at the saved "to", in UTC
        state["phase"] = 2
        srv.seen.clear()
        r = pull(store, "nc", client=client(store, now=1_700_086_400)[0])
        q = [s for s in srv.seen if s.path == "/v2/entries"][0].query
        assert q["from"] == "2023-11-14T22:13:15Z" and q["to"] == "2023-11-15T22:13:15Z"
        assert r.removed == 3  # md5, sha1 and pdq of image1: the tombstone withdraws the whole entry
        assert store.banks.find_entry("nc", "pdq", p1).status == "withdrawn"
        assert store.banks.find_entry("nc", "md5", m2).status == "active"
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert all(s.headers["authorization"] == auth for s in srv.seen)


def test_links_to_other_hosts_unsafe_xml_and_wrong_credentials(store):
    from consentry.exchanges.base import ExchangeError, pull

    mode = {"m": "evil"}

    def route(req):
        if mode["m"] == "401":
            return 401, "no"
        if req.path == "/v2/status":
            return 200, STATUS
        if mode["m"] == "evil":
            return 200, entries(image("i", hx(32)), "//evil.example/v2/entries?x=1")
        return 200, ('<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "aaaa">]>'
                     f'<queryResult xmlns="{NS}"><images>&a;</images></queryResult>')

    with StandIn(route) as srv:
        add(store, srv.url)
        with pytest.raises(ExchangeError, match="paging link"):
            pull(store, "nc", client=client(store)[0])
        assert all(s.headers.get("host", "").startswith("127.0.0.1") for s in srv.seen)
        mode["m"] = "dtd"
        r = pull(store, "nc", client=client(store)[0])
        assert any("DTD" in e for e in r.errors)
        mode["m"] = "401"
        with pytest.raises(ExchangeError, match="refused the credentials"):
            pull(store, "nc", client=client(store)[0])


def test_feedback_affirmative_and_negative_with_the_only_reason(store):
    from consentry.exchanges.feedback import OutboxItem
    from consentry.exchanges.programs import client_for_program

    guid = "01234567-abcd-0123-4567-012345678900"

    def route(req):
        if req.path == "/v2/feedback/MD5/reasons":
            return 200, (f'<?xml version="1.0"?><feedbackReasons xmlns="{NS}"><availableFeedbackReasons>'
                         f'<reason guid="{guid}" name="Not CSAM" type="Md5"/></availableFeedbackReasons></feedbackReasons>')
        return 200, ""

    def item(i, status, st="md5", ext="42/image1"):
        return OutboxItem(i, "nc", "feedback", st, hx(32), status, ext, "pending", 0, None, None, None, None)

    with StandIn(route) as srv:
        add(store, srv.url)
        cl = client_for_program(store, "nc")
        out = cl.send([item(1, "blocked"), item(2, "not_blocked"), item(3, "pending_review"),
                       item(4, "blocked", ext=None)])
        assert out[1] is None and out[2] is None and out[3] and out[4]
    puts = [s for s in srv.seen if s.method == "PUT"]
    assert [p.path for p in puts] == ["/v2/entries/42/image1/MD5/feedback"] * 2
    assert b"<affirmative/>" in puts[0].body and f"<guid>{guid}</guid>".encode() in puts[1].body
    assert puts[0].headers["content-type"].startswith("application/xml")
