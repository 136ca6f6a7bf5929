"""Webhooks against a real HTTP receiver on loopback: signatures, retries with back-off, the
delivery log, and a dead sink that must not slow the match route."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consentry.policy.rules import RuleSet, Sink
from consentry.review.webhooks import WebhookDispatcher, sign, verify_signature

SECRET = "s3cret-for-tests"


class Receiver:
    """A loopback HTTP server: answers with ``statuses`` in turn (then 200), or hangs ``delay`` s."""

    def __init__(self, statuses=(), delay: float = 0.0):
        self.statuses = list(statuses)
        self.delay = delay
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"at": time.monotonic(), "headers": dict(self.headers), "body": body,
                                       "valid": verify_signature(SECRET, self.headers.get("Consentry-Signature"),
                                                                 body, tolerance_s=60)})
                if outer.delay:
                    time.sleep(outer.delay)
                code = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _wait(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_signature_round_trip_and_rejections():
    body = b'{"type":"match.decision"}'
    now = 1_700_000_000
    header = sign(SECRET, body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature(SECRET, header, body, tolerance_s=300, now=now + 10)
    assert not verify_signature("other-secret", header, body, now=now)
    assert not verify_signature(SECRET, header, body + b" ", now=now)  # tampered body
    assert not verify_signature(SECRET, header, body, tolerance_s=300, now=now + 301)  # replayed later
    assert not verify_signature(SECRET, header, body, tolerance_s=300, now=now - 301)  # from the future
    # the timestamp is signed: moving it breaks the signature
    forged = header.replace(f"t={now}", f"t={now + 100}")
    assert not verify_signature(SECRET, forged, body, now=now + 100)
    for junk in (None, "", "v1=abc", "t=x,v1=abc", "t=1", "garbage"):
        assert not verify_signature(SECRET, junk, body, now=now)
    # rotation: any of several v1 values
    assert verify_signature(SECRET, header + ",v1=" + "0" * 64, body, now=now)


def test_retries_with_backoff_until_delivered(db, receiver_factory, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    rx = receiver_factory(statuses=[500, 503])
    sink = Sink("ts", rx.url, "TEST_WEBHOOK_SECRET", timeout_s=2, max_attempts=5, backoff_s=0.3)
    d = WebhookDispatcher(db, lambda: {"ts": sink}, poll_seconds=0.05)
    delivery_id = d.store("ts", "match.decision", {"decision": {"decision": "block"}, "note": "a lighthouse"})
    d.start()
    try:
        assert _wait(lambda: d.get(delivery_id).status == "delivered")
    finally:
        d.stop()
    info = d.get(delivery_id)
    assert info.attempts == 3 and info.last_status_code == 200 and info.last_error is None
    assert [e["status_code"] for e in info.log] == [500, 503, 200]
    assert [e["error"] for e in info.log] == ["HTTP 500", "HTTP 503", None]
    assert len(rx.requests) == 3 and all(r["valid"] for r in rx.requests)
    gaps = [b["at"] - a["at"] for a, b in zip(rx.requests, rx.requests[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # exponential: base, then 2 x base
    ids = {r["headers"]["Consentry-Delivery"] for r in rx.requests}
    assert len(ids) == 1  # the same id on every retry, for de-duplication
    payload = json.loads(rx.requests[-1]["body"])
    assert payload["type"] == "match.decision" and payload["data"]["note"] == "a lighthouse"
    assert rx.requests[0]["headers"]["Consentry-Event"] == "match.decision"


def test_gives_up_after_max_attempts_and_logs_why(db, receiver_factory, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    rx = receiver_factory(statuses=[500] * 10)
    sinks = {"ts": Sink("ts", rx.url, "TEST_WEBHOOK_SECRET", max_attempts=2, backoff_s=0.05),
             "nosecret": Sink("nosecret", rx.url, "TEST_UNSET_SECRET_VAR", max_attempts=1)}
    d = WebhookDispatcher(db, lambda: sinks, poll_seconds=0.05)
    a = d.store("ts", "match.decision", {})
    b = d.store("nosecret", "match.decision", {})
    c = d.store("vanished", "match.decision", {})
    d.start()
    try:
        assert _wait(lambda: all(d.get(i).status == "failed" for i in (a, b, c)))
    finally:
        d.stop()
    assert d.get(a).attempts == 2 and d.get(a).last_error == "HTTP 500"
    assert "TEST_UNSET_SECRET_VAR is not set" in d.get(b).last_error
    assert "no sink named 'vanished'" in d.get(c).last_error
    assert len(rx.requests) == 2
    assert [x.id for x in d.list(status="failed")] == [a, b, c]


def test_a_dead_sink_does_not_slow_the_match_route(db, tmp_path, receiver_factory, monkeypatch):
    from fastapi.testclient import TestClient

    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.keys import KeyStore
    from consentry.web.app import create_app

    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    rx = receiver_factory(delay=3.0)  # accepts, then hangs past the sink timeout
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
sinks:
  slow: {{url: "{rx.url}", secret_env: TEST_WEBHOOK_SECRET, timeout_s: 1, max_attempts: 2, backoff_s: 0.1}}
rules:
  - {{name: notify, when: {{matched: true}}, actions: [block, {{webhook: slow}}]}}
""")
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    BankService(db).create_bank("mine", "ncii")
    BankService(db).add_entry("mine", "md5", md5)
    key, _ = KeyStore(db).create("matcher")
    app = create_app(Settings(home=tmp_path, rules_path=rules), db, background=False)
    h = {"Authorization": f"Bearer {key}"}
    try:
        with TestClient(app) as client:
            client.get("/v1/match", params={"signal_type": "md5", "value": "0" * 32}, headers=h)  # warm up
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = client.get("/v1/match", params={"signal_type": "md5", "value": md5, "uploader_id": "u9"},
                               headers=h)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["verdict"]["block"] is True
            assert max(times) < 0.5, times  # the sink hangs for 3 s per attempt
            policy = app.state.policy
            assert _wait(lambda: len(rx.requests) >= 1)
            assert rx.requests[0]["valid"]
            body = json.loads(rx.requests[0]["body"])
            assert body["data"]["context"]["uploader_id"] == "u9" and body["data"]["rule"] == "notify"
            assert body["data"]["matches"][0]["bank"] == "mine" and "provenance" not in body["data"]["matches"][0]
            assert _wait(lambda: any(x.attempts for x in policy.webhooks.list()))
            first = [x for x in policy.webhooks.list() if x.attempts][0]
            assert "ReadTimeout" in first.log[0]["error"]
    finally:
        app.state.consentry.match_log.close()
    print(f"match latency with a dead sink: max {max(times) * 1000:.1f} ms over {len(times)} requests")


