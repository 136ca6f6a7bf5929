"""Matching through banks: exact PDQ/MD5/vPDQ, dihedral, thresholds, allow banks, live updates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.banks.formats.records import HashRecord
from consentry.banks.matcher import Matcher, QuerySignals, query_from_content
from consentry.banks.service import BankService
from consentry.index import hex_to_words
from consentry.config import MediaLimits
from consentry.media.content import Content

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _flip(hexhash: str, bits: list[int]) -> str:
    v = int(hexhash, 16)
    for b in bits:
        v ^= 1 << int(b)
    return f"{v:064x}"


def _q(pdq: str) -> QuerySignals:
    return QuerySignals(pdq=[pdq])


def test_needles_vs_haystack_returns_exactly_the_reference_pairs(db, testvectors):
    """Meta's MIH regression input through banks + index: exactly the 250 brute-force pairs."""
    reg = testvectors / "pdq" / "reg-test-input"
    haystack = reg.joinpath("haystack.txt").read_text().split()
    needles = reg.joinpath("needles.txt").read_text().split()
    svc = BankService(db)
    svc.create_bank("haystack", "custom")
    svc.add_records("haystack", [HashRecord("pdq", h, external_ids=[f"line:{i}"])
                                 for i, h in enumerate(haystack, 1)])
    matcher = Matcher(db).load()
    line_of = {}
    for e in svc.list_entries("haystack", limit=10_000):
        line_of[e.id] = int(e.external_ids[0].split(":")[1])
    got = set()
    for n, needle in enumerate(needles, 1):
        for m in matcher.match(_q(needle)).matches:
            got.add((n, line_of[m.entry_id], m.distance))
    expected = set()
    for line in (testvectors / "pdq" / "DERIVED-needles-vs-haystack-d31.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, d = map(int, line.split("\t"))
        expected.add((a, b, d))
    assert len(set(haystack)) == len(haystack)  # one bank entry per line
    assert len(expected) == 250
    assert got == expected


def test_thresholds_quality_and_distances(db):
    svc = BankService(db)
    svc.create_bank("strict", "ncii", thresholds={"pdq": 10})
    svc.create_bank("default", "custom")
    svc.add_entry("strict", "pdq", PDQ_A, quality=100)
    svc.add_entry("default", "pdq", PDQ_A, quality=100)
    svc.add_entry("default", "pdq", _flip(PDQ_A, list(range(100, 200))), quality=30)  # low quality
    m = Matcher(db).load()
    near = _flip(PDQ_A, list(range(20)))
    got = [(x.bank, x.distance, x.transform) for x in m.match(_q(near)).matches]
    assert got == [("default", 20, "original")]  # 20 > strict's 10
    got = {(x.bank, x.distance) for x in m.match(_q(_flip(PDQ_A, [1, 2, 3]))).matches}
    assert got == {("strict", 3), ("default", 3)}
    assert m.match(_q(_flip(PDQ_A, list(range(32))))).matches == []
    assert m.match(_q(_flip(PDQ_A, list(range(100, 200))))).matches == []  # q < 50 not indexed
    assert m.match(_q(PDQ_A), banks=["strict"]).matches[0].bank == "strict"
    low = QuerySignals(pdq=[PDQ_A], pdq_quality=20)
    assert m.match(low).matches == []  # a low-quality query is not used either


def test_add_and_withdraw_take_effect_on_the_next_query(db):
    svc = BankService(db)
    svc.create_bank("hub", "ncii")
    m = Matcher(db).load()
    assert m.match(_q(PDQ_A)).matches == []
    e, _ = svc.add_entry("hub", "pdq", PDQ_A)
    m.refresh()
    (hit,) = m.match(_q(PDQ_A)).matches
    assert hit.entry_id == e.id and hit.distance == 0
    svc.withdraw("hub", entry_id=e.id)
    # even before the index hears of it, the database re-check hides it
    assert m.match(_q(PDQ_A)).matches == []
    m.refresh()
    assert m.match(_q(PDQ_A)).matches == []
    assert m.stats()["pdq_entries"] == 0
    svc.set_status("hub", "active", entry_id=e.id)
    m.refresh()
    assert len(m.match(_q(PDQ_A)).matches) == 1
    svc.delete_bank("hub")
    m.refresh()
    assert m.match(_q(PDQ_A)).matches == []


def test_allow_bank_suppresses_matches(db):
    svc = BankService(db)
    svc.create_bank("known-bad", "csam")
    svc.create_bank("false-positives", "allow")
    svc.add_entry("known-bad", "pdq", PDQ_A)
    svc.add_entry("known-bad", "md5", "0" * 32)
    m = Matcher(db).load()
    assert len(m.match(_q(PDQ_A)).matches) == 1
    svc.add_entry("false-positives", "pdq", _flip(PDQ_A, [0, 1]))
    m.refresh()
    out = m.match(_q(PDQ_A))
    assert out.matches == [] and len(out.suppressed) == 1 and out.allowed_by[0].bank == "false-positives"
    # other content is unaffected
    assert len(m.match(QuerySignals(exact={"md5": "0" * 32})).matches) == 1


def test_file_queries_use_dihedral_variants(db, testvectors):
    dih = testvectors / "pdq" / "reg-test-input" / "dih"
    svc = BankService(db)
    svc.create_bank("b", "custom")
    lim = MediaLimits()
    original = query_from_content(Content.from_path(dih / "bridge-1-original.jpg", lim))
    svc.add_entry("b", "pdq", original.pdq[0], quality=original.pdq_quality)
    svc.add_entry("b", "md5", original.exact["md5"])
    m = Matcher(db).load()
    transforms = set()
    for p in sorted(dih.glob("bridge-*.jpg")):
        out = m.match(query_from_content(Content.from_path(p, lim)))
        pdq_hits = [x for x in out.matches if x.signal_type == "pdq"]
        assert len(pdq_hits) == 1 and pdq_hits[0].distance <= 31, p.name
        transforms.add(pdq_hits[0].transform)
        md5_hits = [x for x in out.matches if x.signal_type == "md5"]
        assert len(md5_hits) == (1 if p.name == "bridge-1-original.jpg" else 0)
    assert len(transforms) == 8


def test_vpdq_matches_both_ways_with_percentages(db, testvectors):
    from consentry.signals.vpdq import VPDQSignal

    lim = MediaLimits()
    grey = VPDQSignal.compute_frames(Content.from_path(testvectors / "videos" / "pattern-sd-grey-bar.mp4", lim))
    large = VPDQSignal.compute_frames(
        Content.from_path(testvectors / "videos" / "pattern-sd-with-large-logo-bar.mp4", lim))
    svc = BankService(db)
    svc.create_bank("v", "custom")
    svc.add_entry("v", "vpdq", json.dumps([str(f) for f in grey]))
    m = Matcher(db).load()
    small = VPDQSignal.compute_frames(
        Content.from_path(testvectors / "videos" / "pattern-sd-with-small-logo-bar.mp4", lim))
    (hit,) = m.match(QuerySignals(vpdq=small)).matches
    assert hit.detail["query_match_percent"] == 100.0 and hit.detail["compared_match_percent"] == 100.0
    assert m.match(QuerySignals(vpdq=large)).matches == []
    # a clip: the first 3 seconds of the stored video, as a query, matches (query side 100%)
    (clip_hit,) = m.match(QuerySignals(vpdq=small[:3])).matches
    assert clip_hit.detail["query_match_percent"] == 100.0
    assert clip_hit.detail["compared_match_percent"] < 80


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_matcher_equals_brute_force_with_changes(tmp_path_factory, data):
    """Random banks with near-duplicate families, adds and withdrawals between queries."""
    from consentry.db import Database
    from consentry.signals import get_signal_type

    pdq = get_signal_type("pdq")
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('h') / 'h.db'}")
    db.upgrade()
    svc = BankService(db)
    svc.create_bank("a", "custom")
    svc.create_bank("b", "custom", thresholds={"pdq": data.draw(st.integers(0, 31))})
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    seeds = [f"{int.from_bytes(rng.bytes(32), 'big'):064x}" for _ in range(3)]

    def near(h):
        return _flip(h, list(rng.choice(256, size=int(rng.integers(0, 40)), replace=False)))

    live: dict[tuple[str, str], int] = {}
    m = Matcher(db).load()
    for _round in range(3):
        for _ in range(int(rng.integers(1, 15))):
            bank = "ab"[int(rng.integers(0, 2))]
            value = near(seeds[int(rng.integers(0, 3))])
            e, _ = svc.add_entry(bank, "pdq", value)
            live[(bank, value)] = e.id
        for key in list(live)[: int(rng.integers(0, 3))]:
            svc.withdraw(key[0], entry_id=live.pop(key))
        m.refresh()
        for _ in range(5):
            query = near(seeds[int(rng.integers(0, 3))])
            got = {(x.bank, x.entry_id, x.distance) for x in m.match(_q(query)).matches}
            want = set()
            for (bank, value), eid in live.items():
                d = pdq.distance(query, value)
                if d <= svc.get_bank(bank).threshold("pdq"):
                    want.add((bank, eid, d))
            assert got == want
    db.dispose()


