"""StopNCII client against a loopback stand-in of the partner API (FetchHashes / SubmitFeedback)."""

from __future__ import annotations

import json
import os

import pytest

from exchange_standin import StandIn

SUB, FETCH, FEED = "sub-key-" + "a" * 12, "fetch-fn-" + "b" * 12, "feed-fn-" + "c" * 12


def hx(n: int = 64) -> str:
    return os.urandom(n // 2).hex()


@pytest.fixture
def store(db, tmp_path):
    """An exchange store on SQLite, then on PostgreSQL (conftest's ``db`` fixture)."""
    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.exchanges.base import ExchangeStore

    return ExchangeStore(BankService(db), Settings(home=tmp_path, secret_key="test-instance-secret"))


def add(store, url, **opts):
    from consentry.exchanges.programs import add_program

    creds = json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH, "feedback_function_key": FEED})
    return add_program(store, "stopncii", "sn", "sn", creds, options={"base_url": url, **opts})


def rec(value, status="Active", cases=None, st="ImagePDQ", ts=1700000000):
    return {"lastModtimestamp": ts, "signalType": st, "hashValue": value, "hashStatus": status,
            "caseNumbers": cases if cases is not None else {"c1": status}, "CSPFeedbacks": []}


def page(records, token="", more=False, ts=1700000100):
    return 200, json.dumps({"count": len(records), "nextPageToken": token, "nextSetTimestamp": ts,
                            "hasMoreRecords": more, "hashRecords": records}), {"Content-Type": "application/json"}


def client(store, **kw):
    from consentry.exchanges.programs import client_for_program

    waits = []
    return client_for_program(store, "sn", sleep=waits.append, **kw), waits


def status_of(store, value, st="pdq"):
    e = store.banks.find_entry("sn", st, value)
    return e.status if e else None


def test_paging_checkpoint_only_after_a_complete_run_and_keys_as_headers(store):
    from consentry.exchanges.base import ExchangeError, pull
    from consentry.exchanges.programs import describe

    a, b, c = hx(), hx(), hx()
    fail_page2 = {"on": True}

    def route(req):
        assert req.path == "/FetchHashes"
        if not req.query.get("nextPageToken"):
            return page([rec(a), rec(b)], token="tok-1", more=True, ts=1700000050)
        if fail_page2["on"]:
            return 500, "boom"
        return page([rec(c)], ts=1700000200)

    with StandIn(route) as srv:
        add(store, srv.url)
        cl, waits = client(store)
        with pytest.raises(ExchangeError):
            pull(store, "sn", client=cl)
        assert waits  # it backed off before giving up
        d = describe(store, "sn")
        assert d["checkpoint"] == {} and "HTTP 500" in d["last_error"] and d["last_success_at"] is None
        assert status_of(store, a) == "active"  # page 1 applied; re-reading snapshots is harmless
        fail_page2["on"] = False
        cl, _ = client(store)
        r = pull(store, "sn", client=cl)
        assert r.added == 1 and r.unchanged == 2 and status_of(store, c) == "active"
        d = describe(store, "sn")
        assert d["checkpoint"]["next_set_timestamp"] == 1700000200 and d["last_error"] is None
        assert d["last_added"] == 1 and d["stale"] is False
        srv.seen.clear()
        cl, _ = client(store)
        pull(store, "sn", client=cl)
        assert srv.seen[0].query["startTimestamp"] == "1700000200"
    for s in srv.seen:
        assert s.headers["ocp-apim-subscription-key"] == SUB and s.headers["x-functions-key"] == FETCH
    assert SUB not in json.dumps(describe(store, "sn")) and FETCH not in json.dumps(describe(store, "sn"))


def test_snapshots_withdrawals_cases_tmk_and_bad_records(store):
    from consentry.exchanges.base import pull
    from consentry.exchanges.programs import kept_signals

    a, b, md5, tmk = hx(), hx(), hx(32), "tmk-" + hx(200)
    run = {"n": 0}

    def route(req):
        run["n"] += 1
        if run["n"] == 1:
            return page([rec(a), rec(b, cases={"c1": "Withdrawn", "c2": "Active"}, status="Withdrawn"),
                         rec(md5, st="VideoMD5"), rec(tmk, st="VideoTMK"), rec("zz-not-hex"),
                         {"signalType": "ImagePDQ"}, "not an object"])
        return page([rec(a, status="Withdrawn", cases={"c1": "Withdrawn"}), rec(tmk, st="VideoTMK", status="Deleted"),
                     rec(b, cases={"c1": "Withdrawn", "c2": "Withdrawn"}, status="Active")], ts=1700000300)

    with StandIn(route) as srv:
        add(store, srv.url)
        r = pull(store, "sn", client=client(store)[0])
        assert status_of(store, a) == "active" and status_of(store, md5, "md5") == "active"
        assert status_of(store, b) == "active"  # withdrawn by one person, still active in another case
        assert kept_signals(store, "sn") == [("tmk", tmk)]  # kept, not a bank entry
        assert r.skipped == 3 and len(r.errors) == 3
        r = pull(store, "sn", client=client(store)[0])
        assert status_of(store, a) == "withdrawn" and status_of(store, b) == "withdrawn"
        assert kept_signals(store, "sn") == []
        assert r.removed == 2


