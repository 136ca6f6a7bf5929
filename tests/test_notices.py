"""Notices and statements of reasons (issue 14 points 3 and 4).

The clock across daylight-saving changes and weekends (zoneinfo); notices with missing fields
(contact step, clock not started, refusals naming the fields); a flood of notices rate-limited;
a duplicate notice joining the first one's case; statements checked against the kept Transparency
Database schema and submitted to a local stand-in; and end to end over HTTP: the public form →
case in the ``notices`` queue with its clock → decision → the sweep finds the copies in the ledger
(a rotated one too) → ``content.matched`` webhook → the platform removes them → the notice shows
the efforts → statements exported (schema-valid, no personal data) and submitted. The same flow
runs once more in chromium (test_whole_notice_flow_in_a_browser): the form, the console's queue and
case pages, the decision taken there, the efforts shown there.
Images are benign drawings (tests/imagegen.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from consentry.config import MediaLimits, Settings
from consentry.db.models_review import Case
from consentry.ledger import ContentRecord, LedgerService, Sweeper
from consentry.media.content import Content
from consentry.notices import Ground, NoticeInput, NoticeInvalid, NoticeService
from consentry.notices.clock import ClockError, ClockSpec
from consentry.notices.dsa_tdb import TDBClient, TDBError
from consentry.notices.regimes import config_from_dict
from consentry.notices.statements import StatementService, build_body, schema_errors
from a11y import axe_violations, describe
from conftest import make_key, needs_chromium
from dsa_tdb_standin import TDBStandIn
from imagegen import encode, scene
from test_victim_page import browser  # noqa: F401  (the module's chromium, shared)
from test_webhooks import SECRET, Receiver, _wait

NY, BXL = ZoneInfo("America/New_York"), ZoneInfo("Europe/Brussels")
UTC = timezone.utc


# ---------------------------------------------------------------- the clock
def test_48_hours_are_elapsed_hours_across_daylight_saving_changes():
    clock = ClockSpec(hours=48, tz="America/New_York", escalate_before_hours=12)
    # spring forward: 2026-03-08 02:00 EST -> 03:00 EDT
    start = datetime(2026, 3, 7, 12, 0, tzinfo=NY)
    due = clock.due(start)
    assert due - start.astimezone(UTC) == timedelta(hours=48)
    assert due.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 9, 13, 0)  # reads 49 wall-clock hours
    # fall back: 2026-11-01 02:00 EDT -> 01:00 EST
    start = datetime(2026, 10, 31, 12, 0, tzinfo=NY)
    due = clock.due(start)
    assert due.astimezone(NY).replace(tzinfo=None) == datetime(2026, 11, 2, 11, 0)  # reads 47
    assert clock.elapsed(start, due) == pytest.approx(48)
    assert clock.escalate_at(start) == due - timedelta(hours=12)
    # a request arriving on a Saturday is due on Monday: continuous time knows no weekend
    sat = datetime(2026, 12, 5, 10, 0, tzinfo=NY)
    assert clock.due(sat).astimezone(NY).replace(tzinfo=None) == datetime(2026, 12, 7, 10, 0)


def test_business_clock_skips_weekends_and_keeps_working_hours_across_dst():
    clock = ClockSpec(hours=16, calendar="business", tz="Europe/Brussels", escalate_before_hours=4)
    # Friday 15:00 CEST; Brussels falls back on Sunday 2026-10-25. Fri 2 h + Mon 8 h + Tue 6 h
    start = datetime(2026, 10, 23, 15, 0, tzinfo=BXL)
    due = clock.due(start)
    assert due.astimezone(BXL).replace(tzinfo=None) == datetime(2026, 10, 27, 15, 0)
    assert due == datetime(2026, 10, 27, 14, 0, tzinfo=UTC)  # CET after the change
    assert clock.elapsed(start, due) == pytest.approx(16)
    assert clock.escalate_at(start).astimezone(BXL).replace(tzinfo=None) == datetime(2026, 10, 27, 11, 0)
    # received on a Saturday: the clock starts Monday 09:00
    sat = datetime(2026, 10, 24, 11, 0, tzinfo=BXL)
    assert clock.due(sat).astimezone(BXL).replace(tzinfo=None) == datetime(2026, 10, 27, 9, 0) + timedelta(hours=8)
    assert clock.elapsed(sat, datetime(2026, 10, 26, 9, 0, tzinfo=BXL)) == 0  # a weekend counts nothing
    # spring forward (Sunday 2026-03-29): Monday still has its 8 working hours
    fri = datetime(2026, 3, 27, 17, 0, tzinfo=BXL)
    assert clock.due(fri).astimezone(BXL).replace(tzinfo=None) == datetime(2026, 3, 30, 17, 0) + timedelta(days=1)


def test_clock_state_colours_and_configuration():
    clock = ClockSpec(hours=48, escalate_before_hours=12)
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    colour = lambda h, **kw: clock.state(t0, t0 + timedelta(hours=h), **kw)["colour"]  # noqa: E731
    assert [colour(1), colour(30), colour(40), colour(49)] == ["green", "amber", "red", "breached"]
    assert colour(50, decided_at=t0 + timedelta(hours=47)) == "done"
    assert clock.state(None, t0)["running"] is False  # an incomplete notice: no clock
    cfg = config_from_dict({"regimes": {"dsa_art16": {"hours": 24, "calendar": "business", "tz": "Europe/Paris",
                                                      "escalate_before_hours": 4}}})
    assert cfg.regime("dsa_art16").clock.hours == 24 and cfg.regime("take_it_down").clock.hours == 48
    for bad in ({"hours": 0}, {"tz": "Mars/Olympus"}, {"escalate_before_hours": 60}):
        with pytest.raises(ClockError):
            config_from_dict({"regimes": {"take_it_down": bad}})


# ---------------------------------------------------------------- the service (SQLite and PostgreSQL)
def _photo(seed: int, rotate: bool = False) -> Content:
    img = scene(256, 256, seed=seed)
    if rotate:
        img = img.rotate(90, expand=True)
    return Content.from_bytes(encode(img, "PNG"), MediaLimits())


def _ledger(db) -> LedgerService:
    ledger = LedgerService(db)
    ledger.write(ContentRecord.from_content(_photo(1), content_id="post-1", url="https://ex.org/p/1", uploader_id="u-1"))
    ledger.write(ContentRecord.from_content(_photo(1, rotate=True), content_id="post-2", url="https://ex.org/p/2",
                                            uploader_id="u-2"))
    ledger.write(ContentRecord.from_content(_photo(7), content_id="post-3", url="https://ex.org/p/3", uploader_id="u-3"))
    return ledger


TID = dict(signature="A. Person", good_faith=True, notifier_email="person@example.org")
DSA = dict(explanation="An intimate image of me posted without my consent.", notifier_name="A. Person",
           notifier_email="person@example.org", good_faith=True)


def test_missing_fields_contact_step_and_clock(db, tmp_path):
    svc = NoticeService(db)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    r = svc.submit(NoticeInput("take_it_down", ["https://ex.org/p/1"], notifier_email="person@example.org"),
                   channel="form", submitted_by="public", now=t0)
    assert r.status == "incomplete" and r.missing == ["signature", "good_faith"] and r.completion_token
    got = svc.get(r.number)
    assert got["valid_at"] is None and got["due_at"] is None and got["case_id"] is None
    assert got["clock"]["running"] is False
    # no way to contact the notifier: refused, naming every missing field
    with pytest.raises(NoticeInvalid) as exc:
        svc.submit(NoticeInput("take_it_down", ["https://ex.org/p/1"]), channel="form", submitted_by="public")
    assert set(exc.value.problems) == {"signature", "good_faith", "contact"}
    with pytest.raises(NoticeInvalid) as exc:
        svc.submit(NoticeInput("dsa_art16", [], notifier_email="not-an-address"), channel="api", submitted_by="key:1")
    assert exc.value.problems == {"notifier_email": "not an e-mail address"}
    # DSA Art. 16(2)(c): name and e-mail are not required for child sexual abuse material
    r2 = svc.submit(NoticeInput("dsa_art16", ["https://ex.org/p/9"], category="csam", explanation="a child",
                                good_faith=True), channel="form", submitted_by="public", now=t0)
    assert r2.status == "open" and r2.missing == []
    # the contact step: a wrong code finds nothing; the right one completes and starts the clock
    from consentry.notices import NoticeNotFound

    with pytest.raises(NoticeNotFound):
        svc.complete(r.number, {"signature": "A. Person", "good_faith": True}, token="wrong")
    t1 = t0 + timedelta(hours=5)
    done = svc.complete(r.number, {"signature": "A. Person", "good_faith": True}, token=r.completion_token, now=t1)
    assert done.status == "open" and done.due_at == t1 + timedelta(hours=48)
    got = svc.get(r.number, now=t1)
    assert got["valid_at"] == t1.isoformat() and got["case_id"] is not None
    with db.session() as s:
        case = s.get(Case, got["case_id"])
        assert case.queue == "notices" and case.sla_due_at.replace(tzinfo=UTC) == t1 + timedelta(hours=48)
    assert [e["kind"] for e in got["events"]] == ["received", "incomplete", "completed", "case_opened"]


def test_duplicate_notice_joins_the_first_cases_and_escalation(db, tmp_path):
    _ledger(db)
    svc = NoticeService(db)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    first = svc.submit(NoticeInput("take_it_down", ["https://ex.org/p/1"], **TID), channel="api",
                       submitted_by="key:1", now=t0)
    second = svc.submit(NoticeInput("dsa_art16", ["post-1", "https://ex.org/p/3"], **DSA), channel="form",
                        submitted_by="public", now=t0 + timedelta(hours=1))
    other = svc.submit(NoticeInput("take_it_down", ["https://ex.org/p/3"], **TID), channel="api",
                       submitted_by="key:1", now=t0)
    assert first.status == "open" and second.status == "duplicate" and second.duplicate_of == first.number
    assert second.case_id == first.case_id and other.case_id not in (None, first.case_id)
    f = svc.get(first.number)
    assert f["duplicates"] == [second.number] and {loc["content_id"] for loc in f["locations"]} == {"post-1"}
    with db.session() as s:  # the duplicate's other content joined the first case too
        from consentry.db.models_review import CaseItem
        from sqlalchemy import select

        shas = {i.content_sha256 for i in s.scalars(select(CaseItem).where(CaseItem.case_id == first.case_id))}
    ledger = LedgerService(db)
    assert shas == {ledger.get("post-1").sha256, ledger.get("post-3").sha256}
    with pytest.raises(Exception, match="decide that one"):
        svc.decide(second.number, "bob", "remove", ground=Ground("legal", "Art. 16"))
    # escalation before breach: nothing at 35 h, the first notice at 36 h (48 - 12)
    assert svc.escalate_due(t0 + timedelta(hours=35)) == []
    assert set(svc.escalate_due(t0 + timedelta(hours=36))) == {first.number, other.number}
    assert svc.escalate_due(t0 + timedelta(hours=37)) == []  # once
    with db.session() as s:
        assert s.get(Case, first.case_id).priority == 100
    assert svc.get(first.number)["escalated_at"] == (t0 + timedelta(hours=36)).isoformat()
    # rejection with a reason, logged; an empty reason is refused
    with pytest.raises(Exception, match="say why"):
        svc.reject(other.number, "bob", " ")
    rej = svc.reject(other.number, "bob", "the location is not on this platform")
    assert rej["status"] == "rejected" and rej["decision"]["rejection_reason"].startswith("the location")
    from consentry.review.audit import AuditLog

    rejected = AuditLog(db).list(event_type="notice.rejected")
    assert [r.to_dict()["data"]["notice"] for r in rejected] == [other.number]


def test_an_attached_image_is_hashed_and_kept_only_when_the_vault_is_on(db, tmp_path):
    import base64
    import os

    from consentry.review.vault import Vault

    data = encode(scene(256, 256, seed=3), "PNG")
    off = NoticeService(db).submit(NoticeInput("take_it_down", [], image=data, **TID), channel="api",
                                   submitted_by="key:1")
    vault = Vault.from_settings(Settings(home=tmp_path, vault_key=base64.b64encode(os.urandom(32)).decode()), db)
    svc = NoticeService(db, vault=vault)
    on = svc.submit(NoticeInput("take_it_down", [], image=data, **TID), channel="api", submitted_by="key:1")
    a, b = NoticeService(db).get(off.number), svc.get(on.number)
    assert a["image"]["sha256"] == b["image"]["sha256"] == _photo_sha(data) and a["image"]["pdq"]
    assert (a["image"]["kept"], b["image"]["kept"]) == (False, True)
    assert on.status == "duplicate" and on.duplicate_of == off.number  # the same image: the same case
    item = svc.cases.get(a["case_id"]).items
    assert any(i.vault_item_id for i in item) and svc.cases.media(next(i.id for i in item if i.vault_item_id))[0] == data
    assert len(svc.cases.preview(next(i.id for i in item if i.vault_item_id))) > 0  # shown blurred


def _photo_sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_decision_sweeps_copies_records_efforts_and_states_reasons(db, tmp_path):
    _ledger(db)
    sweeper = Sweeper(db, home=tmp_path)
    svc = NoticeService(db, sweeper=sweeper)
    r = svc.submit(NoticeInput("dsa_art16", ["https://ex.org/p/1"], **DSA), channel="api", submitted_by="key:1")
    out = svc.decide(r.number, "alice", "remove",
                     ground=Ground("legal", "Art. 226-2-1 Code pénal", "Intimate image shared without consent"))
    assert out["status"] == "decided" and out["decision"]["ground"] == "legal" and out["decision"]["automated"] is False
    found = {f["content_id"]: f for f in out["efforts"]["found"]}
    assert set(found) == {"post-1", "post-2"}  # the notified content and its rotated copy
    assert found["post-2"]["transform"] not in (None, "original")
    assert len(out["statements"]) == 2
    LedgerService(db).delete("post-2")  # the platform removed the copy
    eff = svc.get(r.number)["efforts"]
    assert [x["content_id"] for x in eff["removed"]] == ["post-2"]
    assert {f["content_id"]: bool(f["removed_at"]) for f in eff["found"]} == {"post-1": False, "post-2": True}
    # statements: schema-valid, Art. 16 source for the notice, voluntary for the copy, no personal data
    bodies = list(StatementService(db).export())
    assert [schema_errors(b) for b in bodies] == [[], []]
    assert sorted(b["source_type"] for b in bodies) == ["SOURCE_ARTICLE_16", "SOURCE_VOLUNTARY"]
    text = json.dumps(bodies)
    for personal in ("person@example.org", "A. Person", "ex.org", "u-1", "u-2", "post-1", "post-2"):
        assert personal not in text
    st = StatementService(db).for_uploader(out["statements"][0])
    assert st["ground"]["reference"] == "Art. 226-2-1 Code pénal" and st["redress"] and st["decision"] == "removal"


def test_statement_schema_and_client_against_the_stand_in(db):
    svc = StatementService(db)
    a = svc.own_initiative(restriction="account_suspension", ground=Ground("policy", "Terms 4.2", "repeat uploads"),
                           content_id="c-1", uploader_id="u-1")
    b = svc.own_initiative(restriction="removal", ground=Ground("legal", "47 U.S.C. § 223a"), category="deepfake")
    assert b.body["content_type"] == ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_SYNTHETIC_MEDIA"]
    bad = build_body(puid="x y", restriction="removal", ground=Ground("legal", "law"), category="ncii",
                     content_type="photo", content_date=datetime(2026, 1, 1).date(),
                     application_date=datetime(2026, 1, 2).date(), source="own_initiative",
                     automated_detection=True, automated_decision="fully", facts="f")
    assert any(e.startswith("puid") for e in schema_errors(bad))
    assert any("decision_visibility" in e or "anyOf" in e or "valid" in e
               for e in schema_errors({k: v for k, v in bad.items() if k != "decision_visibility"} | {"puid": "ok"}))
    stand = TDBStandIn()
    try:
        with pytest.raises(TDBError, match="401"):
            with TDBClient(stand.url, "wrong") as c:
                c.submit_many([a.body])
        with pytest.raises(TDBError, match="https"):
            TDBClient("http://example.org", "t")
        with TDBClient(stand.url, stand.token) as c:
            assert svc.submit_pending(c) == {"submitted": 2, "failed": 0}
            assert set(stand.statements) == {a.puid, b.puid}
            assert svc.submit_pending(c) == {"submitted": 0, "failed": 0}  # nothing left
            again = c.submit(a.body)  # a resend after a lost answer: the existing uuid, no duplicate
            assert again.ok and again.existing and again.uuid == stand.statements[a.puid]["uuid"]
            res = c.submit_many([bad, b.body | {"puid": "fresh-1"}])  # a bad one does not sink the batch
            assert [x.ok for x in res] == [False, True] and "puid" in res[0].error
        assert [s.tdb_status for s in svc.list()] == ["submitted", "submitted"]
        assert all(s.tdb_uuid for s in svc.list())
    finally:
        stand.close()


# ---------------------------------------------------------------- over HTTP (SQLite)
RULES = """
sinks:
  platform: {url: "%s", secret_env: CONSENTRY_TEST_NOTICE_SECRET, max_attempts: 2, backoff_s: 0.01}
