"""Issue 19: the review console's throughput, context, queue management, care, audit view and
banks pages over HTTP (TestClient, SQLite: these are page flows; the queries they run are the
ones the PostgreSQL page tests already open). Benign images only."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.db import Database
from consentry.db.models import ROLES
from consentry.review.audit import AuditLog
from consentry.review.cases import CaseService, ItemInput
from consentry.review.users import UserService
from consentry.web.app import create_app
from imagegen import encode, scene

PASSWORD = "a long benign passphrase"
HTML = {"Accept": "text/html"}


@pytest.fixture
def world(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.upgrade()
    users = UserService(db)
    for role in ROLES:
        users.create(f"u-{role}", PASSWORD, role)
    users.create("mo2", PASSWORD, "moderator")
    banks = BankService(db)
    banks.create_bank("known", "ncii", description="Reported by the people pictured")
    banks.create_bank("abuse", "csam")
    entry, _ = banks.add_entry("known", "md5", "1" * 32, added_by="seed", source="StopNCII test list",
                               tags=["reported"], category="ncii")
    m = {"bank": "known", "bank_kind": "ncii", "signal_type": "pdq", "distance": 12, "entry_id": entry.id}
    cases = CaseService(db, banks)
    pics = [encode(scene(seed=70 + i), "PNG") for i in range(6)]
    grouped = None
    for i in range(3):  # one uploader, three items: one grouped case
        grouped = cases.submit(ItemInput(media=pics[i], matches=[dict(m)]), uploader_id="acct-grp", priority=90,
                               queue="uploads", note="rule known-ncii\nsurface: comments")
    lone = cases.submit(ItemInput(media=pics[3]), uploader_id="acct-lone", priority=50, queue="uploads",
                        note="rule generator-meta")
    other = cases.submit(ItemInput(media=pics[4]), uploader_id="acct-oth", priority=10, queue="appeals")
    # an earlier case of the grouped uploader sharing a picture: history and a related case
    old = cases.submit(ItemInput(media=pics[0]), uploader_id="acct-grp", priority=1, queue="old")
    cases.decide(old.id, "mo2", "dismiss")
    app = create_app(Settings(home=tmp_path, exposure_budget=3), db, background=False)
    yield {"app": app, "db": db, "grouped": cases.get(grouped.id), "lone": lone, "other": other, "old": old,
           "entry": entry, "cases": cases, "banks": banks}
    app.state.consentry.match_log.close()
    db.dispose()


def _login(app, username: str) -> tuple[TestClient, str]:
    c = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/console/login").text).group(1)
    assert c.post("/console/login", data={"username": username, "password": PASSWORD,
                                          "csrf_token": token}).status_code == 303
    page = c.get("/console/banks", headers=HTML)
    return c, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_decisions_advance_to_the_next_case_or_stay_and_bulk_split(world):
    c, csrf = _login(world["app"], "u-moderator")
    g, lone = world["grouped"], world["lone"]
    # the queue offers the first decidable case, highest priority first
    q = c.get("/console/queue", headers=HTML)
    assert q.status_code == 200 and f'id="next-case" href="/console/cases/{g.id}"' in q.text
    r = c.get("/console/next", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == f"/console/cases/{g.id}"
    page = c.get(f"/console/cases/{g.id}", headers=HTML).text
    assert page.count('class="item-select"') == 3 and "items-grid" in page  # compact grid, selectable
    # context: the entry's provenance, what the distance means, history and the related case
    assert "StopNCII test list" in page and "Reported by the people pictured" in page
    assert "near-identical (re-saved, resized or lightly edited): 12 of 256 bits differ" in page
    hist = page.split('id="uploader-history"')[1].split("</section>")[0]
    assert f"#{world['old'].id}" in hist and "dismiss" in hist
    rel = page.split('id="related"')[1].split("</section>")[0]
    assert f"#{world['old'].id}" in rel and "SHA-256" in rel
    # bulk: dismiss two of the three items; they are split off and decided, the rest stays open
    keep = g.items[2].id
    r = c.post(f"/console/cases/{g.id}/decide", data={"kind": "dismiss", "csrf_token": csrf,
                                                       "items": [g.items[0].id, g.items[1].id]})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/console/cases/{g.id}?")
    assert "done=split" in r.headers["location"]
    rest = world["cases"].get(g.id)
    assert [i.id for i in rest.items] == [keep] and rest.status in ("open", "claimed")
    split_off = [x for x in world["cases"].list_queue(limit=50) if x.id == g.id]
    assert split_off  # the remaining case is still in the queue
    # a selection that is not of this case is refused, nothing changes
    r = c.post(f"/console/cases/{g.id}/decide", data={"kind": "dismiss", "csrf_token": csrf,
                                                       "items": [lone.items[0].id]})
    assert r.status_code in (409, 422) and world["cases"].get(g.id).status != "decided"
    # stay on the case (advance=0)
    r = c.post(f"/console/cases/{g.id}/decide", data={"kind": "dismiss", "csrf_token": csrf, "advance": "0"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/console/cases/{g.id}?")
    assert "done=dismissed" in r.headers["location"] and "undo=" in r.headers["location"]
    # default: the next case of the same view opens, with the undo offered there
    c.get(f"/console/cases/{lone.id}", headers=HTML)
    r = c.post(f"/console/cases/{lone.id}/decide", data={"kind": "dismiss", "csrf_token": csrf,
                                                          "fq": "queue=appeals"})
    loc = r.headers["location"]
    assert loc.startswith(f"/console/cases/{world['other'].id}?") and "queue=appeals" in loc and "undo=" in loc
    nxt = c.get(loc, headers=HTML).text
    assert 'id="undo-form"' in nxt and f"case #{lone.id}" in nxt


def test_queue_filters_counts_claims_sla_and_assignment(world):
    cu, csrf = _login(world["app"], "u-curator")
    mo, _ = _login(world["app"], "u-moderator")
    g = world["grouped"]
    mo.get(f"/console/cases/{g.id}", headers=HTML)  # opening claims it
    q = cu.get("/console/queue", headers=HTML).text
    row = q.split(f'data-case="{g.id}"')[1].split("</tr>")[0]
    assert "u-moderator" in row and "sla sla-" in row  # the claim and the SLA countdown are visible
    nav = q.split('class="queues"')[1].split("</nav>")[0]
    assert re.search(r'data-queue="uploads">uploads\s*<span class="count">2</span>', nav)
    assert "1 claimed" in nav
    # the claimed case is not offered to someone else
    assert f'id="next-case" href="/console/cases/{g.id}"' not in q
    f = cu.get("/console/queue?kind=ncii", headers=HTML).text
    assert f'data-case="{g.id}"' in f and f'data-case="{world["lone"].id}"' not in f
    f = cu.get("/console/queue?rule=generator-meta", headers=HTML).text
    assert f'data-case="{world["lone"].id}"' in f and f'data-case="{g.id}"' not in f
    f = cu.get("/console/queue?tag=surface:+comments", headers=HTML).text
    assert f'data-case="{g.id}"' in f and f'data-case="{world["other"].id}"' not in f
    assert 'data-case="' not in cu.get("/console/queue?age=72", headers=HTML).text.split('id="cases-h"')[1]
    mine = mo.get("/console/queue?mine=1", headers=HTML).text
    assert f'data-case="{g.id}"' in mine and f'data-case="{world["lone"].id}"' not in mine
    # a curator assigns a case: it becomes the assignee's claim, audited
    r = cu.post(f"/console/cases/{world['lone'].id}/assign", data={"assignee": "mo2", "csrf_token": csrf})
    assert r.status_code == 303
    assert world["cases"].get(world["lone"].id).claim_holder() == "mo2"
    assert AuditLog(world["db"]).list(event_type="case.assigned")[-1].data["assignee"] == "mo2"
    r = cu.post(f"/console/cases/{world['lone'].id}/assign", data={"assignee": "u-auditor", "csrf_token": csrf})
    assert r.status_code == 422
    assert mo.post(f"/console/cases/{world['lone'].id}/assign",
                   data={"assignee": "mo2", "csrf_token": csrf}).status_code == 403  # moderators cannot


def test_break_pauses_the_queue_and_team_lead_sees_counts_only(world):
    mo, csrf = _login(world["app"], "u-moderator")
    r = mo.post("/console/break", data={"minutes": "10", "csrf_token": csrf})
    assert r.status_code == 303
    assert mo.get("/console/next", headers=HTML).headers["location"].startswith("/console/queue?done=break")
    q = mo.get("/console/queue", headers=HTML).text
    assert 'id="paused"' in q and 'id="next-case"' not in q
    mo.post("/console/break/end", data={"csrf_token": csrf})
    mo.cookies.delete("consentry_break_until")
    assert mo.get("/console/next", headers=HTML).headers["location"].startswith("/console/cases/")
    item = world["lone"].items[0].id
    for n in range(3):  # the budget (3) reached: the queue pauses by itself
        assert mo.post(f"/console/items/{item}/reveal", headers={"X-CSRF-Token": csrf}).status_code == 200
    page = mo.get("/console/queue", headers=HTML).text
    assert 'id="exposure-left">0<' in page and 'id="paused"' in page
    assert mo.get("/console/next", headers=HTML).headers["location"].startswith("/console/queue?done=break")
    cu, _ = _login(world["app"], "u-curator")
    team = cu.get("/console/team", headers=HTML)
    assert team.status_code == 200
    row = team.text.split('data-reviewer="u-moderator"')[1].split("</tr>")[0]
    assert [int(x) for x in re.findall(r'>(\d+)<', row)][-2:] == [3, 1]  # 3 reveals in 1 case
    assert "mo2" in team.text and "acct-" not in team.text and "/console/items/" not in team.text
    assert mo.get("/console/team", headers=HTML).status_code == 403


def test_audit_view_newest_first_filters_exports_and_chain_head(world):
    au, _ = _login(world["app"], "u-auditor")
    log = AuditLog(world["db"])
    log.record("test.lighthouse", "=cmd|evil", {"note": "teapot"})
    page = au.get("/console/audit", headers=HTML).text
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', page)]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 5
    head_seq, head_hash = log.head()
    assert f"{head_seq}:{head_hash}" in page and "Chain intact" in page
    f = au.get("/console/audit?actor=mo2", headers=HTML).text
    assert set(re.findall(r'<td>(\w[\w.]*)</td><td>mo2</td>', f)) and "u-moderator</td>" not in f
    f = au.get("/console/audit?event_type=test.lighthouse", headers=HTML).text
    assert len(re.findall(r'data-seq=', f)) == 1
    assert len(re.findall(r"data-seq=", au.get("/console/audit?since=2999-01-01", headers=HTML).text)) == 0
    r = au.get("/console/audit/export?format=csv&event_type=test.lighthouse")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:4] == ["seq", "at", "event_type", "actor"] and rows[1][3] == "'=cmd|evil"  # no formula
    r = au.get("/console/audit/export?format=json")
    body = json.loads(r.text)
    assert body[0]["seq"] > body[-1]["seq"] and body[0]["event_type"] == "audit.exported"  # newest first
    assert _login(world["app"], "u-moderator")[0].get("/console/audit/export").status_code == 403


def test_banks_in_the_browser_for_curators(world, tmp_path):
    cu, csrf = _login(world["app"], "u-curator")
    mo, mcsrf = _login(world["app"], "u-moderator")
    assert 'id="create-bank"' in cu.get("/console/banks", headers=HTML).text
    assert 'id="create-bank"' not in mo.get("/console/banks", headers=HTML).text
    assert mo.post("/console/banks", data={"name": "x", "csrf_token": mcsrf}).status_code == 403
    r = cu.post("/console/banks", data={"name": "lighthouses", "kind": "ncii", "description": "test list",
                                        "csrf_token": csrf})
    assert r.status_code == 303 and world["banks"].get_bank("lighthouses").description == "test list"
    assert cu.post("/console/banks", data={"name": "bad name!", "csrf_token": csrf}).status_code == 422
    listed = "md5 " + "2" * 32 + "\nmd5 " + "3" * 32 + "\n"
    r = cu.post("/console/banks/lighthouses/import", data={"format": "te", "csrf_token": csrf},
                files={"file": ("list.txt", listed.encode(), "text/plain")})
    assert r.status_code == 200 and 'id="import-report"' in r.text and "2 added" in r.text
    entries = world["banks"].list_entries("lighthouses")
    assert len(entries) == 2
    r = cu.post(f"/console/banks/lighthouses/entries/{entries[0].id}/withdraw", data={"csrf_token": csrf})
    assert r.status_code == 303 and world["banks"].list_entries("lighthouses")[0].status == "withdrawn"
    assert mo.post(f"/console/banks/lighthouses/entries/{entries[1].id}/withdraw",
                   data={"csrf_token": mcsrf}).status_code == 403
    # test a match by upload: the same picture as a known entry (by MD5) matches; nothing stored
    pic = encode(scene(seed=99), "PNG")
    import hashlib
    world["banks"].add_entry("abuse", "md5", hashlib.md5(pic).hexdigest(), added_by="seed", source="unit list")
    before = len(world["banks"].list_entries("abuse"))
    world["app"].state.consentry.matcher.load()  # a served app loads its index at startup
    r = cu.post("/console/banks/test-match", data={"csrf_token": csrf}, files={"file": ("p.png", pic, "image/png")})
    assert r.status_code == 200 and 'id="test-result"' in r.text and "identical file" in r.text
    assert len(world["banks"].list_entries("abuse")) == before
    r = cu.post("/console/banks/test-match", data={"csrf_token": csrf},
                files={"file": ("p.png", encode(scene(seed=98), "PNG"), "image/png")})
    assert 'id="test-none"' in r.text


def test_video_first_look_is_a_blurred_greyscale_contact_sheet(tmp_path):
    import base64
    import os
    from pathlib import Path

    from PIL import Image, ImageStat

    from consentry.review.vault import Vault

    video = Path("/work/shared/testvectors/videos/test-padded-dimensions.mp4")
    if not video.exists():
        video = Path(__file__).parent / "fixtures" / "videos" / "test-padded-dimensions.mp4"
    if not video.exists():
        pytest.skip("no small test video here")
    settings = Settings(home=tmp_path).with_(vault_key=base64.b64encode(os.urandom(32)).decode())
    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    db.upgrade()
    cases = CaseService(db, BankService(db), vault=Vault.from_settings(settings, db))
    case = cases.submit(ItemInput(media=video.read_bytes()), uploader_id="acct-video")
    (item,) = cases.get(case.id).items
    assert item.content_type == "video"
    sheet = Image.open(io.BytesIO(cases.preview(item.id)))
    assert sheet.format == "JPEG" and sheet.mode == "L" and max(sheet.size) <= 480
    assert sheet.width > sheet.height  # frames tiled in a row of three
    # blurred: neighbouring pixels barely differ (a sharp test pattern would)
    edges = ImageStat.Stat(sheet.filter(__import__("PIL.ImageFilter").ImageFilter.FIND_EDGES)).mean[0]
    assert edges < 12
    db.dispose()
