"""Victim cases on SQLite and PostgreSQL: unguessable case numbers, PINs only as Argon2id hashes,
wrong PINs locked out, per-IP limits, status counts with partner feedback, withdrawal through the
change log, and the published-only change log partners read."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from consentry.config import Settings
from consentry.keys import KeyStore
from consentry.victims.cases import ALPHABET, normalize_case_number
from consentry.web.app import create_app

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "d8f8f0cec0f4a84f8e370a22038f67f0b36a2ed597231e1d72e6b39c4a9c9b22"
MD5_A = "9e107d9d372bb6826bd81d3542a419d6"
PIN = "lighthouse-42"


@pytest.fixture
def make_client(db, tmp_path):
    apps = []

    def make(**settings):
        app = create_app(Settings(home=tmp_path, **settings), db, background=False)
        apps.append(app)
        return TestClient(app, raise_server_exceptions=False)

    yield make
    for app in apps:
        app.state.consentry.match_log.close()


def _submit(client, items=None, pin=PIN, adult=True):
    items = items if items is not None else [{"kind": "photo", "pdq": PDQ_A, "pdq_quality": 90, "md5": MD5_A}]
    return client.post("/v1/victim/cases", json={"version": 1, "items": items, "pin": pin, "depicted_adult": adult})


def test_case_numbers_are_random_grouped_and_hashed(make_client, db):
    client = make_client(victim_submissions_per_hour=1000)
    numbers = set()
    for i in range(12):
        r = _submit(client, [{"md5": f"{i:032x}"}])
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store"
        numbers.add(r.json()["case_number"])
    assert len(numbers) == 12
    for n in numbers:
        assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){4}[0-9A-HJKMNP-TV-Z]{4}", n)
        assert normalize_case_number(n.lower().replace("-", " ")) == n
    assert len(ALPHABET) ** 20 >= 2 ** 100  # 100 bits > 80
    # every character position varies across cases (not a counter or a timestamp)
    assert all(len({n.replace("-", "")[i] for n in numbers}) > 1 for i in range(20))
    with db.session() as s:
        stored = [r[0] for r in s.execute(text("SELECT number_hash FROM victim_cases"))]
    assert len(stored) == 12 and not any(n in stored or n.replace("-", "") in stored for n in numbers)


def _dump(db) -> str:
    """Every row of every table, as text (what someone with a copy of the database sees)."""
    out = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_pin_and_case_number_never_stored_in_clear(make_client, db):
    client = make_client()
    number = _submit(client).json()["case_number"]
    assert client.post(f"/v1/victim/cases/{number}/status", json={"pin": PIN}).status_code == 200
    dump = _dump(db)
    assert PIN not in dump
    assert number not in dump and number.replace("-", "") not in dump
    with db.session() as s:
        (pin_hash,) = s.execute(text("SELECT pin_hash FROM victim_cases")).one()
    assert pin_hash.startswith("$argon2id$")
    # partners see opaque ids in the bank, never the case number
    with db.session() as s:
        ext = [json.loads(r[0]) if isinstance(r[0], str) else r[0]
               for r in s.execute(text("SELECT external_ids FROM entries"))]
    assert ext and all(len(e) == 1 and re.fullmatch(r"[0-9a-f]{32}", e[0]) for e in ext)


def test_wrong_pins_lock_the_case_and_unknown_cases_look_the_same(make_client):
    client = make_client(victim_pin_attempts=3, victim_lookups_per_minute=1000)
    number = _submit(client).json()["case_number"]
    url = f"/v1/victim/cases/{number}/status"
    for _ in range(3):
        r = client.post(url, json={"pin": "wrong-pin"})
        assert r.status_code == 403 and r.json()["type"].endswith("wrong-case-or-pin")
    # locked now: even the right PIN is refused, exactly like an unknown case (no Retry-After)
    r = client.post(url, json={"pin": PIN})
    assert r.status_code == 403 and "retry-after" not in r.headers
    r = client.post(f"/v1/victim/cases/{number}/withdraw", json={"pin": PIN})
    assert r.status_code == 403
    other = "0000-0000-0000-0000-0000"
    r = client.post(f"/v1/victim/cases/{other}/status", json={"pin": PIN})
    assert r.status_code == 403 and r.json()["detail"].startswith("the case number or the PIN is wrong")
    assert client.post("/v1/victim/cases/not-a-case/status", json={"pin": PIN}).status_code == 403


def test_per_case_and_per_ip_rate_limits(make_client):
    client = make_client(victim_submissions_per_hour=3, victim_lookups_per_minute=5)
    codes = [_submit(client, [{"md5": f"{i:032x}"}]).status_code for i in range(5)]
    assert codes[:3] == [201, 201, 201] and codes[3:] == [429, 429]
    r = _submit(client)
    assert r.status_code == 429 and "retry-after" in r.headers
    codes = [client.post("/v1/victim/cases/0000-0000-0000-0000-0000/status", json={"pin": "x" * 6}).status_code
             for _ in range(7)]
    assert codes[:5] == [403] * 5 and codes[5:] == [429, 429]


def test_submission_validation_and_under_18(make_client, db):
    client = make_client(victim_max_hashes=2, victim_submissions_per_hour=1000)
    assert _submit(client, [{"pdq": "xyz"}]).status_code == 422
    assert _submit(client, [{"md5": "0" * 31}]).status_code == 422
    assert _submit(client, [{"pdq": PDQ_A, "pdq_quality": 101}]).status_code == 422
    assert _submit(client, [{"kind": "photo"}]).status_code == 422
    assert _submit(client, [{"md5": MD5_A, "filename": "x.jpg"}]).status_code == 422  # only hashes
    assert _submit(client, [{"md5": f"{i:032x}"} for i in range(3)]).status_code == 422
    assert _submit(client, pin="123").status_code == 422
    assert _submit(client, []).status_code == 422
    r = client.post("/v1/victim/cases", content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = _submit(client, adult=False)
    assert r.status_code == 422 and r.json()["type"].endswith("under-18")
    assert r.json()["guidance"]["links"][0]["url"].startswith("https://")
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM victim_cases")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM entries")).scalar() == 0


def test_status_feedback_withdraw_and_published_change_log(make_client, db):
    client = make_client()
    keys = KeyStore(db)
    partner, _ = keys.create("matcher", "partner platform")
    partner2, _ = keys.create("matcher", "second partner")
    curator, _ = keys.create("curator", "hub curator")
    r = _submit(client, [{"kind": "photo", "pdq": PDQ_A, "pdq_quality": 90, "md5": MD5_A},
                         {"kind": "photo", "pdq": PDQ_B, "pdq_quality": 80}])
    number = r.json()["case_number"]
    assert r.json()["received"] == 3
    # a private bank's changes never reach partners
    cur = {"Authorization": f"Bearer {curator}"}
    client.post("/v1/banks", json={"name": "private", "kind": "custom"}, headers=cur)
    client.post("/v1/banks/private/entries", json={"signal_type": "md5", "value": "1" * 32}, headers=cur)
    h = {"Authorization": f"Bearer {partner}"}
    changes = client.get("/v1/changes", headers=h).json()
    values = {c.get("value") for c in changes["changes"]}
    assert {PDQ_A, PDQ_B, MD5_A} <= values and "1" * 32 not in values
    assert all(c["bank"] == "victim-hub" for c in changes["changes"])
    assert number not in json.dumps(changes)
    assert "1" * 32 in {c.get("value") for c in client.get("/v1/changes", headers=cur).json()["changes"]}
    # feedback from two partners, counts only
    fb = client.post("/v1/feedback", headers=h, json={"items": [
        {"signal_type": "pdq", "value": PDQ_A, "status": "blocked"},
        {"signal_type": "md5", "value": "1" * 32, "status": "blocked"}]})
    assert fb.status_code == 200 and fb.json() == {"accepted": 1, "unknown": 1}
    client.post("/v1/feedback", headers={"Authorization": f"Bearer {partner2}"},
                json={"items": [{"signal_type": "pdq", "value": PDQ_B, "status": "pending_review"}]})
    assert client.post("/v1/feedback", json={"items": []}).status_code == 401
    st = client.post(f"/v1/victim/cases/{number}/status", json={"pin": PIN}).json()
    assert st["status"] == "active" and st["received"] == 3 and st["active"] == 3
    assert st["matched"] == 2 and st["feedback"] == {"blocked": 1, "pending_review": 1, "not_blocked": 0}
    assert "partner" not in json.dumps(st)
    # withdraw: entries withdrawn through the change log, the partner sees the withdrawals
    cursor = changes["next_cursor"]
    st = client.post(f"/v1/victim/cases/{number.lower()}/withdraw", json={"pin": PIN}).json()
    assert st["status"] == "withdrawn" and st["active"] == 0
    later = client.get("/v1/changes", params={"cursor": cursor}, headers=h).json()["changes"]
    assert sorted((c["op"], c["value"]) for c in later) == sorted(
        [("withdraw", PDQ_A), ("withdraw", PDQ_B), ("withdraw", MD5_A)])
    m = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=h).json()
    assert m["matches"] == []


def test_a_hash_shared_by_two_cases_stays_until_both_withdraw(make_client):
    client = make_client()
    a = _submit(client, [{"pdq": PDQ_A, "pdq_quality": 90}]).json()["case_number"]
    b = _submit(client, [{"pdq": PDQ_A, "pdq_quality": 90}], pin="another-pin").json()["case_number"]
    assert client.post(f"/v1/victim/cases/{a}/withdraw", json={"pin": PIN}).json()["status"] == "withdrawn"
    assert client.post(f"/v1/victim/cases/{b}/status", json={"pin": "another-pin"}).json()["active"] == 1
    assert client.post(f"/v1/victim/cases/{b}/withdraw", json={"pin": "another-pin"}).json()["active"] == 0


def test_access_log_never_links_an_address_to_a_case():
    from consentry.web.api.victims import RedactVictimPaths

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("203.0.113.7:5555", "POST", "/v1/victim/cases/ABCD-EFGH-JKMN-PQRS-TVWX/status",
                             "1.1", 200), None)
    RedactVictimPaths().filter(rec)
    line = rec.getMessage()
    assert "203.0.113.7" not in line and "ABCD" not in line and "/status" in line
    assert RedactVictimPaths in {type(f) for f in logging.getLogger("uvicorn.access").filters}


def test_pages_are_public_self_contained_and_strict(make_client):
    client = make_client()
    for path in ("/submit", "/case"):
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
        assert r.headers["referrer-policy"] == "no-referrer"
        srcs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        # what the page loads is local; only links (to help organisations) may lead elsewhere
        loads = re.findall(r'<(?:script|img|link|iframe|video|source)\b[^>]*?(?:src|href)="([^"]+)"', r.text)
        assert loads and all(s.startswith("/static/") for s in loads), loads
        assert all(s.startswith(("/", "#", "https://")) for s in srcs), srcs
        for s in srcs:
            if s.startswith("/static/"):
                assert client.get(s).status_code == 200, s
        assert "<script>" not in r.text  # no inline script (CSP forbids it)
    page = client.get("/submit").text
    assert 'for="files"' in page and 'for="pin"' in page and "<legend>" in page
    assert "takeitdown.ncmec.org" in page
    off = make_client(victim_hub_bank="")
    assert off.get("/submit").status_code == 404 and _submit(off).status_code == 404


def test_status_counts_pictures_and_videos_not_hashes(make_client):
    """Two pictures (MD5 + PDQ each), a video (MD5 + vPDQ) and a plain picture sent by its MD5
    only: 7 hashes, 3 pictures and 1 video — what the case page shows (issue 18)."""
    client = make_client(victim_submissions_per_hour=1000)
    frames = [f"{PDQ_A},90,{t}.0" for t in range(3)]
    items = [{"kind": "photo", "md5": MD5_A, "pdq": PDQ_A, "pdq_quality": 90},
             {"kind": "photo", "md5": "1" * 32, "pdq": PDQ_B, "pdq_quality": 80},
             {"kind": "video", "md5": "2" * 32, "vpdq": frames},
             {"kind": "photo", "md5": "3" * 32}]
    r = _submit(client, items)
    assert r.status_code == 201, r.text
    st = client.post(f"/v1/victim/cases/{r.json()['case_number']}/status", json={"pin": PIN}).json()
    assert (st["received"], st["photos"], st["videos"]) == (7, 3, 1)


def _variants(seed: int = 1) -> list[dict]:
    """One variant of every kind the page may send (``trimmed``, ``crop90@0.5,0.5`` ...,
    ``rot-6`` ... ``rot+6``: the server's own), with made-up hashes."""
    import random

    from consentry.victims.cases import variant_kinds

    rng = random.Random(seed)
    kinds = variant_kinds()
    assert kinds[0] == "trimmed" and "crop90@0.5,0.5" in kinds and "crop80@1,1" in kinds
    assert [k for k in kinds if k.startswith("rot")] == [f"rot{d:+d}" for d in (-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)]
    return [{"kind": k, "pdq": f"{rng.getrandbits(256):064x}", "quality": 90} for k in kinds]


def test_pdq_variants_are_checked_then_stored_with_the_picture(make_client, db):
    """``pdq_variants`` (issue 21): the canonical variants the page computes for a picture. Bad ones
    are refused with a clear message and nothing is stored; good ones are stored with the picture's
    PDQ entry (without counting as hashes), a weak variant is left out, and the matcher finds the
    entry through them (``stored_variant``). Old clients, without the field, work as before."""
    from consentry.banks.service import BankService

    client = make_client(victim_submissions_per_hour=1000)
    item = {"kind": "photo", "md5": MD5_A, "pdq": PDQ_A, "pdq_quality": 90}
    good = _variants()
    one = good[1]

    def refused(variants, message, base=item):
        r = _submit(client, [dict(base, pdq_variants=variants)])
        assert r.status_code == 422, r.text
        assert message in r.text, r.text

    refused([dict(one, kind="crop50@0.5,0.5")], "unknown kind 'crop50@0.5,0.5'")
    refused([dict(one, kind="rot+7")], "unknown kind 'rot+7'")
    refused([dict(one, kind="crop90@0.25,0")], "item 1: pdq_variants[1]: unknown kind")
    refused([dict(one, kind="rot+0")], "with x and y each 0, 0.5 or 1")  # the message lists the kinds
    refused([dict(one, pdq="xyz")], "pdq must be 64 hex characters")
    refused([dict(one, pdq="g" * 64)], "pdq must be 64 hex characters")
    refused([dict(one, quality=101)], "less than or equal to 100")
    refused([dict(one, quality=-1)], "greater than or equal to 0")
    refused([one, dict(good[2], kind=one["kind"])], f"kind {one['kind']} is given twice")
    refused(good + [dict(one, kind=f"rot+{i}") for i in range(1, 11)], "at most 32")
    refused([dict(one, file="x.jpg")], "Extra inputs are not permitted")  # only hashes
    refused([{"kind": "trimmed"}], "Field required")
    refused([one], "need the picture's own pdq", base={"kind": "photo", "md5": MD5_A})
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM victim_cases")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM entries")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM entry_variants")).scalar() == 0
    # the same checks for a hashes document (consentry victim hash / submit)
    from consentry.victims.cases import BadSubmission, media_from_json

    with pytest.raises(BadSubmission, match=r"item 1: pdq_variants\[1\]: unknown kind"):
        media_from_json([dict(item, pdq_variants=[dict(one, kind="crop")])])
    assert media_from_json([dict(item, pdq_variants=good)])[0].variants()[0].kind == "trimmed"

    # good variants: stored with the PDQ entry; a weak one (quality < 50) is left out
    weak = dict(good[-1], quality=30)
    r = _submit(client, [dict(item, pdq_variants=good[:-1] + [weak]),
                         {"kind": "photo", "md5": "1" * 32, "pdq": PDQ_B, "pdq_quality": 80}])  # an old client
    assert r.status_code == 201, r.text
    assert r.json()["received"] == 4  # two pictures, md5 + pdq each: variants are not hashes of their own
    svc = BankService(db)
    entry = svc.find_entry("victim-hub", "pdq", PDQ_A)
    other = svc.find_entry("victim-hub", "pdq", PDQ_B)
    stored = svc.variants_for([entry.id, other.id])
    assert [(k, v) for _, k, v in stored[entry.id]] == [(g["kind"], g["pdq"]) for g in good[:-1]]
    assert other.id not in stored
    # a partner matching one of the variants finds the picture's entry, and says through what
    partner, _ = KeyStore(db).create("matcher", "partner platform")
    m = client.get("/v1/match", params={"signal_type": "pdq", "value": good[5]["pdq"]},
                   headers={"Authorization": f"Bearer {partner}"}).json()
    (hit,) = m["matches"]
    assert hit["entry_id"] == entry.id and hit["stored_variant"] == good[5]["kind"] and hit["distance"] == 0
    # a picture with a weak PDQ keeps its hashes but gets no variants (as for a bank photo's file)
    r = _submit(client, [{"kind": "photo", "pdq": "0" * 63 + "1", "pdq_quality": 20, "pdq_variants": good}])
    assert r.status_code == 201, r.text
    weak_entry = svc.find_entry("victim-hub", "pdq", "0" * 63 + "1")
    assert svc.variants_for([weak_entry.id]) == {}