rules:
  - name: remove-copies
    when: {match: {bank_kind: [ncii]}}
    actions: [{webhook: platform}]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One app for the HTTP tests (building one takes seconds); each test resets the form limit."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTRY_TEST_NOTICE_SECRET", SECRET)
    receiver = Receiver()
    home = tmp_path_factory.mktemp("notices") / "home"
    keys = {role: make_key(home, role) for role in ("uploader", "moderator", "curator")}
    (home / "rules.yaml").write_text(RULES % receiver.url)
    (home / "notices.yaml").write_text("form_per_hour: 6\napi_per_hour: 3600\n")
    app = create_app_for(home)
    with TestClient(app) as client:
        yield client, keys, receiver, app
    receiver.close()
    app.state.consentry.match_log.close()
    mp.undo()


@pytest.fixture(autouse=True)
def _fresh_form_limit(request):
    if "served" in request.fixturenames:
        app = request.getfixturevalue("served")[3]
        for lim in getattr(app.state, "notice_limiters", {}).values():
            lim.reset()


def create_app_for(home):
    from consentry.web.app import create_app

    return create_app(Settings(home=home, rules_path=home / "rules.yaml"), background=False)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_end_to_end_form_case_decision_sweep_webhook_efforts_statements(served):
    client, keys, receiver, app = served
    up = _auth(keys["uploader"])
    for cid, seed, rot in (("post-1", 1, False), ("post-2", 1, True), ("post-3", 7, False)):
        r = client.post("/v1/content/upload", headers=up, files={"file": (f"{cid}.png", encode(
            scene(256, 256, seed=seed).rotate(90, expand=True) if rot else scene(256, 256, seed=seed), "PNG"))},
            data={"content_id": cid, "url": f"https://ex.org/p/{cid}", "uploader_id": f"u-{cid}"})
        assert r.status_code in (200, 201), r.text
    # the public form: no account, no script, no other site, no cookie
    page = client.get("/report")
    assert page.status_code == 200 and "<script" not in page.text and "set-cookie" not in page.headers
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("</head>")[0].replace("http-equiv", "")
    sent = client.post("/report", data={"regime": "take_it_down", "category": "deepfake",
                                        "locations": "https://ex.org/p/post-1", "signature": "A. Person",
                                        "notifier_email": "person@example.org", "good_faith": "yes"},
                       files={"image": ("x.png", encode(scene(256, 256, seed=1), "PNG"), "image/png")})
    assert sent.status_code == 201, sent.text
    import re

    number = re.search(r'id="notice-number">([^<]+)<', sent.text).group(1)
    assert "set-cookie" not in sent.headers
    mod = _auth(keys["moderator"])
    queue = client.get("/v1/cases", params={"queue": "notices"}, headers=mod).json()
    cases = queue["cases"] if isinstance(queue, dict) else queue
    notice = client.get(f"/v1/notices/{number}", headers=mod).json()
    assert [c["id"] for c in cases] == [notice["case_id"]]
    assert cases[0]["sla_due_at"] == notice["due_at"] and notice["clock"]["colour"] == "green"
    assert notice["image"]["kept"] is False  # the vault is off: hashed only
    assert app.state.notices.summary_for_case(notice["case_id"])["number"] == number
    # the decision (ground and automation recorded) runs the sweep
    bad = client.post(f"/v1/notices/{number}/decision", headers=mod, json={"decision": "remove"})
    assert bad.status_code == 422 and "ground" in bad.json()["detail"]
    assert client.post(f"/v1/notices/{number}/decision", headers=_auth(keys["uploader"]),
                       json={"decision": "no_action"}).status_code == 403
    done = client.post(f"/v1/notices/{number}/decision", headers=mod,
                       json={"decision": "remove", "ground": "legal", "reference": "47 U.S.C. § 223a",
                             "explanation": "A digital forgery shared without consent", "automated": False}).json()
    assert done["status"] == "decided"
    found = {f["content_id"] for f in done["efforts"]["found"]}
    assert found == {"post-1", "post-2"}
    # the content.matched webhook names the copies; the platform removes them
    app.state.policy.webhooks.start()
    assert _wait(lambda: receiver.requests)
    payloads = [json.loads(r["body"]) for r in receiver.requests]
    assert {p["type"] for p in payloads} == {"content.matched"} and all(r["valid"] for r in receiver.requests)
    assert {p["data"]["trigger"] for p in payloads} == {f"notice:{number}"}
    hooked = {c["content_id"] for p in payloads for c in p["data"]["contents"]}
    assert hooked == {"post-1", "post-2"}
    assert {c["url"] for p in payloads for c in p["data"]["contents"]} == {"https://ex.org/p/post-1",
                                                                            "https://ex.org/p/post-2"}
    for cid in hooked:
        assert client.delete(f"/v1/content/{cid}", headers=up).status_code in (200, 204)
    efforts = client.get(f"/v1/notices/{number}", headers=mod).json()["efforts"]
    assert {x["content_id"] for x in efforts["removed"]} == {"post-1", "post-2"}
    # statements of reasons: exported, schema-valid, nothing personal; submitted to the stand-in
    cur = _auth(keys["curator"])
    lines = [json.loads(x) for x in client.get("/v1/statements/export", headers=cur).text.splitlines()]
    assert len(lines) == 2 and all(schema_errors(b) == [] for b in lines)
    assert all(b["category_specification"] == ["KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"] for b in lines)
    assert not re.search(r"person@|A\. Person|ex\.org|post-\d|u-post", json.dumps(lines))
    stmt = client.get(f"/v1/statements/{lines[0]['puid']}", headers=up).json()
    assert stmt["for_uploader"]["ground"]["reference"] == "47 U.S.C. § 223a"
    stand = TDBStandIn()
    try:
        with TDBClient(stand.url, stand.token) as c:
            assert app.state.notices.statements.submit_pending(c) == {"submitted": 2, "failed": 0}
        assert set(stand.statements) == {b["puid"] for b in lines}
    finally:
        stand.close()