def test_sinks_come_from_the_rules_file():
    rs = RuleSet.from_yaml("sinks: {a: {url: 'https://h.example.org/x', secret_env: A_SECRET, max_attempts: 3}}\n"
                           "rules: [{name: r, actions: [{webhook: a}]}]")
    assert rs.sinks["a"].max_attempts == 3 and rs.sinks["a"].secret() is None


def test_review_decisions_notify_the_sinks_the_rules_name(db, tmp_path, receiver_factory, monkeypatch):
    """decisions: {confirm: [{webhook: S}]} -> a signed case.decision payload when a reviewer
    confirms in the console (hashes only)."""
    import json
    import re

    from fastapi.testclient import TestClient

    from consentry.banks.service import BankService
    from consentry.config import Settings
    from consentry.review.cases import CaseService, ItemInput
    from consentry.review.users import UserService
    from consentry.web.app import create_app
    from imagegen import encode, scene

    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    rx = receiver_factory()
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
sinks:
  hub: {{url: "{rx.url}", secret_env: TEST_WEBHOOK_SECRET}}
rules: []
decisions:
  confirm: [{{webhook: hub}}]
""")
    banks = BankService(db)
    banks.create_bank("known", "ncii")
    case = CaseService(db, banks).submit(ItemInput(media=encode(scene(seed=41), "PNG")), uploader_id="acct")
    UserService(db).create("rev", "a long benign passphrase", "moderator")
    app = create_app(Settings(home=tmp_path, rules_path=rules), db, background=False)
    try:
        with TestClient(app, follow_redirects=False) as c:
            form = c.get("/console/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            c.post("/console/login", data={"username": "rev", "password": "a long benign passphrase",
                                           "csrf_token": token})
            page = c.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"})
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
            r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "known",
                                                                  "csrf_token": csrf})
            assert r.status_code == 303
            assert _wait(lambda: len(rx.requests) == 1)
            first = json.loads(rx.requests[0]["body"])
            decision_id = first.get("data", first)["decision"]["id"]
            r = c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf})
            assert r.status_code == 303
            assert _wait(lambda: len(rx.requests) == 2)  # the undo is told to the same sinks
    finally:
        app.state.policy.close()
    req, undone = rx.requests
    assert req["valid"] and req["headers"]["Consentry-Event"] == "case.decision"
    body = json.loads(req["body"])
    payload = body.get("data", body)
    assert payload["decision"]["kind"] == "confirm" and payload["decision"]["bank"] == "known"
    assert payload["decision"]["status"] == "applied"
    assert payload["case"]["items"][0]["pdq"] == case.items[0].pdq
    assert undone["valid"] and undone["headers"]["Consentry-Event"] == "case.decision"
    later = json.loads(undone["body"])
    later = later.get("data", later)
    assert later["decision"]["id"] == decision_id and later["decision"]["status"] == "undone"
    assert later["decision"]["result"]["withdrawn"] and later["case"]["status"] == "open"


def test_decision_actions_are_validated():
    from consentry.policy.rules import RuleSet, RulesError

    ok = RuleSet.from_yaml("sinks: {s: {url: 'http://x/', secret_env: E}}\nrules: []\n"
                           "decisions: {confirm: [{webhook: s}], escalate: [{webhook: s}]}")
    assert ok.decision_sinks == {"confirm": ["s"], "escalate": ["s"]}
    for bad, msg in [("decisions: {approve: []}", "unknown decision"),
                     ("decisions: {confirm: [{webhook: nope}]}", "no sink named"),
                     ("decisions: {confirm: [block]}", "only {webhook: SINK}")]:
        with pytest.raises(RulesError, match=msg):
            RuleSet.from_yaml("sinks: {s: {url: 'http://x/', secret_env: E}}\nrules: []\n" + bad)
