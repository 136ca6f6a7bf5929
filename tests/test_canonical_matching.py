"""Canonical query hashes in matching (issue 21, query side): an uploaded picture with letterbox or
pillarbox bars still meets the bank entry of the picture without them, through the PDQ of its
trimmed copy; the match says so (``query_variant``); unrelated pictures with the same bars do not
match; nothing about the extra hashes is stored or logged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from consentry.banks.matcher import Matcher, query_from_content
from consentry.banks.service import BankService
from consentry.config import MediaLimits, Settings
from consentry.db import Database
from consentry.keys import KeyStore
from consentry.media.content import Content
from consentry.web.app import create_app
from imagegen import encode, scene

LIMITS = MediaLimits()


def letterboxed(img: Image.Image, fill=(0, 0, 0)) -> Image.Image:
    """The picture on a 9:16 phone canvas with bars above and below, as apps post it."""
    w = img.width
    canvas = Image.new("RGB", (w, round(w * 16 / 9)), fill)
    canvas.paste(img, (0, (canvas.height - img.height) // 2))
    return canvas


def pillarboxed(img: Image.Image) -> Image.Image:
    h = img.height
    canvas = Image.new("RGB", (round(h * 2.2), h), (0, 0, 0))
    canvas.paste(img, ((canvas.width - img.width) // 2, 0))
    return canvas


def content(img: Image.Image, fmt: str = "PNG") -> Content:
    return Content.from_bytes(encode(img, fmt), LIMITS)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def banked(db):
    """A bank holding the plain PDQ of three benign pictures; returns the pictures."""
    pictures = [scene(640, 480, seed) for seed in (11, 12, 13)]
    svc = BankService(db)
    svc.create_bank("victims", "ncii")
    for pic in pictures:
        q = query_from_content(content(pic), canonical=False)
        svc.add_entry("victims", "pdq", q.pdq[0], quality=q.pdq_quality)
    return pictures


def test_bars_defeat_the_plain_hash_and_the_trimmed_hash_finds_the_entry(db, banked):
    m = Matcher(db).load()
    for pic in banked:
        for boxed, fmt in ((letterboxed(pic), "PNG"), (pillarboxed(pic), "JPEG")):
            plain = m.match(query_from_content(content(boxed, fmt), canonical=False))
            assert plain.matches == []  # what matching did before: a miss
            q = query_from_content(content(boxed, fmt))
            assert "trimmed" in [kind for kind, _v, _q in q.pdq_extra]  # (the screenshot finder may see the bars too)
            out = m.match(q)
            assert len(out.matches) == 1
            hit = out.matches[0]
            assert hit.signal_type == "pdq" and hit.distance <= 31
            assert hit.detail["query_variant"] in ("trimmed", "screenshot")
            assert hit.to_dict()["query_variant"] == hit.detail["query_variant"]


def test_the_operator_can_switch_it_off(db, banked):
    m = Matcher(db).load()
    boxed = encode(letterboxed(banked[0]), "PNG")
    assert m.match(query_from_content(Content.from_bytes(boxed, LIMITS))).matches
    off = Content.from_bytes(boxed, LIMITS.with_(canonical_query=False))
    q = query_from_content(off)
    assert q.pdq_extra == [] and m.match(q).matches == []


def test_a_plain_copy_matches_as_before_and_unrelated_boxed_pictures_do_not(db, banked):
    m = Matcher(db).load()
    q = query_from_content(content(banked[0], "JPEG"))
    assert q.pdq_extra == []  # no borders, no screenshot: no extra hash, no extra cost in the index
    (hit,) = m.match(q).matches
    assert "query_variant" not in hit.to_dict()
    for seed in (21, 22, 23, 24):
        other = letterboxed(scene(640, 480, seed), fill=(255, 255, 255))
        assert m.match(query_from_content(content(other))).matches == []


def test_http_upload_reports_the_query_variant(db, banked, tmp_path):
    key = KeyStore(db).create("matcher", "test")[0]
    app = create_app(Settings(home=tmp_path), db, background=False)
    try:
        client = TestClient(app)
        r = client.post("/v1/match", files={"file": ("boxed.png", encode(letterboxed(banked[1]), "PNG"), "image/png")},
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [m["query_variant"] for m in body["matches"]] in (["trimmed"], ["screenshot"])
        assert body["matches"][0]["bank"] == "victims" and body["matches"][0]["distance"] <= 31
        assert body["query"]["pdq"] != body["matches"][0].get("value")  # the query echoes the plain hash
    finally:
        app.state.consentry.match_log.close()


def test_with_pdq_switched_off_a_boxed_upload_matches_by_digest_only(db, banked):
    """An instance with PDQ switched off (instance settings) drops the canonical PDQ hashes with the
    plain one: a letterboxed copy then matches nothing through its trimmed picture, the exact copy
    still matches by SHA-256, and the outcome names PDQ as switched off."""
    from consentry.instance_settings import set_signal_types

    boxed = content(letterboxed(banked[0]))
    BankService(db).add_entry("victims", "sha256", query_from_content(boxed, canonical=False).exact["sha256"])
    m = Matcher(db).load()
    assert {h.signal_type for h in m.match(query_from_content(boxed)).matches} == {"pdq", "sha256"}
    set_signal_types(db, ["md5", "sha256"])
    m = Matcher(db).load()
    q = query_from_content(boxed)
    assert q.pdq_extra  # the upload was hashed as usual; the instance does not match through PDQ
    out = m.match(q)
    assert [h.signal_type for h in out.matches] == ["sha256"]
    assert "pdq" in out.disabled_types
    assert m.match(query_from_content(content(letterboxed(banked[1])))).matches == []