def test_api_validation_names_fields_and_a_flood_is_rate_limited(served):
    client, keys, _, app = served
    up = _auth(keys["uploader"])
    r = client.post("/v1/notices", headers=up, json={"regime": "dsa_art16", "notifier_email": "nope"})
    assert r.status_code == 422 and [e["loc"] for e in r.json()["errors"]] == [["notifier_email"]]
    r = client.post("/v1/notices", headers=up, json={"regime": "dsa_art16", "notifier_email": "a@example.org",
                                                      "locations": ["https://ex.org/x"]})
    body = r.json()
    assert r.status_code == 201 and body["status"] == "incomplete"
    assert body["missing"] == ["explanation", "notifier_name", "good_faith"] and body["due_at"] is None
    r = client.patch(f"/v1/notices/{body['number']}", headers=up,
                     json={"explanation": "mine", "notifier_name": "A", "good_faith": True})
    assert r.json()["status"] == "open" and r.json()["due_at"]
    assert client.post("/v1/notices", headers=_auth(keys["moderator"]), json={"regime": "dsa_art16"}).status_code == 403
    assert client.post("/v1/notices", json={"regime": "dsa_art16"}).status_code == 401
    # a flood through the public form: the burst passes, then 429 and nothing stored
    before = sum(app.state.notices.counts().values())
    codes = [client.post("/report", data={"regime": "take_it_down", "locations": f"https://ex.org/f/{i}",
                                          "signature": "S", "notifier_email": "f@example.org",
                                          "good_faith": "yes"}).status_code for i in range(12)]
    assert codes.count(201) >= 1 and codes[-1] == 429 and set(codes) <= {201, 429}
    assert sum(app.state.notices.counts().values()) - before == codes.count(201) < 12


