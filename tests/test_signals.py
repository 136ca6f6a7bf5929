from __future__ import annotations

import hashlib

import pytest

from consentry.errors import SignalValueError
from consentry.signals import get_signal_type, signal_types, signal_types_for
from consentry.signals.base import SignalType


def test_registry_has_every_type_and_protocol():
    types = signal_types()
    assert {"md5", "sha1", "sha256", "pdq", "vpdq", "photodna"} <= set(types)
    for name, st in types.items():
        assert isinstance(st, type) and st.name == name
        assert isinstance(st, SignalType) or all(
            hasattr(st, a) for a in ("compute", "parse", "serialize", "distance",
                                     "brute_force_compare", "examples", "default_threshold")
        )
        for ex in st.examples():
            assert st.parse(ex) == st.serialize(ex)
            assert st.distance(ex, ex) == 0
            assert st.brute_force_compare(ex, [ex])[0].candidate == 0
    assert [t.name for t in signal_types_for("video")] == ["md5", "sha1", "sha256", "vpdq"] or \
        {t.name for t in signal_types_for("video")} == {"md5", "sha1", "sha256", "vpdq"}
    assert {t.name for t in signal_types_for("photo")} == {"md5", "sha1", "sha256", "pdq"}
    with pytest.raises(KeyError, match="known"):
        get_signal_type("tmk-but-not-yet")


@pytest.mark.parametrize("name,n", [("md5", 32), ("sha1", 40), ("sha256", 64), ("pdq", 64)])
def test_hex_parsing_canonicalises_and_rejects(name, n):
    st = get_signal_type(name)
    assert st.parse("  " + "AB" * (n // 2) + "\n") == "ab" * (n // 2)
    for bad in ["", "ab" * (n // 2 + 1), "zz" * (n // 2), "ab" * (n // 2 - 1)]:
        with pytest.raises(SignalValueError):
            st.parse(bad)


def test_digest_examples_are_real_digests():
    assert get_signal_type("md5").examples()[0] == hashlib.md5(b"").hexdigest()
    assert get_signal_type("sha256").examples()[1] == hashlib.sha256(b"consentry example").hexdigest()


def test_pdq_distance_is_hamming():
    pdq = get_signal_type("pdq")
    assert pdq.distance("0" * 64, "f" * 64) == 256
    assert pdq.distance("0" * 64, "0" * 63 + "7") == 3
    hits = pdq.brute_force_compare("0" * 64, ["0" * 63 + "7", "f" * 64, "0" * 56 + "ffffffff"], 31)
    assert [(h.candidate, h.distance) for h in hits] == [(0, 3)]


def test_photodna_is_carried_not_computed():
    st = get_signal_type("photodna")
    ex = st.examples()[0]
    assert st.parse(bytes(range(144)).hex()) == ex
    with pytest.raises(SignalValueError):
        st.parse("AAAA")


def test_digest_signals_compute_from_content_in_one_pass(tmp_path):
    from consentry.config import MediaLimits
    from consentry.media.content import Content

    data = b"a benign byte string, not an image"
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    content = Content.from_path(path, MediaLimits())
    for name in ("md5", "sha1", "sha256"):
        assert get_signal_type(name).compute(content).value == hashlib.new(name, data).hexdigest()
    assert content.digests(("sha256", "sha1", "md5")) == {n: hashlib.new(n, data).hexdigest()
                                                          for n in ("sha256", "sha1", "md5")}
