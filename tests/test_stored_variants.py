"""Stored-side canonical hashes (issue 21): a photo added to a bank from its file also stores the
PDQ of its centre and corner crops, small rotations and borderless copy. A re-upload cropped by
10-20 % or straightened by a few degrees then meets the entry, and the match says which stored
variant it met; the variants follow the entry (withdrawal, other workers, bank deletion) and are
never exported. Pictures are benign drawings (tests/imagegen.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from consentry.banks.matcher import Matcher, query_from_content
from consentry.banks.service import BankService
from consentry.config import MediaLimits, Settings
from consentry.db import Database
from consentry.hashing import hash_content, stored_variants
from consentry.keys import KeyStore
from consentry.media.content import Content
from consentry.signals.canonical import rotated_variant
from consentry.web.app import create_app
from imagegen import encode, scene

LIMITS = MediaLimits()


def content(img: Image.Image, fmt: str = "JPEG") -> Content:
    return Content.from_bytes(encode(img, fmt), LIMITS)


def crop(img: Image.Image, frac: float) -> Image.Image:
    """A centred crop keeping ``frac`` of each side, as a re-upload trims a picture."""
    w, h = img.size
    dx, dy = round(w * (1 - frac) / 2), round(h * (1 - frac) / 2)
    return img.crop((dx, dy, w - dx, h - dy))


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    database.upgrade()
    yield database
    database.dispose()


def _add(svc: BankService, bank: str, img: Image.Image, with_variants: bool = True) -> int:
    c = content(img, "PNG")
    r = hash_content(c)
    entry, _ = svc.add_entry(bank, "pdq", r.pdq, quality=r.pdq_quality)
    if with_variants:
        assert svc.set_variants(bank, r.pdq, stored_variants(c, r)) >= 20
    return entry.id


def test_crops_and_rotations_meet_the_entry_only_through_its_stored_variants(db):
    pictures = [scene(640, 480, seed) for seed in (31, 32, 33)]
    svc = BankService(db)
    svc.create_bank("victims", "ncii")
    ids = [_add(svc, "victims", p) for p in pictures]
    m = Matcher(db).load()
    assert m.stats()["pdq_variants"] >= 60
    for pic, eid in zip(pictures, ids):
        for edited, expect in ((crop(pic, 0.8), "crop80"), (crop(pic, 0.9), "crop90"),
                               (rotated_variant(pic, 3.0), "rot+3"), (rotated_variant(pic, -5.0), "rot-5")):
            q = query_from_content(content(edited), canonical=False)
            out = m.match(q)
            assert [h.entry_id for h in out.matches] == [eid], expect
            hit = out.matches[0]
            assert hit.detail["stored_variant"].startswith(expect) and hit.distance <= 31
            assert hit.to_dict()["stored_variant"] == hit.detail["stored_variant"]
        plain = m.match(query_from_content(content(pic), canonical=False)).matches
        assert [h.entry_id for h in plain] == [eid] and "stored_variant" not in plain[0].detail
    # the same edits against the same pictures banked without variants: misses (PDQ alone)
    svc.create_bank("plain", "ncii")
    for pic in pictures:
        _add(svc, "plain", pic, with_variants=False)
    m = Matcher(db).load()
    for pic in pictures:
        for edited in (crop(pic, 0.8), rotated_variant(pic, 3.0)):
            assert {h.bank for h in m.match(query_from_content(content(edited), canonical=False)).matches} == {"victims"}
    # unrelated pictures, cropped or not, meet nothing
    for seed in (41, 42, 43, 44, 45):
        other = scene(640, 480, seed)
        for q in (other, crop(other, 0.8)):
            assert m.match(query_from_content(content(q), canonical=False)).matches == []


def test_variants_follow_the_entry_across_workers_withdrawal_and_bank_deletion(db):
    from sqlalchemy import func, select

    from consentry.db.models import EntryVariant

    pic = scene(640, 480, 51)
    svc = BankService(db)
    svc.create_bank("victims", "ncii")
    worker = Matcher(db).load()  # loaded before the entry exists: follows the change log
    eid = _add(svc, "victims", pic)
    worker.refresh()
    q = query_from_content(content(crop(pic, 0.8)), canonical=False)
    assert [h.entry_id for h in worker.match(q).matches] == [eid]
    svc.set_status("victims", "withdrawn", entry_id=eid)
    worker.refresh()
    assert worker.match(q).matches == [] and worker.stats()["pdq_variants"] == 0
    svc.set_status("victims", "active", entry_id=eid)
    worker.refresh()
    assert [h.entry_id for h in worker.match(q).matches] == [eid]
    svc.delete_bank("victims")
    worker.refresh()
    assert worker.match(q).matches == []
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EntryVariant)).scalar() == 0


def test_api_file_add_stores_variants_never_exports_them_and_can_be_switched_off(db, tmp_path):
    pic = scene(640, 480, 61)
    cur = KeyStore(db).create("curator", "test")[0]
    mat = KeyStore(db).create("matcher", "test")[0]
    app = create_app(Settings(home=tmp_path), db, background=False)
    try:
        client = TestClient(app)
        h = {"Authorization": f"Bearer {cur}"}
        client.post("/v1/banks", json={"name": "v", "kind": "ncii"}, headers=h)
        r = client.post("/v1/banks/v/entries/file", files={"file": ("p.png", encode(pic, "PNG"), "image/png")},
                        headers=h)
        assert r.status_code == 201, r.text
        (pdq_entry,) = [e for e in r.json()["entries"] if e["signal_type"] == "pdq"]
        assert len(BankService(db).variants_for([pdq_entry["id"]])[pdq_entry["id"]]) >= 20
        r = client.post("/v1/match", files={"file": ("c.jpg", encode(crop(pic, 0.8), "JPEG"), "image/jpeg")},
                        headers={"Authorization": f"Bearer {mat}"})
        (hit,) = r.json()["matches"]
        assert hit["entry_id"] == pdq_entry["id"] and hit["stored_variant"].startswith("crop80")
        te = client.get("/v1/banks/v/export", params={"format": "te"}, headers=h).text
        assert [ln for ln in te.splitlines() if "pdq" in ln.lower() and "vpdq" not in ln.lower()] == [
            ln for ln in te.splitlines() if pdq_entry["value"] in ln]
        assert te.count(pdq_entry["value"]) == 1 and len(te.splitlines()) <= 3  # md5, sha256, pdq
    finally:
        app.state.consentry.match_log.close()
    off = Content.from_bytes(encode(pic, "PNG"), LIMITS.with_(canonical_stored=False))
    assert stored_variants(off, hash_content(off)) == []


def test_a_large_photo_s_variants_come_from_a_reduced_copy_and_still_meet_full_size_crops(db):
    """Variants are computed on a copy with a long side of 1024 (12 rotations of a 12 Mpixel
    photo took ~19 s at full size): a full-resolution crop and a straightened copy still meet them."""
    from consentry.signals.canonical import STORED_MAX_SIDE, stored_base

    pic = scene(2400, 1800, 91)
    assert max(stored_base(pic).size) == STORED_MAX_SIDE
    svc = BankService(db)
    svc.create_bank("victims", "ncii")
    eid = _add(svc, "victims", pic)
    m = Matcher(db).load()
    for edited in (crop(pic, 0.8), crop(pic, 0.95), rotated_variant(pic, -4.0)):
        out = m.match(query_from_content(content(edited), canonical=False))
        assert [h.entry_id for h in out.matches] == [eid] and "stored_variant" in out.matches[0].detail