def test_429_retry_after_is_honoured_and_expired_page_token_restarts_once(store):
    from consentry.exchanges.base import pull

    a, b = hx(), hx()
    calls = {"n": 0}

    def route(req):
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, "slow down", {"Retry-After": "7"}
        tok = req.query.get("nextPageToken")
        if tok == "old":
            return 400, json.dumps({"error": "page token expired"})
        if tok == "fresh":
            return page([rec(b)])
        return page([rec(a)], token="old" if calls["n"] == 2 else "fresh", more=True)

    with StandIn(route) as srv:
        add(store, srv.url)
        cl, waits = client(store)
        r = pull(store, "sn", client=cl)
        assert waits[0] == 7.0
        assert r.added == 2 and status_of(store, b) == "active"
        tokens = [s.query.get("nextPageToken") for s in srv.seen]
        assert tokens == [None, None, "old", None, "fresh"]


def test_wrong_credentials_and_oversized_answers(store):
    from consentry.exchanges.base import ExchangeError, pull
    from consentry.exchanges.programs import describe

    def route(req):
        if req.headers.get("x-functions-key") != FETCH:
            return 401, "no"
        return 200, b"[" + b" " * 5000 + b"]"

    with StandIn(route) as srv:
        add(store, srv.url)
        with pytest.raises(ExchangeError, match="over 1000 bytes"):
            pull(store, "sn", client=client(store, max_bytes=1000)[0])
        from consentry.exchanges.programs import rotate_credentials

        rotate_credentials(store, "sn", json.dumps({"subscription_key": SUB, "fetch_function_key": "wrong"}))
        with pytest.raises(ExchangeError, match="refused the credentials"):
            pull(store, "sn")
        d = describe(store, "sn")
        assert "refused the credentials" in d["last_error"] and "wrong" not in json.dumps(d)
        assert d["credentials_rotated_at"]
    from sqlalchemy import text

    with store.db.session() as s:  # every column of the exchange row, on either database
        stored = json.dumps([list(map(str, r)) for r in s.execute(text("SELECT * FROM exchanges"))])
    assert SUB not in stored and FETCH not in stored and "wrong" not in stored
    if store.db.dialect == "sqlite":
        raw = (store.settings.home / "consentry.db").read_bytes()
        assert SUB.encode() not in raw and FETCH.encode() not in raw and b"wrong" not in raw


def test_bad_credentials_files_are_refused_without_echo(store):
    from consentry.exchanges.base import ExchangeError
    from consentry.exchanges.programs import add_program

    for text in ("", "{not json", json.dumps({"subscription_key": "s3cr3t-value"}), "onlyone"):
        with pytest.raises(ExchangeError) as e:
            add_program(store, "stopncii", "x", None, text, options={"base_url": "http://127.0.0.1:9"})
        assert "s3cr3t" not in str(e.value)
    with pytest.raises(ExchangeError, match="secret"):
        from consentry.exchanges.programs import parse_options

        parse_options(["api_key=abc"])
    with pytest.raises(ExchangeError, match="test URL"):
        add_program(store, "stopncii", "x", None, f"{FETCH},{SUB}", environment="test")


def test_an_interrupted_rerun_never_brings_back_a_withdrawal_applied_before_it(store):
    """Issue 13: the checkpoint moves only after a complete run, so a resumed run re-reads pages
    older than a withdrawal it already applied; an older Active snapshot must not revive the hash
    (even if this run is interrupted again before the withdrawal's page), a newer one does."""
    from consentry.exchanges.base import ExchangeError, pull

    a, b, c = hx(), hx(), hx()
    mode = {"fail_from": 3}

    def route(req):
        k = int((req.query.get("nextPageToken") or "p1")[1:])
        if k >= mode["fail_from"]:
            return 500, "boom"
        if k == 1:
            return page([rec(a, ts=1700000001), rec(b, ts=1700000001)], token="p2", more=True)
        if k == 2:
            return page([rec(a, "Withdrawn", ts=1700000002), rec(b, "Withdrawn", ts=1700000002)],
                        token="p3", more=True)
        return page([rec(c, ts=1700000003), rec(b, ts=1700000003)], ts=1700000300)  # b: submitted again

    with StandIn(route) as srv:
        add(store, srv.url)
        with pytest.raises(ExchangeError):
            pull(store, "sn", client=client(store)[0])  # pages 1-2 applied, page 3 fails
        assert status_of(store, a) == "withdrawn" and status_of(store, b) == "withdrawn"
        mode["fail_from"] = 2
        with pytest.raises(ExchangeError):
            pull(store, "sn", client=client(store)[0])  # the re-run reads page 1 again, then fails
        assert status_of(store, a) == "withdrawn" and status_of(store, b) == "withdrawn"
        mode["fail_from"] = 99
        r = pull(store, "sn", client=client(store)[0])
        assert status_of(store, a) == "withdrawn" and status_of(store, c) == "active"
        assert status_of(store, b) == "active"  # a newer Active snapshot does bring it back
        assert r.added == 2 and r.removed == 0