# ---------------------------------------------------------------- in a browser (Playwright + Debian's chromium)
@needs_chromium
def test_the_form_in_a_browser_opens_a_case_with_its_clock(served, browser, tmp_path):
    """The form filled in chromium (no script on the page, nothing from another site) → the notice
    number → a case in the notices queue whose SLA is the notice's 48-hour clock."""
    client, keys, _, app = served
    up = _auth(keys["uploader"])
    r = client.post("/v1/content/upload", headers=up, files={"file": ("b.png", encode(scene(256, 256, seed=11), "PNG"))},
                    data={"content_id": "post-b", "url": "https://ex.org/p/post-b", "uploader_id": "u-b"})
    assert r.status_code in (200, 201)
    image = tmp_path / "picture.png"
    image.write_bytes(encode(scene(256, 256, seed=11), "PNG"))
    # the same app behind a real HTTP server (a browser's multipart upload is not visible to
    # request interception), in this process
    import threading

    import uvicorn

    from conftest import _free_port

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert _wait(lambda: server.started, 20)
    origin = f"http://127.0.0.1:{port}"
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="es")
    elsewhere: list[str] = []
    ctx.on("request", lambda req: None if req.url.startswith(origin + "/") else elsewhere.append(req.url))
    page = ctx.new_page()
    try:
        page.goto(origin + "/report")
        assert page.locator("html").get_attribute("lang") == "es"  # the visitor's language
        bad = axe_violations(page)
        assert not bad, describe(bad)
        page.get_by_label("Unión Europea").check()
        page.locator("#f-locations").fill("https://ex.org/p/post-b")
        page.locator("#f-explanation").fill("Es una imagen mía publicada sin mi consentimiento.")
        page.locator("#f-notifier_name").fill("A. Person")
        page.locator("#f-notifier_email").fill("person@example.org")
        page.locator("#f-image").set_input_files(str(image))
        page.locator("input[name=good_faith]").check()
        page.get_by_role("button", name="Enviar la solicitud").click()
        number = page.locator("#notice-number").inner_text()
        assert number.startswith("N-") and page.locator("#notice-status time").count() == 1
        bad = axe_violations(page)
        assert not bad, describe(bad)
    finally:
        ctx.close()
        server.should_exit = True
        thread.join(10)
    assert elsewhere == []
    notice = client.get(f"/v1/notices/{number}", headers=_auth(keys["moderator"])).json()
    assert notice["regime"] == "dsa_art16" and notice["status"] == "open" and notice["lang"] == "es"
    assert notice["image"]["sha256"] and notice["locations"][0]["content_id"] == "post-b"
    case = client.get(f"/v1/cases/{notice['case_id']}", headers=_auth(keys["moderator"])).json()
    assert case["queue"] == "notices" and case["sla_due_at"] == notice["due_at"]
    due = datetime.fromisoformat(notice["due_at"]) - datetime.fromisoformat(notice["valid_at"])
    assert due == timedelta(hours=48)