def test_victim_hash_cli_writes_picture_variants_and_nothing_identifying(tmp_path, monkeypatch):
    """`consentry victim hash` (helplines, offline) sends what the page sends: a photo's PDQ with
    its canonical variants, a video's per-second frames; no names or paths; the document passes
    the hub's own checks."""
    import json as _json

    from typer.testing import CliRunner

    from consentry.cli import app
    from consentry.victims.client import read_document
    from imagegen import encode, scene

    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    pic = tmp_path / "holiday-named-file.png"
    pic.write_bytes(encode(scene(640, 480, seed=95), "PNG"))
    out = tmp_path / "h.json"
    r = CliRunner().invoke(app, ["victim", "hash", str(pic), "--out", str(out)])
    assert r.exit_code == 0, r.output
    raw = out.read_bytes()
    doc = read_document(raw)
    (item,) = doc["items"]
    assert item["kind"] == "photo" and len(item["pdq_variants"]) >= 20
    assert {v["kind"] for v in item["pdq_variants"]} >= {"crop80@0.5,0.5", "rot+3"}
    assert b"holiday" not in raw and str(tmp_path).encode() not in raw
    assert set(_json.loads(raw)["items"][0]) == {"kind", "md5", "pdq", "pdq_quality", "pdq_variants"}
