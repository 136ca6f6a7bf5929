"""Feedback from review to the exchange a matched entry came from, through the outbox; the CLI and
the API show exchanges and the outbox, never credentials."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from exchange_standin import StandIn
from test_exchange_stopncii import FEED, FETCH, SUB, add, page, rec, store  # noqa: F401

UPLOADER = "uploader-account-31337"


def hx(n=64):
    return os.urandom(n // 2).hex()


def _case(store, value):
    from consentry.review.cases import CaseService, ItemInput

    e = store.banks.find_entry("sn", "pdq", value)
    cases = CaseService(store.db, store.banks)
    c = cases.submit(ItemInput(pdq=value, md5=hx(32), matches=[
        {"bank": "sn", "entry_id": e.id, "signal_type": "pdq", "distance": 3}]), uploader_id=UPLOADER,
        note="private reviewer note")
    return cases, c


def test_review_decisions_flow_to_stopncii_once_with_hashes_only(store):
    from consentry.db.models import utcnow
    from consentry.exchanges.base import pull
    from consentry.exchanges.feedback import deliver, list_outbox
    from consentry.review.audit import AuditLog

    value = hx()
    sub = {"status": 200}

    def route(req):
        if req.path == "/FetchHashes":
            return page([rec(value)])
        return sub["status"], "{}", {"Retry-After": "120"} if sub["status"] == 503 else {}

    with StandIn(route) as srv:
        add(store, srv.url, submit_banks="confirmed")
        store.banks.create_bank("confirmed", "ncii", "", source="local")
        pull(store, "sn")
        cases, c = _case(store, value)
        again = cases.submit(__import__("consentry.review.cases", fromlist=["ItemInput"]).ItemInput(
            pdq=value, sha256="ab" * 32, matches=[{"bank": "sn", "entry_id": store.banks.find_entry("sn", "pdq", value).id}]),
            uploader_id="someone-else")
        assert again.id != c.id
        items = list_outbox(store, "sn")
        assert [(i.status, i.state) for i in items] == [("pending_review", "pending")]  # once, not per case
        # a 503 with Retry-After: kept, retried later
        sub["status"] = 503
        rep = deliver(store, "sn")
        assert rep[0]["retry"] == 1
        it = list_outbox(store, "sn")[0]
        assert it.attempts == 1 and "503" in it.last_error
        delay = (it.next_attempt_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)).total_seconds()
        assert 100 < delay <= 120
        sub["status"] = 200
        assert deliver(store, "sn") == []  # not due yet
        deliver(store, "sn", now=utcnow() + timedelta(seconds=121))
        assert list_outbox(store, "sn", "sent")[0].status == "pending_review"
        # confirm: "blocked" waits out the undo window; undo cancels it; a new dismiss queues not_blocked
        d = cases.decide(c.id, "rev1", "confirm", bank="confirmed")
        assert {(i.kind, i.status, i.state) for i in list_outbox(store, "sn", "pending")} == {
            ("feedback", "blocked", "pending"), ("submit", "blocked", "pending")}
        assert deliver(store, "sn") == []
        cases.undo(d.id, "rev1")
        assert list_outbox(store, "sn", "pending") == []
        cases.decide(c.id, "rev1", "dismiss")
        deliver(store, "sn", now=utcnow() + timedelta(seconds=60))
        assert [i.status for i in list_outbox(store, "sn", "sent")] == ["pending_review", "not_blocked"]
        assert deliver(store, "sn", now=utcnow() + timedelta(days=1)) == []  # nothing is sent twice
    posts = [s for s in srv.seen if s.method == "POST"]
    assert [p.path for p in posts] == ["/SubmitFeedback"] * 3
    bodies = [json.loads(p.body) for p in posts]
    assert bodies[-1] == {"count": 1, "hashFeedbacks": [{"hashValue": value, "feedbackValue": "NotBlocked", "tags": []}]}
    assert bodies[0]["hashFeedbacks"][0]["feedbackValue"] == "PendingReview"
    for p in posts:
        assert p.headers["x-functions-key"] == FEED and p.headers["ocp-apim-subscription-key"] == SUB
        assert UPLOADER.encode() not in p.body and b"note" not in p.body and b"rev1" not in p.body
    events = [e.event_type for e in AuditLog(store.db).list(limit=1000)]
    assert events.count("exchange.feedback_sent") == 2


def test_outbox_gives_up_after_max_attempts_and_submit_goes_to_submithashes(store):
    from consentry.db.models import utcnow
    from consentry.exchanges import feedback as fb
    from consentry.exchanges.base import pull

    value = hx()

    def route(req):
        if req.path == "/FetchHashes":
            return page([rec(value)])
        if req.path == "/SubmitHashes":
            return 200, "{}"
        return 500, "down"

    with StandIn(route) as srv:
        add(store, srv.url)
        pull(store, "sn")
        _case(store, value)
        t = utcnow()
        for _ in range(fb.MAX_ATTEMPTS):
            t += timedelta(days=1)
            fb.deliver(store, "sn", now=t)
        it = fb.list_outbox(store, "sn")[0]
        assert it.state == "failed" and it.attempts == fb.MAX_ATTEMPTS


def test_cli_add_list_rotate_feedback_list_and_api(store, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from consentry.cli import app

    monkeypatch.setenv("CONSENTRY_HOME", str(store.settings.home))
    monkeypatch.setenv("CONSENTRY_SECRET_KEY", "test-instance-secret")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr("consentry.cli_victims._store", lambda: store)
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"subscription_key": SUB, "fetch_function_key": FETCH}))
    value = hx()
    with StandIn(lambda req: page([rec(value)])) as srv:
        r = CliRunner().invoke(app, ["exchange", "add", "--type", "stopncii", "--name", "sn", "--bank", "sn",
                                     "--credentials-file", str(creds), "--option", f"base_url={srv.url}"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(app, ["exchange", "pull", "sn"])
        assert r.exit_code == 0, r.output
        creds.write_text(json.dumps({"subscription_key": "rotated-sub-key", "fetch_function_key": FETCH}))
        r = CliRunner().invoke(app, ["exchange", "rotate-credentials", "sn", "--credentials-file", str(creds)])
        assert r.exit_code == 0, r.output
        CliRunner().invoke(app, ["exchange", "pull", "sn"])
        assert srv.seen[-1].headers["ocp-apim-subscription-key"] == "rotated-sub-key"
    r = CliRunner().invoke(app, ["exchange", "list"])
    row = json.loads(r.stdout.splitlines()[0])
    assert row["last_success_at"] and row["checkpoint"]["next_set_timestamp"] and row["stale"] is False
    assert SUB not in r.output and FETCH not in r.output and "rotated-sub-key" not in r.output
    _case(store, value)
    r = CliRunner().invoke(app, ["exchange", "feedback", "--list"])
    assert json.loads(r.stdout)["status"] == "pending_review"
    # stale after 30 days without a successful pull
    from sqlalchemy import update

    from consentry.db.models import utcnow
    from consentry.db.models_victims import ExchangeConfig

    with store.db.session() as s:
        s.execute(update(ExchangeConfig).values(last_success_at=utcnow() - timedelta(days=31)))
    r = CliRunner().invoke(app, ["exchange", "list"])
    assert json.loads(r.stdout.splitlines()[0])["stale"] is True and "withdrawals may have been missed" in r.output

    # the API: curators and auditors read, others may not; never credentials
    from fastapi.testclient import TestClient

    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    api = TestClient(create_app(store.settings, store.db, background=False))
    keys = KeyStore(store.db)
    for role, code in (("auditor", 200), ("curator", 200), ("moderator", 403), ("matcher", 403)):
        key = keys.create(role=role, name=role)[0]
        h = {"Authorization": f"Bearer {key}"}
        resp = api.get("/v1/exchanges", headers=h)
        assert resp.status_code == code, (role, resp.text)
        if code == 200:
            body = api.get("/v1/exchanges/sn", headers=h).text + resp.text
            body += api.get("/v1/exchanges/sn/feedback", headers=h).text
            assert "rotated-sub-key" not in body and FETCH not in body and '"stale":true' in body
            assert api.get("/v1/exchanges/nope", headers=h).status_code == 404
    assert api.get("/v1/exchanges").status_code == 401