# ---------------------------------------------------------------- the CLI (the same service)
def test_cli_lists_shows_decides_and_exports(tmp_path, monkeypatch, request):
    from typer.testing import CliRunner

    from consentry.cli import app as cli
    from consentry.config import set_settings
    from consentry.db import Database

    home = tmp_path / "home"
    monkeypatch.setenv("CONSENTRY_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    set_settings(None)  # re-read the environment above
    request.addfinalizer(lambda: set_settings(None))
    home.mkdir()
    db = Database(f"sqlite:///{home / 'consentry.db'}")
    db.upgrade()
    _ledger(db)
    number = NoticeService(db).submit(NoticeInput("take_it_down", ["post-1"], **TID), channel="api",
                                      submitted_by="key:1").number
    db.dispose()
    run = CliRunner().invoke
    listed = [json.loads(x) for x in run(cli, ["notices", "list", "--status", "open"]).stdout.splitlines()]
    assert [n["number"] for n in listed] == [number] and listed[0]["clock"]["colour"] == "green"
    r = run(cli, ["notices", "decide", number, "remove", "--reviewer", "carol"])
    assert r.exit_code == 1 and "ground" in r.output
    r = run(cli, ["notices", "decide", number, "remove", "--reviewer", "carol", "--ground", "legal",
                  "--reference", "47 U.S.C. § 223a"])
    assert r.exit_code == 0, r.output
    shown = json.loads(run(cli, ["notices", "show", number]).stdout)
    assert shown["status"] == "decided" and {f["content_id"] for f in shown["efforts"]["found"]} == {"post-1", "post-2"}
    out = tmp_path / "sor.jsonl"
    r = run(cli, ["statements", "export", "--out", str(out)])
    assert r.exit_code == 0 and json.loads(r.stdout)["written"] == 2
    assert [schema_errors(json.loads(x)) for x in out.read_text().splitlines()] == [[], []]


def test_form_catalogs_are_complete_and_every_text_is_in_them():
    import re
    from pathlib import Path

    from consentry.i18n import LANGUAGES, placeholders
    from consentry.web.pages.notice import notice_catalog

    en = notice_catalog("en")
    for code in LANGUAGES:
        cat = notice_catalog(code)
        assert set(cat) == set(en), (code, sorted(set(cat) ^ set(en)))
        assert all(placeholders(cat[k]) == placeholders(en[k]) for k in en)
        assert code == "en" or all(cat[k] != en[k] for k in en), code
    tpl = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "src/consentry/web/templates/notice").glob("*.html"))
    used = {k for k in re.findall(r"_\('(report\.[a-z_]+)'", tpl) if not k.endswith("_")}  # not 'report.field_' ~ x
    fields = {f"report.field_{f}" for f in ("signature", "locations", "good_faith", "contact", "explanation",
                                             "notifier_name", "notifier_email", "image", "regime", "category")}
    cats = {f"report.category_{c}" for c in ("ncii", "deepfake", "csam", "other")}
    assert used - set(en) == set()
    assert set(en) - used - fields - cats - {"report.page_title", "report.too_many", "report.not_found"} == set()


