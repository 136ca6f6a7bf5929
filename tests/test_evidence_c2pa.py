"""C2PA provenance analyser: real Adobe files, and files signed here by a throw-away test CA.

Every picture is benign: the two Content Authenticity Initiative example files, and landscapes
drawn with Pillow (tests/imagegen.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

c2pa = pytest.importorskip("c2pa")

from c2pa_testca import IPTC, make_ca, sign_image  # noqa: E402
from conftest import REPO  # noqa: E402
from imagegen import encode, scene  # noqa: E402

from consentry.evidence import c2pa as c2pa_mod  # noqa: E402
from consentry.evidence.c2pa import LIST_INTERIM, TrustLists, analyze_c2pa, summarize_store  # noqa: E402

FIXTURES = Path(os.environ.get("CONSENTRY_FIXTURES", REPO.parent / "shared" / "fixtures"))
AI_CLAIMS = {"ai_generated", "ai_edited"}


@pytest.fixture(scope="module")
def provenance() -> Path:
    d = FIXTURES / "provenance"
    if not (d / "Firefly_tabby_cat.jpg").is_file():
        pytest.fail(f"C2PA fixtures not found at {d} (set CONSENTRY_FIXTURES)")
    return d


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def ca_trust(ca, tmp_path_factory) -> TrustLists:
    """Only the test CA is trusted (no official, no interim list)."""
    p = tmp_path_factory.mktemp("trust") / "test-ca.pem"
    p.write_text(ca.ca_pem)
    return TrustLists(anchors=(p,))


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode(scene(320, 240, seed=7), "JPEG", quality=90)


@pytest.fixture(scope="module")
def ai_jpeg(ca, jpeg) -> bytes:
    return sign_image(ca, jpeg, source_type="trainedAlgorithmicMedia")


def by_claim(findings):
    out: dict[str, list] = {}
    for e in findings.evidence:
        assert e.source == "c2pa"
        out.setdefault(e.claim, []).append(e)
    return out


# --------------------------------------------------------------------------- real files


def test_firefly_is_ai_generated_proof_under_interim_list(provenance):
    f = analyze_c2pa((provenance / "Firefly_tabby_cat.jpg").read_bytes(), "image/jpeg")
    assert f.notes == []
    claims = by_claim(f)
    assert set(claims) == {"ai_generated"}
    ev = claims["ai_generated"][0]
    assert ev.strength == "proof"
    assert ev.details["signer"]["issuer"] == "Adobe Inc."
    assert "Adobe" in ev.summary and "interim" in ev.summary
    assert ev.details["trust"] == "trusted_interim"
    assert ev.details["basis"] == ["trainedAlgorithmicMedia"]
    assert "Adobe Firefly" in ev.details["software_agents"]
    assert any("legacy interim trust list" in c for c in ev.caveats)
    raw = f.raw["c2pa"]
    assert raw["trust"] == "trusted_interim" and raw["trust_list"] == LIST_INTERIM
    assert raw["integrity"] == {"status": "ok", "failures": []}
    assert "assertion.dataHash.match" in raw["status_codes"]["success"]
    # The official pass did not trust Adobe's certificate; the interim pass did.
    assert "signingCredential.untrusted" in raw["status_codes"]["failure"]
    assert "signingCredential.trusted" in raw["status_codes_interim_pass"]["success"]
    assert raw["signer"]["common_name"] == "Adobe Firefly C2PA"
    assert raw["signer"]["time"].startswith("2025-10-23")
    json.dumps(f.raw)  # JSON-ready
    json.dumps([e.to_dict() for e in f.evidence])


def test_firefly_without_interim_list_is_untrusted_strong(provenance):
    official_only = TrustLists.default()
    official_only = TrustLists(anchors=official_only.anchors, tsa_anchors=official_only.tsa_anchors,
                               trust_config=official_only.trust_config)
    f = analyze_c2pa((provenance / "Firefly_tabby_cat.jpg").read_bytes(), "image/jpeg", trust=official_only)
    ev = by_claim(f)["ai_generated"][0]
    assert ev.strength == "strong"
    assert f.raw["c2pa"]["trust"] == "untrusted"
    assert f.raw["c2pa"]["status_codes_interim_pass"] is None
    assert any("not on a configured trust list" in c for c in ev.caveats)
    assert not any("interim" in c for c in ev.caveats)


def test_photoshop_edit_is_edited_without_ai_claim(provenance):
    f = analyze_c2pa((provenance / "car-es-Ps-Cr.jpg").read_bytes(), "image/jpeg")
    assert f.notes == []
    claims = by_claim(f)
    assert "edited" in claims
    assert not AI_CLAIMS & set(claims)
    ev = claims["edited"][0]
    assert ev.strength == "proof"
    assert {"c2pa.cropped", "c2pa.resized"} <= set(ev.details["basis"])
    assert "Adobe Photoshop" in " ".join(ev.details["claim_generator_info"])
    assert f.raw["c2pa"]["manifests"][0]["actions"][0]["action"] == "c2pa.opened"


def test_shipped_trust_lists_are_package_data():
    t = TrustLists.default()
    for p in t.anchors + t.tsa_anchors + t.interim_anchors + t.interim_allowed + (t.trust_config,):
        assert p.is_file() and p.stat().st_size > 0
        assert "consentry/evidence/trust" in p.as_posix()
    assert "BEGIN CERTIFICATE" in t.anchors[0].read_text()


def test_reading_is_offline():
    s = c2pa_mod._settings(TrustLists.default(), interim=True)
    assert s["verify"]["remote_manifest_fetch"] is False
    assert s["verify"]["ocsp_fetch"] is False
    assert s["core"]["allowed_network_hosts"] == []
    assert [a["trust_uri"] for a in s["trust"]["anchors"]] == [
        c2pa_mod.LIST_OFFICIAL, c2pa_mod.LIST_TSA, c2pa_mod.LIST_INTERIM]


# --------------------------------------------------------------------------- signed here


def test_trusted_ai_signature_is_proof(ca, ca_trust, ai_jpeg):
    f = analyze_c2pa(ai_jpeg, "image/jpeg", trust=ca_trust)
    assert f.notes == []
    claims = by_claim(f)
    assert set(claims) == {"ai_generated"}
    ev = claims["ai_generated"][0]
    assert ev.strength == "proof"
    assert ev.caveats == ()
    assert ev.details["role"] == "active"
    assert ev.details["signer"]["issuer"] == ca.org
    assert ev.details["signer"]["common_name"] == ca.common_name
    assert "Consentry test generator" in ev.summary
    raw = f.raw["c2pa"]
    assert raw["trust"] == "trusted" and raw["trust_list"] == c2pa_mod.LIST_OFFICIAL
    assert raw["integrity"]["status"] == "ok"
    assert raw["manifests"][0]["source_types"] == ["trainedAlgorithmicMedia"]


def test_camera_capture_is_reported(ca, ca_trust):
    png = encode(scene(200, 150, seed=3), "PNG")
    signed = sign_image(ca, png, "image/png", source_type="digitalCapture", generator="Test Camera")
    f = analyze_c2pa(signed, "image/png", trust=ca_trust)
    claims = by_claim(f)
    assert set(claims) == {"camera_captured"}
    assert claims["camera_captured"][0].strength == "proof"
    assert Image.open(io.BytesIO(signed)).size == (200, 150)  # still a valid PNG


def test_untrusted_signer_is_strong_with_caveat(ai_jpeg):
    f = analyze_c2pa(ai_jpeg, "image/jpeg")  # default lists: the test CA is on none of them
    ev = by_claim(f)["ai_generated"][0]
    assert ev.strength == "strong"
    assert f.raw["c2pa"]["trust"] == "untrusted"
    assert f.raw["c2pa"]["integrity"]["status"] == "ok"
    assert any("not on a configured trust list" in c for c in ev.caveats)


def test_time_stamping_root_is_not_a_signing_anchor(ca, ai_jpeg, tmp_path):
    p = tmp_path / "tsa.pem"
    p.write_text(ca.ca_pem)
    f = analyze_c2pa(ai_jpeg, "image/jpeg", trust=TrustLists(tsa_anchors=(p,)))
    assert f.raw["c2pa"]["trust"] == "untrusted"
    assert by_claim(f)["ai_generated"][0].strength == "strong"
    # A root on both lists (16 of the 30 official roots are) still signs claims.
    both = analyze_c2pa(ai_jpeg, "image/jpeg", trust=TrustLists(anchors=(p,), tsa_anchors=(p,)))
    assert both.raw["c2pa"]["trust"] == "trusted"


def _flip_scan_byte(jpeg: bytes) -> bytes:
    """Change one byte of entropy-coded pixel data (the last scan), keeping the file decodable."""
    sos = jpeg.rfind(b"\xff\xda")
    eoi = jpeg.rfind(b"\xff\xd9")
    assert 0 < sos < eoi
    i = (sos + eoi) // 2
    while jpeg[i] == 0xFF or jpeg[i - 1] == 0xFF or jpeg[i] ^ 0x55 == 0xFF:
        i += 1
    b = bytearray(jpeg)
    b[i] ^= 0x55
    return bytes(b)


def test_pixels_changed_after_signing_is_an_integrity_failure(ca_trust, ai_jpeg):
    tampered = _flip_scan_byte(ai_jpeg)
    assert Image.open(io.BytesIO(tampered)).tobytes() != Image.open(io.BytesIO(ai_jpeg)).tobytes()
    f = analyze_c2pa(tampered, "image/jpeg", trust=ca_trust)
    raw = f.raw["c2pa"]
    assert raw["integrity"]["status"] == "failed"
    assert "assertion.dataHash.mismatch" in raw["integrity"]["failures"]
    assert raw["trust"] == "trusted"  # signer trust is reported separately from integrity
    ev = by_claim(f)["ai_generated"][0]  # the claim is still reported …
    assert ev.strength == "weak"  # … but weakly
    assert any("integrity check failed" in c and "assertion.dataHash.mismatch" in c for c in ev.caveats)


def test_ai_manifest_only_in_a_parent_ingredient_is_found(ca, ca_trust, ai_jpeg):
    child = sign_image(
        ca, encode(scene(300, 200, seed=9), "JPEG"), source_type=None, ingredient=(ai_jpeg, "image/jpeg"),
        actions=[{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                 {"action": "c2pa.cropped"}],
        title="a cropped lighthouse",
    )
    f = analyze_c2pa(child, "image/jpeg", trust=ca_trust)
    assert f.notes == []
    raw = f.raw["c2pa"]
    active = [m for m in raw["manifests"] if m["role"] == "active"][0]
    assert active["source_types"] == []  # nothing AI in the active manifest itself
    assert [a["action"] for a in active["actions"]] == ["c2pa.opened", "c2pa.cropped"]
    claims = by_claim(f)
    ev = claims["ai_generated"][0]
    assert ev.details["role"] == "parent"
    assert ev.details["ingredient_path"] == [{"title": "parent picture", "relationship": "parentOf"}]
    assert ev.details["manifest"] != raw["active_manifest"]
    assert ev.strength == "proof"
    assert "ingredient" in ev.summary
    # The crop itself is an edit recorded by the active manifest.
    assert claims["edited"][0].details["role"] == "active"


def _crop_of(ca, parent: bytes, seed: int, title: str) -> bytes:
    return sign_image(
        ca, encode(scene(280, 180, seed=seed), "JPEG"), source_type=None, ingredient=(parent, "image/jpeg"),
        actions=[{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                 {"action": "c2pa.resized"}],
        title=title,
    )


def test_ai_manifest_two_ingredients_deep_is_found(ca, ca_trust, ai_jpeg):
    grandchild = _crop_of(ca, _crop_of(ca, ai_jpeg, 12, "first crop"), 13, "second crop")
    f = analyze_c2pa(grandchild, "image/jpeg", trust=ca_trust)
    assert len(f.raw["c2pa"]["manifests"]) == 3
    ev = by_claim(f)["ai_generated"][0]
    assert ev.details["role"] == "parent" and len(ev.details["ingredient_path"]) == 2
    assert ev.strength == "proof"


def test_trusted_ai_ingredient_inside_untrusted_manifest_is_not_proof(ca, ca_trust, ai_jpeg):
    stranger = make_ca(org="Unlisted Org", common_name="Unlisted Signer")
    child = _crop_of(stranger, ai_jpeg, 14, "re-signed by a stranger")
    f = analyze_c2pa(child, "image/jpeg", trust=ca_trust)
    ev = by_claim(f)["ai_generated"][0]
    assert ev.details["trust"] == "trusted"  # the ingredient's own signer …
    assert ev.details["chain_trust"] == "untrusted"  # … inside an untrusted manifest
    assert ev.strength == "strong"
    assert any("Unlisted Org" in c and "enclosing" in c for c in ev.caveats)


def test_ai_component_makes_the_content_ai_edited(ca, ca_trust, ai_jpeg):
    child = sign_image(
        ca, encode(scene(300, 200, seed=11), "JPEG"), source_type=None, relationship="componentOf",
        ingredient=(ai_jpeg, "image/jpeg"),
        actions=[{"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"},
                 {"action": "c2pa.placed", "parameters": {"ingredientIds": ["parent"]}}],
    )
    f = analyze_c2pa(child, "image/jpeg", trust=ca_trust)
    claims = by_claim(f)
    assert "ai_generated" not in claims
    ev = claims["ai_edited"][0]
    assert ev.details["role"] == "component" and ev.strength == "proof"


def test_expired_certificate_cannot_sign(jpeg):
    """c2pa refuses to sign with a certificate outside its validity (so no real expired file)."""
    now = dt.datetime.now(dt.timezone.utc)
    old = make_ca(not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    with pytest.raises(c2pa.C2paError, match="not valid at time of signing"):
        sign_image(old, jpeg)


def test_expired_status_maps_to_expired_strong(ca, ai_jpeg):
    """The reader's ``signingCredential.expired`` code → trust ``expired``, strength ``strong``."""
    ctx = c2pa.Context.from_dict(c2pa_mod._settings(TrustLists(), interim=False))
    with c2pa.Reader("image/jpeg", io.BytesIO(ai_jpeg), context=ctx) as r:
        store = json.loads(r.json())
    expired = copy.deepcopy(store)
    section = expired["validation_results"]["activeManifest"]
    for item in section["failure"]:
        if item["code"] == "signingCredential.untrusted":
            item["code"] = "signingCredential.expired"
    f = summarize_store(expired)
    assert f.raw["c2pa"]["trust"] == "expired"
    ev = by_claim(f)["ai_generated"][0]
    assert ev.strength == "strong"
    assert any("expired" in c for c in ev.caveats)
    # The unmodified store is merely untrusted.
    assert summarize_store(store).raw["c2pa"]["trust"] == "untrusted"


