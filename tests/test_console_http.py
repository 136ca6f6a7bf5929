"""Console routes and the cases API over HTTP (TestClient, SQLite and PostgreSQL): every console
route declares roles and rejects anonymous and wrong-role sessions, CSRF, login throttling,
security headers, the break prompt, and ``/v1/cases``. Benign images only."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db.models import ROLES
from consentry.keys import KeyStore
from consentry.review.cases import CaseService, ItemInput
from consentry.review.exposure import ExposureLog
from consentry.review.users import UserService
from consentry.web.app import create_app, iter_api_routes
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"


@pytest.fixture
def app(db, tmp_path):
    application = create_app(Settings(home=tmp_path, exposure_budget=2), db, background=False)
    yield application
    application.state.consentry.match_log.close()


@pytest.fixture
def users(db):
    svc = UserService(db)
    for role in ROLES:
        svc.create(f"u-{role}", PASSWORD, role)
    return svc


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


def _console_routes(app) -> list[APIRoute]:
    return [r for r in iter_api_routes(app.routes) if r.path.startswith("/console")]


def _allowed(route: APIRoute):
    for dep in route.dependant.dependencies:
        if getattr(dep.call, "session_auth", False):
            return set(dep.call.allowed_roles)
    return None


def _fill(path: str) -> str:
    return (path.replace("{case_id}", "1").replace("{item_id}", "1").replace("{decision_id}", "1")
            .replace("{name}", "demo"))


def test_every_console_route_rejects_anonymous_and_wrong_roles(app, users):
    routes = _console_routes(app)
    assert len(routes) >= 14
    sessions = {role: _login(app, f"u-{role}") for role in ROLES}
    anonymous = _client(app)
    forged = _client(app)
    forged.cookies.set("consentry_session", "forged")
    for route in routes:
        allowed = _allowed(route)
        if route.path == "/console/login":
            assert allowed is None and any(getattr(d.call, "public_reason", None)
                                           for d in route.dependant.dependencies)
            continue
        assert allowed is not None and "admin" in allowed, f"{route.path} declares no roles"
        for method in route.methods:
            url = _fill(route.path)
            r = anonymous.request(method, url, headers={"Accept": "application/json"})
            assert r.status_code == 401, (method, url, r.status_code)
            assert r.headers["content-type"].startswith("application/problem+json")
            if method == "GET":
                r = anonymous.request(method, url, headers={"Accept": "text/html"})
                assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
            r = forged.request(method, url)
            assert r.status_code == 401
            for role in set(ROLES) - allowed:
                c, csrf = sessions[role]
                r = c.request(method, url, headers={"X-CSRF-Token": csrf},
                              data={"csrf_token": csrf} if method == "POST" else None)
                assert r.status_code == 403, (method, url, role, r.status_code)


def test_login_csrf_throttle_and_logout(app, db, users):
    c = _client(app)
    r = c.post("/console/login", data={"username": "u-moderator", "password": PASSWORD, "csrf_token": "x"})
    assert r.status_code == 403  # no login-form cookie: refused
    form = c.get("/console/login")
    assert "no-store" in form.headers["cache-control"] and "frame-ancestors 'none'" in \
        form.headers["content-security-policy"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    for _ in range(5):
        r = c.post("/console/login", data={"username": "u-moderator", "password": "wrong password",
                                           "csrf_token": token})
        assert r.status_code == 401 and "wrong password" in r.text
    r = c.post("/console/login", data={"username": "u-moderator", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 401 and "Too many failed attempts" in r.text  # throttled, even when right

    c2, csrf = _login(app, "u-curator")
    cookie = c2.cookies.get("consentry_session")
    assert cookie
    assert c2.post("/console/logout", data={"csrf_token": "wrong"}).status_code == 403
    r = c2.post("/console/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert UserService(db).session(cookie) is None
    stale = _client(app)
    stale.cookies.set("consentry_session", cookie)
    assert stale.get("/console/queue").status_code == 401
    from consentry.review.audit import AuditLog

    kinds = [e.event_type for e in AuditLog(db).list(limit=1000)]
    # failures are aggregated: one login.failed per name per window, the lock itself, a summary later
    assert kinds.count("login.failed") == 1 and kinds.count("login.locked") == 1
    assert "login.ok" in kinds and "logout" in kinds


def test_decisions_need_csrf_and_break_prompt_shows_at_budget(app, db, users):
    banks = BankService(db)
    banks.create_bank("known", "ncii")
    case = CaseService(db, banks).submit(ItemInput(media=encode(scene(seed=31), "PNG")), uploader_id="acct")
    c, csrf = _login(app, "u-moderator")
    page = c.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'id="break-prompt"' in page.text
    assert re.search(r'id="break-prompt"[^>]*hidden', page.text)
    assert "No media kept for this item" in page.text  # vault off: hashes and evidence only
    r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "known"})
    assert r.status_code == 403 and r.json()["type"].endswith("/csrf")
    r = c.post(f"/console/items/{case.items[0].id}/reveal")
    assert r.status_code == 403  # the reveal log needs the CSRF header too
    for n in (1, 2):
        r = c.post(f"/console/items/{case.items[0].id}/reveal", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["today"] == n
        assert "no-store" in r.headers["cache-control"]
    assert r.json()["over_budget"] is True
    page = c.get(f"/console/cases/{case.id}", headers={"Accept": "text/html"})
    assert not re.search(r'id="break-prompt"[^>]*hidden', page.text) and "Time for a break" in page.text
    assert ExposureLog(db).today("u-moderator").today == 2
    r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "nope", "csrf_token": csrf})
    assert r.status_code == 404 and "no bank named" in r.text  # re-rendered page with the error
    r = c.post(f"/console/cases/{case.id}/decide", data={"kind": "confirm", "bank": "known", "csrf_token": csrf})
    assert r.status_code == 303 and "done=confirmed" in r.headers["location"]
    m = c.get("/v1/match", params={"signal_type": "pdq", "value": case.items[0].pdq},
              headers={"Authorization": "Bearer " + KeyStore(db).create("matcher")[0]})
    assert [x["bank"] for x in m.json()["matches"]] == ["known"]


def test_cases_api_submit_list_get(app, db):
    keys = KeyStore(db)
    matcher, moderator, auditor, submitter = (keys.create(r)[0] for r in ("matcher", "moderator", "auditor",
                                                                         "submitter"))
    c = _client(app)
    png = encode(scene(seed=32), "PNG")
    r = c.post("/v1/cases", files={"file": ("x.png", png, "image/png")},
               data={"uploader_id": "acct-1", "priority": "70", "queue": "uploads"},
               headers={"Authorization": f"Bearer {matcher}"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "open" and body["items"][0]["pdq"] and body["items"][0]["has_media"] is False
    r2 = c.post("/v1/cases", data={"md5": "AB" * 16, "uploader_id": "acct-1", "queue": "uploads"},
                headers={"Authorization": f"Bearer {moderator}"})
    assert r2.status_code == 201 and r2.json()["id"] == body["id"] and r2.json()["item_count"] == 2
    bad = c.post("/v1/cases", data={"pdq": "12"}, headers={"Authorization": f"Bearer {moderator}"})
    assert bad.status_code == 422 and "PDQ" in bad.json()["detail"]
    assert c.post("/v1/cases", data={"md5": "ab" * 16},
                  headers={"Authorization": f"Bearer {submitter}"}).status_code == 403
    listed = c.get("/v1/cases", params={"queue": "uploads"}, headers={"Authorization": f"Bearer {auditor}"})
    assert [x["id"] for x in listed.json()["cases"]] == [body["id"]]
    assert c.get("/v1/cases", params={"status": "bogus"},
                 headers={"Authorization": f"Bearer {auditor}"}).status_code == 422
    one = c.get(f"/v1/cases/{body['id']}", headers={"Authorization": f"Bearer {auditor}"}).json()
    assert {i["md5"] for i in one["items"]} >= {"ab" * 16}
    assert c.get("/v1/cases/999999", headers={"Authorization": f"Bearer {auditor}"}).status_code == 404


def test_a_case_matched_through_the_trimmed_picture_says_so(app, db, users):
    """Issue 21: a picture uploaded with letterbox bars matches the bank entry of the picture
    without them; the case keeps the match's query_variant and the console explains it."""
    from PIL import Image

    from consentry.banks.matcher import Matcher, query_from_content
    from consentry.config import MediaLimits
    from consentry.media.content import Content

    pic = scene(640, 480, 41)
    banks = BankService(db)
    banks.create_bank("victims", "ncii")
    q = query_from_content(Content.from_bytes(encode(pic, "PNG"), MediaLimits()), canonical=False)
    banks.add_entry("victims", "pdq", q.pdq[0], quality=q.pdq_quality)
    app.state.consentry.matcher.refresh()
    boxed = Image.new("RGB", (640, 1138))
    boxed.paste(pic, (0, 329))
    matcher = KeyStore(db).create("matcher")[0]
    c = _client(app)
    r = c.post("/v1/cases", files={"file": ("boxed.png", encode(boxed, "PNG"), "image/png")},
               data={"queue": "uploads"}, headers={"Authorization": f"Bearer {matcher}"})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    m, _csrf = _login(app, "u-moderator")
    page = m.get(f"/console/cases/{case_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "victims" in page.text
    assert "borders" in page.text or "inside the submitted screenshot" in page.text


def test_a_video_case_says_where_the_clip_sits_and_that_the_bars_were_removed(app, db, users, tmp_path):
    """A letterboxed clip re-cut from a video stored with every frame: the case page says the
    match was found without the bars and where the clip starts in the stored video."""
    from consentry.config import MediaLimits
    from consentry.media.content import Content
    from consentry.signals.vpdq import VPDQSignal, frames_to_json
    from test_vpdq_dense import _video

    source = Content.from_bytes(_video(tmp_path / "s.mp4", 12), MediaLimits())
    banks = BankService(db)
    banks.create_bank("victims", "ncii")
    banks.add_entry("victims", "vpdq", frames_to_json(VPDQSignal.compute_frames(source, dense=True)))
    app.state.consentry.matcher.refresh()
    clip = _video(tmp_path / "c.mp4", 6, start=3.4, boxed=True)
    matcher = KeyStore(db).create("matcher")[0]
    r = _client(app).post("/v1/cases", files={"file": ("clip.mp4", clip, "video/mp4")},
                          data={"queue": "uploads"}, headers={"Authorization": f"Bearer {matcher}"})
    assert r.status_code == 201, r.text
    m, _csrf = _login(app, "u-moderator")
    page = m.get(f"/console/cases/{r.json()['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "victims" in page.text
    assert "bars (letterbox or pillarbox) around the submitted video were removed" in page.text
    assert re.search(r"the submitted clip starts 3\.[2-6] s into the stored video", page.text)
    assert "same video frames: 100 % of the sampled frames found" in page.text  # not 'bits differ'
    assert "identical picture" not in page.text


def test_a_case_matched_through_a_stored_crop_says_so(app, db, users):
    """A picture banked from its file keeps its crops (issue 21): an upload cropped by 20 % opens
    a case whose page says it met the centre of the banked picture, a cropped copy."""
    from consentry.config import MediaLimits
    from consentry.hashing import hash_content, stored_variants
    from consentry.media.content import Content

    pic = scene(640, 480, 43)
    banks = BankService(db)
    banks.create_bank("victims", "ncii")
    c = Content.from_bytes(encode(pic, "PNG"), MediaLimits())
    r = hash_content(c)
    banks.add_entry("victims", "pdq", r.pdq, quality=r.pdq_quality)
    banks.set_variants("victims", r.pdq, stored_variants(c, r))
    app.state.consentry.matcher.refresh()
    cropped = pic.crop((64, 48, 576, 432))
    matcher = KeyStore(db).create("matcher")[0]
    resp = _client(app).post("/v1/cases", files={"file": ("c.jpg", encode(cropped, "JPEG"), "image/jpeg")},
                             data={"queue": "uploads"}, headers={"Authorization": f"Bearer {matcher}"})
    assert resp.status_code == 201, resp.text
    m, _csrf = _login(app, "u-moderator")
    page = m.get(f"/console/cases/{resp.json()['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "victims" in page.text
    assert "it matches the centre of the banked picture (80 % of each side): a cropped copy" in page.text