def test_the_forms_contact_step_completes_an_incomplete_notice(served):
    import re

    client, keys, _, app = served
    r = client.post("/report", data={"regime": "take_it_down", "locations": "https://ex.org/cs/1",
                                     "notifier_email": "c@example.org", "lang": "es"})
    assert r.status_code == 201 and 'lang="es"' in r.text
    number = re.search(r'id="notice-number">([^<]+)<', r.text).group(1)
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)
    assert re.findall(r'<ul id="missing">(.*?)</ul>', r.text, re.S)[0].count("<li>") == 2
    assert app.state.notices.get(number)["due_at"] is None
    wrong = client.post("/report/complete", data={"number": number, "token": "nope", "signature": "C"})
    assert wrong.status_code == 404
    half = client.post("/report/complete", data={"number": number, "token": token, "signature": "C"})
    assert half.status_code == 200 and 'name="good_faith"' in half.text and 'name="signature"' not in half.text
    done = client.post("/report/complete", data={"number": number, "token": token, "good_faith": "yes"})
    assert done.status_code == 200 and "<time" in done.text
    got = app.state.notices.get(number)
    assert got["status"] == "open" and got["due_at"] and got["notifier"]["signature"] == "C"


def test_the_access_log_keeps_no_address_or_path_of_the_notice_form():
    import logging

    from consentry.web.accesslog import AccessLogFilter

    for path in ("/report", "/report?lang=es", "/report/complete"):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("10.1.2.3:5555", "POST", path, "1.1", 201), None)
        assert AccessLogFilter().filter(record)
        assert record.getMessage() == '- - "POST [victim page] HTTP/1.1" 201'
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("10.1.2.3:5555", "GET", "/reports/x", "1.1", 200), None)
    assert AccessLogFilter().filter(record) and "10.1.2.3" in record.getMessage()  # another route


