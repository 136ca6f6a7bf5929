"""PDQ compatibility with Meta's reference values (see ../shared/testvectors/README.md)."""

from __future__ import annotations

import pytest

from consentry.hashing import hash_path
from consentry.media.content import Content
from consentry.signals import get_signal_type
from consentry.signals.pdq import DIHEDRAL_TRANSFORMS, PDQSignal

PDQ = get_signal_type("pdq")


def _derived(testvectors):
    rows = {}
    for line in (testvectors / "pdq" / "DERIVED-pdqhash-0.2.8.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        path, size, mode, hexhash, quality, _accepted = line.split("\t")
        rows[path] = (mode, hexhash, int(quality))
    return rows


def test_bit_exact_with_pdqhash_reference_for_rgb_and_grey(testvectors, limits):
    rows = {p: r for p, r in _derived(testvectors).items() if r[0] in ("RGB", "L")}
    assert len(rows) >= 30
    for path, (_mode, expected, quality) in rows.items():
        result = hash_path(testvectors / path, limits)
        assert result.error is None, path
        assert result.pdq == expected, path
        assert result.pdq_quality == quality, path


@pytest.mark.parametrize(
    "path,original",
    [
        ("pdq/misc-images/modes/CMYK.jpg", "pdq/bridge-mods/aaa-orig.jpg"),
        ("pdq/misc-images/modes/P.png", "pdq/bridge-mods/aaa-orig.jpg"),
        ("pdq/misc-images/modes/1.png", "pdq/bridge-mods/aaa-orig.jpg"),
    ],
)
def test_non_rgb_modes_hash_like_the_rgb_original(testvectors, limits, path, original):
    """pytx gives distance 254 (CMYK), 38 (P) and quality 0 (1-bit) here; we must not."""
    ours = hash_path(testvectors / path, limits)
    ref = hash_path(testvectors / original, limits)
    assert PDQ.distance(ours.pdq, ref.pdq) <= 8
    assert ours.pdq_quality >= 50 and ref.pdq_quality >= 50
    pytx = _derived(testvectors)[path]
    if pytx[0] in ("CMYK", "P"):
        assert PDQ.distance(pytx[1], ref.pdq) > 31  # the reference bug this test guards against


def test_sixteen_bit_and_la_resources(testvectors, limits):
    """pytx's I16.png/LA.png have no RGB twin: compare with their own 8-bit grey rendering."""
    import numpy as np
    from PIL import Image

    from consentry.signals.pdq import pdq_from_image

    res = testvectors / "pytx" / "hashing-resources"
    i16 = hash_path(res / "I16.png", limits)
    arr = np.asarray(Image.open(res / "I16.png")).astype(np.float64)
    grey = Image.fromarray(np.rint(arr / 257).astype(np.uint8)).convert("RGB")
    expected, q = pdq_from_image(grey)
    assert PDQ.distance(i16.pdq, expected) <= 8 and i16.pdq_quality >= 50 and q >= 50
    assert _derived(testvectors)["pytx/hashing-resources/I16.png"][2] < 50  # pytx: clipped, q=36

    la = hash_path(res / "LA.png", limits)
    la_arr = np.asarray(Image.open(res / "LA.png")).astype(np.float64)
    alpha = la_arr[:, :, 1] / 255.0
    on_white = np.rint(la_arr[:, :, 0] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    expected, q = pdq_from_image(Image.fromarray(on_white).convert("RGB"))
    assert PDQ.distance(la.pdq, expected) <= 8 and la.pdq_quality >= 50


def test_every_dihedral_variant_matches_the_original(testvectors, limits):
    dih = testvectors / "pdq" / "reg-test-input" / "dih"
    original = hash_path(dih / "bridge-1-original.jpg", limits).pdq
    seen_transforms = set()
    for path in sorted(dih.glob("bridge-*.jpg")):
        variants, quality = PDQSignal.compute_dihedral(Content.from_path(path, limits))
        assert quality >= 50
        best = min(range(8), key=lambda i: PDQ.distance(variants[i], original))
        assert PDQ.distance(variants[best], original) <= 31, path.name
        seen_transforms.add(DIHEDRAL_TRANSFORMS[best])
        if path.name != "bridge-1-original.jpg":
            # the plain hash alone does not match: the dihedral query is what finds it
            assert PDQ.distance(variants[0], original) > 31, path.name
    assert len(seen_transforms) == 8  # each file is found through a different transform


def test_examples_and_brute_force_compare(testvectors):
    ex = PDQ.examples()
    assert all(PDQ.parse(e) == e for e in ex)
    hits = PDQ.brute_force_compare(ex[0], ex + ["0" * 64])
    assert [c.candidate for c in hits] == [0, 1, 2]
    assert hits[0].distance == 0
    assert PDQ.brute_force_compare(ex[0], ex, threshold=0) == [hits[0]]
