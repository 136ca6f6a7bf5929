"""Every console page opens for every role that may see it (and is refused for the others); case
previews work on every path that opens a case (block, enqueue, manual API); the confirm bank
defaults to the matched bank; undo; notes; four-eyes hints; the login form keeps the username; the
weak-hash warning. SQLite and PostgreSQL, TestClient. Benign pictures drawn by ``imagegen`` only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db.models import ROLES, utcnow
from consentry.db.models_review import Decision
from consentry.keys import KeyStore
from consentry.review.audit import AuditLog
from consentry.review.cases import UNDO_SECONDS, CaseService, ItemInput
from consentry.review.users import UserService
from consentry.review.vault import Vault
from consentry.web.app import create_app, iter_api_routes
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"


def _settings(tmp_path, vault: bool) -> Settings:
    s = Settings(home=tmp_path)
    return s.with_(vault_key=base64.b64encode(os.urandom(32)).decode()) if vault else s


def _app(db, settings):
    app = create_app(settings, db, background=False)
    return app


def _client(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def _login(app, username: str) -> tuple[TestClient, str]:
    c = _client(app)
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = c.post("/console/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    page = c.get("/console/banks", headers={"Accept": "text/html"})
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    return c, csrf.group(1) if csrf else ""


def _allowed(route) -> set[str] | None:
    for dep in route.dependant.dependencies:
        if getattr(dep.call, "session_auth", False):
            return set(dep.call.allowed_roles)
    return None


def _html(c: TestClient, url: str):
    return c.get(url, headers={"Accept": "text/html"})


def _match(db, *, pdq=None, md5=None):
    m = Matcher(db)
    m.load()
    q = QuerySignals(exact={"md5": md5} if md5 else {})
    if pdq:
        q.pdq = [pdq]
    return m.match(q, None).matches


# --------------------------------------------------------------------------- 11.7: every page
def test_every_console_page_opens_for_every_role_that_may_see_it(db, tmp_path):
    settings = _settings(tmp_path, vault=True)
    banks = BankService(db)
    for name, kind, shared in (("demo", "custom", False), ("known", "ncii", False),
                               ("partners", "ncii", True), ("fp", "allow", False)):
        banks.create_bank(name, kind, shared=shared)
    banks.add_entry("known", "md5", "ab" * 16)
    w, _ = banks.add_entry("known", "md5", "cd" * 16)
    banks.withdraw("known", entry_id=w.id)
    cases = CaseService(db, banks, vault=Vault.from_settings(settings, db))
    case = cases.submit(ItemInput(media=encode(scene(seed=51), "PNG")), uploader_id="acct-pages",
                        note="manual note")
    other = cases.submit(ItemInput(media=encode(scene(seed=52), "JPEG")), uploader_id="acct-other")
    users = UserService(db)
    for role in ROLES:
        users.create(f"u-{role}", PASSWORD, role)
    pending = cases.decide(other.id, "someone-else", "confirm", bank="partners", note="first note")
    app = _app(db, settings)
    sessions = {role: _login(app, f"u-{role}") for role in ROLES}
    item_id = case.items[0].id
    fill = {
        "case_id": [str(case.id), str(other.id)],
        "item_id": [str(item_id)],
        "decision_id": [str(pending.id)],
        "name": [b.name for b in banks.list_banks()],
    }
    extra_queries = {
        "/console/banks/{name}": ["", "?status=active", "?status=withdrawn", "?status=disabled",
                                  "?status=bogus", "?after=1&status=active"],
        "/console/audit": ["", "?verify=1", "?event_type=decision"],
        "/console/queue": ["", "?queue=manual", f"?done=confirmed&undo={pending.id}"],
        "/console/cases/{case_id}": ["", "?done=undone"],
    }
    gets = [r for r in iter_api_routes(app.routes) if r.path.startswith("/console") and "GET" in r.methods]
    assert {"/console/banks/{name}", "/console/banks", "/console/queue", "/console/cases/{case_id}",
            "/console/audit", "/console/items/{item_id}/preview"} <= {r.path for r in gets}
    opened = 0
    for route in gets:
        params = re.findall(r"{(\w+)}", route.path)
        unknown = [p for p in params if p not in fill]
        assert not unknown, f"{route.path}: teach this test a real value for {unknown}"
        urls = [route.path]
        for p in params:
            urls = [u.replace("{" + p + "}", v) for u in urls for v in fill[p]]
        urls = [u + q for u in urls for q in extra_queries.get(route.path, [""])]
        allowed = _allowed(route)
        if route.path == "/console/login":
            for role, (c, _csrf) in sessions.items():
                assert _html(c, "/console/login").status_code == 303  # already logged in
            assert _html(_client(app), "/console/login").status_code == 200
            continue
        assert allowed is not None, route.path
        for role, (c, csrf) in sessions.items():
            for url in urls:
                if route.path == "/console/items/{item_id}/media" and role in allowed:
                    assert c.post(f"/console/items/{item_id}/reveal",
                                  headers={"X-CSRF-Token": csrf}).status_code == 200
                r = _html(c, url)
                if role not in allowed:
                    assert r.status_code == 403, (url, role, r.status_code)
                    continue
                if route.path in ("/console", "/console/next"):  # redirects: home, and the next case
                    assert r.status_code == 303, (url, role, r.status_code)
                    assert _html(c, r.headers["location"]).status_code == 200
                    continue
                assert r.status_code == 200, (url, role, r.status_code, r.text[:500])
                if r.headers["content-type"].startswith("text/html"):
                    assert "<main" in r.text
                opened += 1
    assert opened > 50


# --------------------------------------------------------------------- 11.8: previews per path
def _preview(app, item_id: int, username: str = "rev") -> Image.Image:
    c, csrf = _login(app, username)
    r = c.get(f"/console/items/{item_id}/preview")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.mode == "L"  # greyscale, blurred on the server
    return img


def _only_item(db, queue: str):
    (case,) = CaseService(db).list_queue(queue=queue)
    (item,) = CaseService(db).get(case.id).items
    return case, item


def _check_item(item, data: bytes, mime: str, vault: Vault) -> None:
    assert item.media_type == mime
    assert item.content_type == "photo"
    assert item.md5 == hashlib.md5(data).hexdigest()
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.pdq and item.pdq_quality is not None
    assert item.vault_item_id in {v.id for v in vault.list()}  # the preview comes from the vault
    assert vault.get(item.vault_item_id) == data


def test_block_path_case_has_media_type_digests_and_a_preview_from_the_vault(db, tmp_path):
    settings = _settings(tmp_path, vault=True)
    data = encode(scene(seed=61), "JPEG")
    banks = BankService(db)
    banks.create_bank("hub", "ncii")
    banks.add_entry("hub", "md5", hashlib.md5(data).hexdigest())
    UserService(db).create("rev", PASSWORD, "moderator")
    app = _app(db, settings)
    key, _ = KeyStore(db).create("matcher", "platform")
    with TestClient(app) as c:
        r = c.post("/v1/match", params={"uploader_id": "acct-block"}, files={"file": ("x.jpg", data, "image/jpeg")},
                   headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["verdict"]["decision"] == "block", r.text
        app.state.policy.drain()
    case, item = _only_item(db, "known-abuse")
    vault = Vault.from_settings(settings, db)
    _check_item(item, data, "image/jpeg", vault)
    assert len(vault.list()) == 1  # preserved once, not stored again by the case
    assert vault.info(item.vault_item_id).content_type == "image/jpeg"
    _preview(app, item.id)
    c, csrf = _login(app, "rev")
    page = _html(c, f"/console/cases/{case.id}")
    assert f'src="/console/items/{item.id}/preview"' in page.text and "No media kept" not in page.text
    assert c.post(f"/console/items/{item.id}/reveal", headers={"X-CSRF-Token": csrf}).status_code == 200
    media = c.get(f"/console/items/{item.id}/media")
    assert media.status_code == 200 and media.headers["content-type"] == "image/jpeg" and media.content == data


def test_enqueue_path_case_has_a_preview(db, tmp_path):
    settings = _settings(tmp_path, vault=True)
    data = encode(scene(seed=62), "PNG")
    banks = BankService(db)
    banks.create_bank("mine", "custom")  # review-other-matches: enqueue only (no block, no preserve)
    banks.add_entry("mine", "md5", hashlib.md5(data).hexdigest())
    UserService(db).create("rev", PASSWORD, "moderator")
    app = _app(db, settings)
    key, _ = KeyStore(db).create("matcher", "platform")
    with TestClient(app) as c:
        r = c.post("/v1/match", files={"file": ("x.png", data, "image/png")},
                   headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["verdict"]["decision"] == "review", r.text
        app.state.policy.drain()
    _case, item = _only_item(db, "default")
    _check_item(item, data, "image/png", Vault.from_settings(settings, db))
    _preview(app, item.id)


def test_manual_api_case_has_a_preview_and_vault_off_has_none(db, tmp_path):
    settings = _settings(tmp_path, vault=True)
    data = encode(scene(seed=63), "PNG")
    UserService(db).create("rev", PASSWORD, "moderator")
    app = _app(db, settings)
    key, _ = KeyStore(db).create("moderator", "t")
    c = _client(app)
    r = c.post("/v1/cases", files={"file": ("x.png", data, "image/png")}, data={"queue": "manual"},
               headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    assert r.json()["items"][0]["media_type"] == "image/png"
    _case, item = _only_item(db, "manual")
    _check_item(item, data, "image/png", Vault.from_settings(settings, db))
    _preview(app, item.id)

    # without the vault the block path still keeps the digests; there is simply no preview
    home = tmp_path / "novault"
    off = _settings(home, vault=False)
    banks = BankService(db)
    banks.create_bank("hub", "ncii")
    data2 = encode(scene(seed=64), "PNG")
    banks.add_entry("hub", "md5", hashlib.md5(data2).hexdigest())
    app2 = _app(db, off)
    matcher_key = KeyStore(db).create("matcher")[0]
    with TestClient(app2) as c2:
        r = c2.post("/v1/match", files={"file": ("y.png", data2, "image/png")},
                    headers={"Authorization": f"Bearer {matcher_key}"})
        assert r.json()["verdict"]["decision"] == "block", r.text
        app2.state.policy.drain()
    _case2, item2 = _only_item(db, "known-abuse")
    assert item2.md5 == hashlib.md5(data2).hexdigest() and item2.media_type == "image/png"
    assert item2.vault_item_id is None
    c3, _ = _login(app2, "rev")
    assert c3.get(f"/console/items/{item2.id}/preview").status_code == 404


# ------------------------------------------------------------- 11.9: default bank, confirm, undo
@pytest.fixture
def reviewed(db, tmp_path):
    """Banks (``demo`` first alphabetically), two moderators, a case whose item matched ``known``
    and a case that matched nothing."""
    banks = BankService(db)
    for name, kind, shared in (("demo", "custom", False), ("known", "ncii", False),
                               ("partners", "ncii", True)):
        banks.create_bank(name, kind, shared=shared)
    data = encode(scene(seed=71), "PNG")
    banks.add_entry("known", "sha256", hashlib.sha256(data).hexdigest())
    users = UserService(db)
    for name in ("alice", "bob"):
        users.create(name, PASSWORD, "moderator")
    app = _app(db, _settings(tmp_path, vault=False))
    key, _ = KeyStore(db).create("moderator", "t")
    c = _client(app)
    with TestClient(app):  # the lifespan loads the index so the submission records its matches
        matched = c.post("/v1/cases", files={"file": ("x.png", data, "image/png")}, data={"uploader_id": "m"},
                         headers={"Authorization": f"Bearer {key}"}).json()
    assert [m["bank"] for m in matched["items"][0]["matches"]] == ["known"]
    unmatched = CaseService(db, banks).submit(ItemInput(media=encode(scene(seed=72), "PNG")), uploader_id="u")
    return {"app": app, "banks": banks, "matched": matched, "unmatched": unmatched}


def _selected(page: str, select_id: str) -> str | None:
    block = re.search(rf'<select id="{select_id}".*?</select>', page, re.S).group(0)
    opt = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', block)
    return opt.group(1) if opt else None


def test_confirm_defaults_to_the_matched_bank_or_requires_a_choice(db, reviewed):
    app = reviewed["app"]
    c, csrf = _login(app, "alice")
    page = _html(c, f"/console/cases/{reviewed['matched']['id']}").text
    assert _selected(page, "confirm-bank") == "known"  # the bank that matched, not "demo"
    assert 'id="confirm-step"' in page and 'id="confirm-step-bank">known<' in page
    assert 'id="matched-banks">known<' in page
    page = _html(c, f"/console/cases/{reviewed['unmatched'].id}").text
    assert _selected(page, "confirm-bank") == ""  # nothing matched: the reviewer must choose
    assert "choose a bank" in page
    r = c.post(f"/console/cases/{reviewed['unmatched'].id}/decide",
               data={"kind": "confirm", "bank": "", "csrf_token": csrf})
    assert r.status_code == 422 and "confirm needs a bank" in r.text
    assert CaseService(db).get(reviewed["unmatched"].id).status != "decided"


def test_undo_reverts_the_decision_withdraws_entries_and_reopens_the_case(db, reviewed):
    app, banks = reviewed["app"], reviewed["banks"]
    case = CaseService(db).get(reviewed["unmatched"].id)
    item = case.items[0]
    c, csrf = _login(app, "alice")
    _html(c, f"/console/cases/{case.id}")
    r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "demo", "csrf_token": csrf,
                                                          "note": "benign test"})
    assert r.status_code == 303
    loc = r.headers["location"]
    decision_id = int(re.search(r"undo=(\d+)", loc).group(1))
    assert [m.bank for m in _match(db, pdq=item.pdq)] == ["demo"]
    queue = _html(c, loc).text
    assert 'id="undo-form"' in queue and f"/console/decisions/{decision_id}/undo" in queue
    assert f"Confirmed case #{case.id} into bank demo" in queue
    # another reviewer can neither see nor use the undo
    c2, csrf2 = _login(app, "bob")
    assert 'id="undo-form"' not in _html(c2, loc).text
    r = c2.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf2})
    assert r.status_code == 409 and "only the reviewer" in r.text
    assert c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": "x"}).status_code == 403
    r = c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == f"/console/cases/{case.id}?done=undone"
    assert _match(db, pdq=item.pdq) == [] and _match(db, md5=item.md5) == []  # withdrawn
    assert {e.status for e in banks.list_entries("demo")} == {"withdrawn"}
    after = CaseService(db).get(case.id)
    assert after.status == "open" and after.decided_at is None
    assert [d.status for d in after.decisions] == ["undone"]
    page = _html(c, r.headers["location"]).text
    assert "Decision undone" in page and 'id="confirm-form"' in page  # reopened and decidable again
    events = [(e.event_type, e.actor) for e in AuditLog(db).list(limit=1000)]
    assert ("decision", "alice") in events and ("decision.undone", "alice") in events
    # twice: refused
    r = c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf})
    assert r.status_code == 409 and "cannot be undone" in r.text


def test_undo_window_and_pre_existing_entries(db, reviewed):
    app, banks = reviewed["app"], reviewed["banks"]
    matched = CaseService(db).get(reviewed["matched"]["id"])
    c, csrf = _login(app, "alice")
    _html(c, f"/console/cases/{matched.id}")
    r = c.post(f"/console/cases/{matched.id}/decide", data={"kind": "confirm", "bank": "known", "csrf_token": csrf})
    decision_id = int(re.search(r"undo=(\d+)", r.headers["location"]).group(1))
    before = {e.id for e in banks.list_entries("known")}
    assert c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf}).status_code == 303
    # the SHA-256 entry that was in the bank before the decision stays active; only the
    # entries the decision added (PDQ, MD5) are withdrawn
    status = {e.signal_type: e.status for e in banks.list_entries("known") if e.id in before}
    assert status == {"sha256": "active", "pdq": "withdrawn", "md5": "withdrawn"}
    # past the window: refused, and the queue no longer offers it
    _html(c, f"/console/cases/{matched.id}")
    r = c.post(f"/console/cases/{matched.id}/decide", data={"kind": "escalate", "csrf_token": csrf})
    decision_id = int(re.search(r"undo=(\d+)", r.headers["location"]).group(1))
    with db.session() as s:
        s.execute(update(Decision).where(Decision.id == decision_id)
                  .values(created_at=utcnow() - timedelta(seconds=UNDO_SECONDS + 5)))
    assert 'id="undo-form"' not in _html(c, r.headers["location"]).text
    r = c.post(f"/console/decisions/{decision_id}/undo", data={"csrf_token": csrf})
    assert r.status_code == 409 and "undo window" in r.text
    assert CaseService(db).get(matched.id).status == "escalated"


# ------------------------------------------------- 11.10: notes, four-eyes hints, login username
def test_rule_notes_are_not_repeated(db, reviewed):
    cases = CaseService(db, reviewed["banks"])
    for seed in (81, 82, 83):
        case = cases.create_from_action({"queue": "default", "priority": 50, "rule": "review-other-matches"},
                                        ItemInput(media=encode(scene(seed=seed), "PNG")), uploader_id="acct-n")
    cases.create_from_action({"queue": "default", "priority": 50, "rule": "review-proven-ai-generated"},
                             ItemInput(media=encode(scene(seed=84), "PNG")), uploader_id="acct-n")
    case = cases.get(case.id)
    assert case.item_count == 4
    assert case.note == "rule review-other-matches\nrule review-proven-ai-generated"
    c, _ = _login(reviewed["app"], "alice")
    page = _html(c, f"/console/cases/{case.id}").text
    assert page.count("rule review-other-matches") == 1


def test_four_eyes_hides_hints_from_the_first_reviewer_and_shows_the_note_to_the_second(db, reviewed):
    app = reviewed["app"]
    case = reviewed["unmatched"]
    c, csrf = _login(app, "alice")
    page = _html(c, f"/console/cases/{case.id}").text
    assert "<kbd>c</kbd> confirm" in page
    r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "partners",
                                                          "note": "looks like the reported picture",
                                                          "csrf_token": csrf})
    assert "done=pending" in r.headers["location"]
    page = _html(c, f"/console/cases/{case.id}").text
    assert "Waiting for a second reviewer" in page
    assert "<kbd>c</kbd>" not in page and "<kbd>d</kbd>" not in page and "<kbd>e</kbd>" not in page
    assert 'id="confirm-form"' not in page
    c2, _ = _login(app, "bob")
    queue = _html(c2, "/console/queue").text
    assert "looks like the reported picture" in queue
    page = _html(c2, f"/console/cases/{case.id}").text
    assert 'id="first-reviewer-note"' in page and "looks like the reported picture" in page
    assert 'id="approve"' in page


def test_failed_login_keeps_the_username(db, reviewed):
    c = _client(reviewed["app"])
    form = c.get("/console/login")
    assert 'id="username" name="username" autocomplete="username" required maxlength="100" value=""' in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = c.post("/console/login", data={"username": "alice", "password": "not the password", "csrf_token": token})
    assert r.status_code == 401
    assert re.search(r'<input id="username"[^>]*value="alice"', r.text)
    assert re.search(r'<input id="password"[^>]*autofocus', r.text)  # straight to the password
    assert not re.search(r'<input id="password"[^>]*value=', r.text)
    r = c.post("/console/login", data={"username": '"><script>x</script>', "password": "nope nope nope",
                                       "csrf_token": token})
    assert "<script>x</script>" not in r.text  # escaped


# --------------------------------------------------------------------- 11.11: weak-hash warning
def test_weak_pdq_shows_a_warning_in_the_case_view(db, reviewed):
    cases = CaseService(db, reviewed["banks"])
    weak = cases.submit(ItemInput(pdq="ab" * 32, pdq_quality=20), uploader_id="weak")
    strong = cases.submit(ItemInput(pdq="cd" * 32, pdq_quality=90), uploader_id="strong")
    c, _ = _login(reviewed["app"], "alice")
    page = _html(c, f"/console/cases/{weak.id}").text
    assert "Weak hash: not used for matching" in page and "quality 20" in page
    assert "Weak hash" not in _html(c, f"/console/cases/{strong.id}").text


def test_a_decided_case_shows_when_it_was_decided_not_a_countdown(db, reviewed):
    app = reviewed["app"]
    case_id = reviewed["unmatched"].id
    c, _ = _login(app, "alice")
    page = _html(c, f"/console/cases/{case_id}").text
    assert "<dt>SLA</dt>" in page and 'id="case-decided"' not in page  # open: the clock runs
    CaseService(db).decide(case_id, "alice", "dismiss", note="benign")
    assert CaseService(db).get(case_id).status == "decided"
    page = _html(c, f"/console/cases/{case_id}").text
    decided = re.search(r'id="case-decided">(.*?)</dd>', page, re.S)
    assert decided and "within the SLA" in decided.group(1)
    assert "<dt>SLA</dt>" not in page