def test_the_console_case_page_shows_the_notice_and_decides_it_with_its_ground(served):
    """A notice's case in the console: its clock, locations and efforts, and a decision with its
    legal ground taken there (the generic confirm records none)."""
    import re

    from fastapi.testclient import TestClient

    from consentry.review.users import UserService

    client, keys, _, app = served
    UserService(app.state.notices.db).create("notice-mod", "a long benign passphrase", "moderator")
    r = client.post("/v1/notices", headers=_auth(keys["uploader"]),
                    json={"regime": "take_it_down", "category": "deepfake", "locations": ["https://ex.org/p/console-1"],
                          "signature": "A. Person", "notifier_email": "person@example.org", "good_faith": True})
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    case_id = app.state.notices.get(number)["case_id"]
    c = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    assert c.post("/console/login", data={"username": "notice-mod", "password": "a long benign passphrase",
                                          "csrf_token": token}).status_code == 303
    page = c.get(f"/console/cases/{case_id}")
    assert page.status_code == 200, page.text
    assert f"Notice {number}" in page.text and "TAKE IT DOWN Act" in page.text
    assert "h left" in page.text and "https://ex.org/p/console-1" in page.text
    # decided in the notice panel (with its ground), not by the generic confirm/dismiss buttons
    assert 'id="notice-decide-hint"' in page.text and 'id="confirm-form"' not in page.text
    from consentry.web.pages.console_context import evidence_words

    said = evidence_words({"kind": "notice", "notice": number, "content_id": "post-9", "url": "https://ex.org/p/9"})
    assert said == f"Named in notice {number}: https://ex.org/p/9 (content post-9)."
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    # a restriction without its ground is refused with the reason, nothing decided
    bad = c.post(f"/console/cases/{case_id}/notice/decide",
                 data={"csrf_token": csrf, "number": number, "decision": "remove", "ground": "legal"})
    assert bad.status_code == 422 and "reference" in bad.text
    assert app.state.notices.get(number)["status"] == "open"
    # wrong CSRF token: refused
    assert c.post(f"/console/cases/{case_id}/notice/decide",
                  data={"csrf_token": "x", "number": number, "decision": "no_action"}).status_code in (400, 403)
    ok = c.post(f"/console/cases/{case_id}/notice/decide",
                data={"csrf_token": csrf, "number": number, "decision": "remove", "ground": "legal",
                      "reference": "47 U.S.C. 223a", "explanation": "shared without consent"})
    assert ok.status_code == 303 and ok.headers["location"].endswith("#notice")
    got = app.state.notices.get(number)
    assert got["status"] == "decided" and got["decision"]["ground"] == "legal"
    assert got["decision"]["decided_by"] == "notice-mod" and got["decision"]["reference"] == "47 U.S.C. 223a"
    again = c.get(f"/console/cases/{case_id}")
    assert 'id="notice-decision"' in again.text and "notice-decide-form" not in again.text