# --------------------------------------------------------------------------- bad input


def test_files_without_c2pa_give_empty_findings(jpeg):
    for data, mime in [(jpeg, "image/jpeg"), (encode(scene(64, 48), "PNG"), "image/png"), (b"", "image/jpeg"),
                       (b"\x00" * 1000, "application/octet-stream"), (jpeg[: len(jpeg) // 2], "image/jpeg")]:
        f = analyze_c2pa(data, mime)
        assert f.evidence == [] and f.notes == [] and f.raw == {}


@pytest.mark.parametrize("damage", ["truncated", "jumbf_garbled", "jumbf_zeroed", "noise_with_label"])
def test_malformed_manifest_gives_a_note(ai_jpeg, damage):
    if damage == "truncated":
        data = ai_jpeg[: len(ai_jpeg) // 3]
    elif damage == "noise_with_label":
        data = b"\xff\xd8\xff\xeb\x00\x20JP\x00\x01" + b"c2pa" * 6 + bytes(range(256)) * 4
    else:
        i = ai_jpeg.find(b"jumb")
        b = bytearray(ai_jpeg)
        for k in range(i + 40, i + 120):
            b[k] = 0 if damage == "jumbf_zeroed" else b[k] ^ 0x5A
        data = bytes(b)
    f = analyze_c2pa(data, "image/jpeg")
    assert f.evidence == [] or all(e.strength == "weak" for e in f.evidence)
    assert len(f.notes) == 1 and f.notes[0].startswith("c2pa: ")


def test_size_limit(ai_jpeg, monkeypatch):
    monkeypatch.setattr(c2pa_mod, "MAX_C2PA_INPUT_BYTES", len(ai_jpeg) - 1)
    f = analyze_c2pa(ai_jpeg, "image/jpeg")
    assert f.evidence == [] and "over" in f.notes[0]


def test_unexpected_store_shapes_do_not_crash():
    for store in [{}, {"manifests": []}, {"active_manifest": "x", "manifests": {"x": "not a dict"}},
                  {"active_manifest": "x", "manifests": {"x": {"assertions": [{"label": "c2pa.actions",
                                                                               "data": {"actions": "nope"}}],
                                                               "ingredients": [{"active_manifest": "x"}]}},
                   "validation_results": {"activeManifest": {"failure": [{"code": 5}]}}}]:
        f = summarize_store(store)
        assert isinstance(f.notes, list) and all(e.source == "c2pa" for e in f.evidence)


def test_wrong_mime_hint_is_tolerated(ca, ca_trust, ai_jpeg):
    f = analyze_c2pa(ai_jpeg, "application/octet-stream", trust=ca_trust)
    assert by_claim(f)["ai_generated"][0].strength == "proof"


# --------------------------------------------------------------------------- issue 16: held-out fixes


def _assess(data: bytes, trust: TrustLists):
    from consentry.evidence.assess import assess_bytes

    return assess_bytes(data, trust=trust)


def test_algorithmic_media_is_computer_generated_not_ai(ca, ca_trust, jpeg):
    """IPTC algorithmicMedia = made by a non-learned algorithm (a gradient, a fractal): not AI."""
    f = analyze_c2pa(sign_image(ca, jpeg, source_type="algorithmicMedia"), "image/jpeg", trust=ca_trust)
    claims = by_claim(f)
    assert set(claims) == {"computer_generated"}
    assert claims["computer_generated"][0].strength == "proof"
    a = _assess(sign_image(ca, jpeg, source_type="algorithmicMedia"), ca_trust)
    assert a.verdict == "no_indicators_found"
    assert "not AI" in a.summary and "non-learned" in a.summary
    assert any("not a claim of AI generation" in line for line in a.limitations)


def test_composite_synthetic_is_at_most_a_weak_ai_claim(ca, ca_trust, jpeg):
    f = analyze_c2pa(sign_image(ca, jpeg, source_type="compositeSynthetic"), "image/jpeg", trust=ca_trust)
    ev = by_claim(f)["ai_edited"][0]
    assert ev.strength == "weak" and any("compositeSynthetic" in c for c in ev.caveats)
    assert _assess(sign_image(ca, jpeg, source_type="compositeSynthetic"), ca_trust).verdict == "inconclusive"


@pytest.mark.parametrize("source_type, other", [("digitalCapture", "camera_captured"), ("digitalCreation", None)])
def test_pixels_changed_after_signing_is_an_item_even_without_ai_claim(ca, ca_trust, jpeg, source_type, other):
    """A camera capture (or a manifest with no claim) whose pixels changed after signing."""
    signed = sign_image(ca, jpeg, source_type=source_type, title="harbour capture")
    tampered = _flip_scan_byte(signed)
    f = analyze_c2pa(tampered, "image/jpeg", trust=ca_trust)
    claims = by_claim(f)
    assert set(claims) == {"altered_after_signing"} | ({other} if other else set())
    alt = claims["altered_after_signing"][0]
    assert alt.strength == "strong" and alt.details["content_changed"] is True
    assert "assertion.dataHash.mismatch" in alt.details["integrity_failures"]
    assert alt.details["signer"]["issuer"] == "Consentry Test CA"
    assert "changed after it was signed" in alt.summary and "Consentry Test CA" in alt.summary
    assert any("not what changed" in c for c in alt.caveats)
    a = _assess(tampered, ca_trust)
    assert a.verdict == "edited_no_ai_indicated"
    assert "Content Credentials (C2PA) are present, but the file was changed after it was signed" in a.summary
    # the untouched file: no altered item, and a claim-less manifest is still shown
    clean = by_claim(analyze_c2pa(signed, "image/jpeg", trust=ca_trust))
    assert "altered_after_signing" not in clean
    assert set(clean) == ({other} if other else {"content_credentials"})


def test_invalid_signature_is_an_item_not_called_an_edit(ca, ca_trust, jpeg):
    signed = sign_image(ca, jpeg, source_type="digitalCreation")
    ctx = c2pa.Context.from_dict(c2pa_mod._settings(ca_trust, interim=False))
    with c2pa.Reader("image/jpeg", io.BytesIO(signed), context=ctx) as r:
        store = json.loads(r.json())
    section = store["validation_results"]["activeManifest"]
    section["success"] = [s for s in section["success"] if s["code"] != "claimSignature.validated"]
    section.setdefault("failure", []).append({"code": "claimSignature.mismatch", "explanation": "bad signature"})
    f = summarize_store(store)
    alt = by_claim(f)["altered_after_signing"][0]
    assert alt.strength == "weak" and alt.details["content_changed"] is False
    assert "claimSignature.mismatch: bad signature" in alt.details["failures_explained"]
    from consentry.evidence.assess import decide

    verdict, summary = decide(f.evidence)
    assert verdict == "no_indicators_found"
    assert "fail validation (claimSignature.mismatch)" in summary and "does not prove" in summary


def test_expired_certificate_without_claim_is_an_item(jpeg):
    """A real expired signature: a certificate valid for a few seconds, checked after it ran out."""
    import time

    now = dt.datetime.now(dt.timezone.utc)
    short = make_ca(org="Shortlived Camera Co", not_after=now + dt.timedelta(seconds=2))
    signed = sign_image(short, jpeg, source_type="digitalCreation")
    time.sleep(max(0.0, (now + dt.timedelta(seconds=3) - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    f = analyze_c2pa(signed, "image/jpeg")
    assert f.raw["c2pa"]["trust"] == "expired"
    ev = by_claim(f)["content_credentials"][0]
    assert ev.strength == "strong" and ev.details["trust"] == "expired"
    assert "Shortlived Camera Co" in ev.summary and "expired certificate" in ev.summary
    assert any("expired" in c for c in ev.caveats)
    a = _assess(signed, TrustLists())
    assert a.verdict == "no_indicators_found" and "expired certificate" in a.summary
    assert [e.claim for e in a.evidence] == ["content_credentials"]


def test_active_composite_with_ai_wins_over_ai_generated_ingredient(ca, ca_trust, ai_jpeg):
    child = sign_image(
        ca, encode(scene(300, 200, seed=21), "JPEG"), source_type=None, ingredient=(ai_jpeg, "image/jpeg"),
        actions=[{"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]},
                  "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia"}],
        title="composite with an AI part",
    )
    f = analyze_c2pa(child, "image/jpeg", trust=ca_trust)
    claims = by_claim(f)
    assert claims["ai_edited"][0].details["role"] == "active" and claims["ai_edited"][0].strength == "proof"
    assert claims["ai_generated"][0].details["role"] == "parent"
    a = _assess(child, ca_trust)
    assert a.verdict == "ai_edited"
    assert "1 more indicator agrees" in a.summary


def _sign_remote(ca, image: bytes, url: str) -> bytes:
    from c2pa_testca import _context, _signer

    manifest = {"claim_generator_info": [{"name": "remote test", "version": "1"}], "title": "remote", "format": "image/jpeg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}]}}]}
    ctx = _context()
    try:
        with c2pa.Builder(json.dumps(manifest), context=ctx) as b:
            b.set_no_embed()
            b.set_remote_url(url)
            out = io.BytesIO()
            with _signer(ca) as s:
                b.sign(s, "image/jpeg", io.BytesIO(image), out)
            return out.getvalue()
    finally:
        ctx.close()


def test_remote_manifest_is_named_with_its_url_not_malformed(ca, jpeg):
    url = "https://manifests.example.org/store/lighthouse.c2pa"
    data = _sign_remote(ca, jpeg, url)
    assert b"jumb" not in data  # nothing embedded: only the XMP reference
    f = analyze_c2pa(data, "image/jpeg")
    assert f.notes == [f"c2pa: remote manifest, not fetched (offline): {url}"]
    assert not any("malformed" in n for n in f.notes)
    ev = by_claim(f)["content_credentials"][0]
    assert ev.details["remote_manifest_url"] == url and ev.strength == "weak"
    assert "remote manifest, not fetched" in ev.summary
    assert f.raw["c2pa"]["remote_manifest_url"] == url


def test_unsupported_format_error_is_named():
    note = c2pa_mod._error_note(Exception("NotSupported: type is unsupported"), "image/x-foo")
    assert "cannot read Content Credentials in this file's format (image/x-foo)" in note
    assert "malformed" not in note


def _jxl_container() -> bytes:
    import struct

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    return (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
            + box(b"jxlc", b"\xff\x0a" + bytes(range(200))))


def test_jpeg_xl_is_checked_for_c2pa_and_says_what_was_not(ca, ca_trust):
    from c2pa_testca import _context, _signer

    plain = _jxl_container()
    a = _assess(plain, ca_trust)
    assert a.verdict == "inconclusive"
    assert "JPEG XL" in a.summary and "Content Credentials (C2PA) were checked and none were found" in a.summary
    assert "watermarks" in a.summary and a.error
    manifest = {"claim_generator_info": [{"name": "t", "version": "1"}], "title": "x", "format": "image/jxl",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}]}}]}
    ctx = _context()
    try:
        with c2pa.Builder(json.dumps(manifest), context=ctx) as b:
            out = io.BytesIO()
            with _signer(ca) as s:
                b.sign(s, "image/jxl", io.BytesIO(plain), out)
    finally:
        ctx.close()
    signed = _assess(out.getvalue(), ca_trust)
    assert signed.verdict == "ai_generated" and signed.error is None
    assert "JPEG XL, which this tool cannot decode" in signed.summary
    jp2 = _assess(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(200), ca_trust)
    assert jp2.verdict == "inconclusive" and "cannot read JPEG 2000 files" in jp2.summary
    unknown = _assess(b"plain text, not a picture " * 20, ca_trust)
    assert unknown.verdict == "inconclusive" and "format was not recognised" in unknown.summary