def test_change_committed_out_of_order_is_not_missed(db):
    """PostgreSQL: a change with a smaller id can commit after a larger one is seen."""
    pdq_b = "".join(f"{15 - int(c, 16):x}" for c in PDQ_A)  # every bit flipped: distance 256
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: commits cannot interleave")
    from consentry.db.models import Change, Entry

    svc = BankService(db)
    bank = svc.create_bank("hub", "ncii")
    m = Matcher(db).load()
    early = db.session()
    s = early.__enter__()
    try:
        e = Entry(bank_id=bank.id, signal_type="pdq", value=PDQ_A, value_key=PDQ_A, status="active")
        s.add(e)
        s.flush()
        s.add(Change(op="add", bank_id=bank.id, entry_id=e.id, signal_type="pdq"))
        s.flush()  # change id allocated, not yet committed
        late, _ = svc.add_entry("hub", "pdq", pdq_b)  # a later id, committed first
        assert m.refresh() == 1
        assert m.match(_q(pdq_b)).matches and not m.match(_q(PDQ_A)).matches
        assert m.refresh() == 0  # a quiet log: nothing re-applied
    finally:
        early.__exit__(None, None, None)  # commits
    assert m.refresh() == 1
    (hit,) = m.match(_q(PDQ_A)).matches
    assert hit.distance == 0
    assert m.refresh() == 0