@needs_chromium
def test_whole_notice_flow_in_a_browser(tmp_path, browser):
    """Issue 14's end-to-end test, in chromium: the public form → the console's notices queue with
    the 48-hour clock → the decision, with its ground, in the case's notice panel → the sweep finds
    the copies in the ledger (a rotated one too) → the ``content.matched`` webhook names them and
    the platform removes them → the notice panel shows the efforts → the statements of reasons are
    exported and schema-valid. Screenshots (desktop) are kept in the test's folder."""
    import re
    import threading

    import httpx
    import uvicorn

    from conftest import _free_port
    from consentry.review.users import UserService
    from consentry.web.app import create_app

    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTRY_TEST_NOTICE_SECRET", SECRET)
    receiver = Receiver()
    home = tmp_path / "home"
    keys = {role: make_key(home, role) for role in ("uploader", "curator")}
    (home / "rules.yaml").write_text(RULES % receiver.url)
    app = create_app(Settings(home=home, rules_path=home / "rules.yaml"), background=False)
    UserService(app.state.notices.db).create("nora", "a long benign passphrase", "moderator")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=origin, timeout=30)
    shots = tmp_path / "screens"
    shots.mkdir()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []
    ctx.on("request", lambda req: None if req.url.startswith(origin + "/") else elsewhere.append(req.url))
    page = ctx.new_page()
    try:
        assert _wait(lambda: server.started, 20)
        up = _auth(keys["uploader"])
        # the platform's ledger: the picture, a copy turned a quarter, and an unrelated picture
        for cid, seed, turned in (("post-1", 21, False), ("post-2", 21, True), ("post-3", 27, False)):
            picture = scene(256, 256, seed=seed)
            r = api.post("/v1/content/upload", headers=up, files={"file": (f"{cid}.png", encode(
                picture.rotate(90, expand=True) if turned else picture, "PNG"))},
                data={"content_id": cid, "url": f"https://ex.org/p/{cid}", "uploader_id": f"u-{cid}"})
            assert r.status_code in (200, 201), r.text
        image = tmp_path / "mine.png"
        image.write_bytes(encode(scene(256, 256, seed=21), "PNG"))

        # 1. the public form (TAKE IT DOWN), no account
        page.goto(origin + "/report")
        page.locator("input[name=regime][value=take_it_down]").check()
        page.locator("input[name=category][value=deepfake]").check()
        page.locator("#f-locations").fill("https://ex.org/p/post-1")
        page.locator("#f-notifier_email").fill("person@example.org")
        page.locator("#f-signature").fill("A. Person")
        page.locator("#f-image").set_input_files(str(image))
        page.locator("input[name=good_faith]").check()
        page.locator("form button[type=submit]").click()
        number = page.locator("#notice-number").inner_text()
        assert number.startswith("N-")
        page.screenshot(path=str(shots / "1-received.png"), full_page=True)
        case_id = app.state.notices.get(number)["case_id"]

        # 2. the console: the notices queue shows the case with its clock
        page.goto(origin + "/console/queue?queue=notices")
        page.fill("#username", "nora")
        page.fill("#password", "a long benign passphrase")
        page.click("#login-submit")
        page.wait_for_url("**/console/queue**")
        page.goto(origin + "/console/queue?queue=notices")
        row = page.locator(f"#cases tr[data-case='{case_id}']")
        assert row.count() == 1
        clock = row.locator(".sla").inner_text()
        assert re.fullmatch(r"in (1 d 23|2 d 0) h", clock.strip()), clock  # due in 48 hours
        page.screenshot(path=str(shots / "2-queue.png"), full_page=True)
        bad = axe_violations(page)
        assert not bad, describe(bad)

        # 3. the case: the notice panel's clock, then the decision with its legal ground
        row.get_by_role("link", name=f"Case #{case_id}").click()
        assert "h left" in page.locator("#notice-clock").inner_text()
        assert "post-1" in page.locator("#notice-locations").inner_text()
        page.select_option("#notice-decision-kind", "remove")
        page.select_option("#notice-ground", "legal")
        page.fill("#notice-reference", "47 U.S.C. 223a")
        page.fill("#notice-explanation", "A digital forgery shared without consent")
        page.click("#notice-decide")
        page.wait_for_selector("#notice-decision")
        assert "remove" in page.locator("#notice-decision").inner_text()
        assert "legal ground: 47 U.S.C. 223a" in page.locator("#notice-decision").inner_text()
        # 4. the sweep found the copy named and the turned copy, not the unrelated picture
        efforts = page.locator("#notice-efforts").inner_text()
        assert "2 copies found, 0 removed" in efforts, efforts
        table = page.locator("#notice .grid").inner_text()
        assert "post-1" in table and "post-2" in table and "post-3" not in table
        page.screenshot(path=str(shots / "3-decided.png"), full_page=True)

        # 5. the webhook names both copies; the platform removes them
        app.state.policy.webhooks.start()
        assert _wait(lambda: receiver.requests)
        payloads = [json.loads(r["body"]) for r in receiver.requests]
        assert all(r["valid"] for r in receiver.requests)
        named = {c["content_id"] for p in payloads for c in p["data"]["contents"]}
        assert named == {"post-1", "post-2"}
        for cid in sorted(named):
            assert api.delete(f"/v1/content/{cid}", headers=up).status_code in (200, 204)

        # 6. the notice shows the efforts: found and removed, with times
        page.reload()
        efforts = page.locator("#notice-efforts").inner_text()
        assert "2 copies found, 2 removed" in efforts, efforts
        assert page.locator("#notice .grid tbody tr").count() == 2
        assert "—" not in page.locator("#notice .grid tbody").inner_text()  # both removal times shown
        page.screenshot(path=str(shots / "4-efforts.png"), full_page=True)
        bad = axe_violations(page)
        assert not bad, describe(bad)
        # on a 390 px phone the page does not scroll sideways: wide tables scroll inside themselves
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert page.locator("#decisions tbody tr").count() >= 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(shots / "5-phone.png"), full_page=True)

        # 7. statements of reasons: one per removal, exported and schema-valid, nothing personal
        export = api.get("/v1/statements/export", headers=_auth(keys["curator"]))
        lines = [json.loads(x) for x in export.text.splitlines()]
        assert len(lines) == 2 and all(schema_errors(b) == [] for b in lines)
        assert not re.search(r"person@|A\. Person|ex\.org|post-\d|u-post", json.dumps(lines))
        assert "Statements of reasons: 2" in page.locator("#notice").inner_text()
    finally:
        ctx.close()
        api.close()
        server.should_exit = True
        thread.join(10)
        receiver.close()
        app.state.consentry.match_log.close()
        mp.undo()
    assert elsewhere == []
