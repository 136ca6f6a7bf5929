"""Rules -> review: a match that fires an ``enqueue`` action opens a case, off the response path."""

from __future__ import annotations

from fastapi.testclient import TestClient

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.keys import KeyStore
from consentry.review.cases import CaseService
from consentry.web.app import create_app
from imagegen import encode, scene

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def test_match_in_abuse_bank_opens_a_case_with_the_match(db, tmp_path):
    svc = BankService(db)
    svc.create_bank("hub", "ncii")
    e, _ = svc.add_entry("hub", "pdq", PDQ_A)
    app = create_app(Settings(home=tmp_path), db, background=False)
    key, _ = KeyStore(db).create("matcher", "platform")
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        r = c.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A, "uploader_id": "user-7"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["verdict"]["decision"] == "block"
        app.state.policy.drain()
        cases = CaseService(db).list_queue(queue="known-abuse")
        assert len(cases) == 1
        case = CaseService(db).get(cases[0].id)
        assert case.priority == 90 and case.uploader_id == "user-7"
        (item,) = case.items
        assert item.pdq == PDQ_A and item.matches[0]["entry_id"] == e.id
        # a second match for the same uploader joins the same case (one decision per account)
        c.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A, "uploader_id": "user-7"}, headers=h)
        app.state.policy.drain()
        assert len(CaseService(db).list_queue(queue="known-abuse")) == 1
        # no match -> no case
        r = c.post("/v1/match", files={"file": ("x.png", encode(scene(300, 256, seed=4), "PNG"), "image/png")},
                   headers=h)
        assert r.status_code == 200 and r.json()["matches"] == []
        app.state.policy.drain()
        assert sum(len(CaseService(db).list_queue(queue=q)) for q in ("known-abuse", "default", "ai-generated")) == 1


def test_match_with_analyze_returns_assessment_and_evidence_rules_fire(db, tmp_path):
    from pathlib import Path
    import os

    fixtures = Path(os.environ.get("CONSENTRY_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
    firefly = (fixtures / "provenance" / "Firefly_tabby_cat.jpg").read_bytes()
    app = create_app(Settings(home=tmp_path), db, background=False)
    key, _ = KeyStore(db).create("matcher", "platform")
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        plain = c.post("/v1/match", files={"file": ("cat.jpg", firefly, "image/jpeg")}, headers=h).json()
        assert plain["assessment"] is None and plain["matches"] == []
        r = c.post("/v1/match", params={"analyze": "true", "uploader_id": "u1"},
                   files={"file": ("cat.jpg", firefly, "image/jpeg")}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["assessment"]["verdict"] == "ai_generated"
        assert "review-proven-ai-generated" in body["verdict"]["rules"]
        app.state.policy.drain()
        (case,) = CaseService(db).list_queue(queue="ai-generated")
        (item,) = CaseService(db).get(case.id).items
        assert item.sha256 == body["query"]["sha256"]
        assert any(e["source"] == "c2pa" for e in item.evidence)