def test_matching_and_withdrawals_go_on_while_the_index_is_rebuilt(db, monkeypatch):
    """The base rebuild (seconds at 10M) runs outside the matcher's lock."""
    import threading

    import consentry.index.pdq_index as P

    svc = BankService(db)
    svc.create_bank("hub", "ncii")
    a, _ = svc.add_entry("hub", "pdq", PDQ_A)
    m = Matcher(db).load()
    started, release = threading.Event(), threading.Event()
    real_build = P.CompactionJob.build

    def slow_build(job):
        started.set()
        assert release.wait(30)
        real_build(job)

    monkeypatch.setattr(P.CompactionJob, "build", slow_build)
    monkeypatch.setattr(P.PDQIndex, "needs_compaction", lambda self, delta_max=0: True)
    pdq_b = "".join(f"{15 - int(c, 16):x}" for c in PDQ_A)
    b, _ = svc.add_entry("hub", "pdq", pdq_b)
    worker = threading.Thread(target=m.refresh)
    worker.start()
    try:
        assert started.wait(30)
        # during the build: matches answer, and a withdrawal takes effect
        assert [h.entry_id for h in m.match(_q(pdq_b)).matches] == [b.id]
        svc.withdraw("hub", entry_id=a.id)
        assert m.refresh() == 1  # a second refresh does not start a second compaction
        assert m.match(_q(PDQ_A)).matches == []
    finally:
        release.set()
        worker.join(30)
    monkeypatch.undo()
    # after the new base is installed, the withdrawal made during the build still holds
    assert m.match(_q(PDQ_A)).matches == [] and m.pdq.query(hex_to_words(PDQ_A)) == []
    assert [h.entry_id for h in m.match(_q(pdq_b)).matches] == [b.id]
    assert len(m.pdq) == 1
