"""Index snapshots (issue 20.2): a compacted PDQ index persisted as plain memory-mapped arrays,
tied to the change-log cursor it covers and checked by checksum; a snapshot that is missing,
stale, corrupt or of another database is rebuilt, never trusted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import consentry.banks.matcher as M
from consentry.banks.formats.records import HashRecord
from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService
from consentry.index import PDQIndex, words_to_hex
from consentry.index import snapshot as S
from consentry.index.pdq_index import brute_force


def _hashes(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [words_to_hex(w) for w in rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)]


def _answers(matcher: Matcher, queries: list[str]) -> list[list[tuple[int, int]]]:
    return [sorted((m.entry_id, m.distance) for m in matcher.match(QuerySignals(pdq=[q])).matches)
            for q in queries]


@pytest.fixture
def small_snapshots(monkeypatch):
    """Snapshot even a small index (the production floor is 20,000 entries)."""
    monkeypatch.setattr(M, "SNAPSHOT_MIN_ENTRIES", 10)


def _bank(db, hashes: list[str], name: str = "snap") -> BankService:
    svc = BankService(db)
    svc.create_bank(name, "custom")
    svc.add_records(name, [HashRecord("pdq", h) for h in hashes])
    return svc


# ------------------------------------------------------------------ the file format
def test_snapshot_roundtrip_is_memory_mapped_and_answers_the_same(tmp_path):
    rng = np.random.default_rng(4)
    words = rng.integers(0, 2**64, size=(25_000, 4), dtype=np.uint64)  # big enough for bands
    idx = PDQIndex.build(np.arange(25_000) * 3, words)
    S.save_pdq_base(tmp_path, "pdq", idx._base, 31, cursor=77, identity={"cursor": 77, "row": ["x"]})
    back, snap = S.open_pdq_index(tmp_path, "pdq", 31)
    assert snap.cursor == 77 and snap.identity == {"cursor": 77, "row": ["x"]}
    for k in S.ARRAYS:  # plain arrays over the file's pages, not copies
        a = snap.arrays[k]
        if a.nbytes:
            assert isinstance(a.base, np.memmap) and not a.flags.writeable, k
    assert back.describe()["bands"] == idx.describe()["bands"] == 16
    for q in words[:50:7]:
        assert back.query(q, 31) == idx.query(q, 31) == brute_force(words, np.arange(25_000) * 3, q, 31)
    back.remove(0)  # tombstones are the process's own, the map is never written
    assert back.query(words[0], 0) == [] and idx.query(words[0], 0) == [(0, 0)]


def _corrupt(path, where: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(where)
        b = fh.read(1)
        fh.seek(where)
        fh.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize("damage", ["array-byte", "truncated", "header", "other-threshold", "version"])
def test_damaged_or_foreign_snapshot_files_are_refused(tmp_path, damage):
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**64, size=(300, 4), dtype=np.uint64)
    idx = PDQIndex.build(np.arange(300), words)
    path = S.save_pdq_base(tmp_path, "pdq", idx._base, 31, cursor=5, identity={"cursor": 5, "row": None})
    assert S.open_pdq_index(tmp_path, "pdq", 31) is not None
    header = S.read_header(path)
    threshold = 31
    if damage == "array-byte":  # one bit of one hash: only the checksum can tell
        _corrupt(path, header["arrays"]["words"]["offset"] + 8 * 4 * 123 + 3)
    elif damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(header["size"] - 4096)
    elif damage == "header":
        _corrupt(path, 2)
    elif damage == "other-threshold":
        threshold = 40
    else:
        raw = path.read_bytes()
        head = json.dumps({**header, "format": 999}, sort_keys=True).encode()
        path.write_bytes((S.MAGIC + head).ljust(S.HEADER_BYTES, b" ") + raw[S.HEADER_BYTES:])
    assert S.open_pdq_index(tmp_path, "pdq", threshold) is None


def test_checksum_stamp_is_not_trusted_after_the_file_changes(tmp_path):
    """A verified file leaves a stamp so other workers skip re-hashing; a rewrite in place (new
    mtime/ctime) invalidates it, so the checksum is computed again and catches the change."""
    rng = np.random.default_rng(6)
    words = rng.integers(0, 2**64, size=(300, 4), dtype=np.uint64)
    path = S.save_pdq_base(tmp_path, "pdq", PDQIndex.build(np.arange(300), words)._base, 31, 1, {})
    assert S.open_pdq_index(tmp_path, "pdq", 31) is not None
    assert (tmp_path / "pdq.snap.verified").exists()
    _corrupt(path, S.read_header(path)["arrays"]["ids"]["offset"] + 1)
    assert S.open_pdq_index(tmp_path, "pdq", 31) is None


# ------------------------------------------------------------------ workers and the change log
def test_first_worker_writes_the_snapshot_and_the_next_maps_it(db, tmp_path, small_snapshots):
    hashes = _hashes(60, 1)
    _bank(db, hashes)
    snapdir = tmp_path / "index"
    first = Matcher(db, snapshot_dir=snapdir).load()
    assert first.index_source == "database" and (snapdir / "pdq.snap").exists()
    assert (snapdir / "pdq.snap").stat().st_mode & 0o077 == 0  # the banks' hashes: owner only
    # the writer swapped its own base for the mapped file too: one copy in the page cache
    assert isinstance(first.pdq._base.words.base, np.memmap)
    second = Matcher(db, snapshot_dir=snapdir).load()
    assert second.index_source == "snapshot"
    assert isinstance(second.pdq._base.words.base, np.memmap)
    assert S.read_header(snapdir / "pdq.snap")["cursor"] == first.cursor
    queries = hashes[::7] + _hashes(3, 99)
    plain = Matcher(db).load()
    assert _answers(second, queries) == _answers(first, queries) == _answers(plain, queries)
    assert all(_answers(second, [h])[0] for h in hashes[::7])


def test_stale_snapshot_replays_the_change_log_since_its_cursor(db, tmp_path, small_snapshots):
    hashes = _hashes(60, 2)
    svc = _bank(db, hashes)
    snapdir = tmp_path / "index"
    Matcher(db, snapshot_dir=snapdir).load()
    cursor = S.read_header(snapdir / "pdq.snap")["cursor"]
    # after the snapshot: withdrawals and new entries
    ids = {e.value: e.id for e in svc.list_entries("snap", limit=1000)}
    for h in hashes[:5]:
        svc.withdraw("snap", entry_id=ids[h])
    added = _hashes(8, 3)
    svc.add_records("snap", [HashRecord("pdq", h) for h in added])
    later = Matcher(db, snapshot_dir=snapdir).load()
    assert later.index_source == "snapshot" and later.cursor > cursor
    for h in hashes[:5]:
        assert _answers(later, [h]) == [[]]  # withdrawn after the snapshot: gone
    for h in added:
        assert len(_answers(later, [h])[0]) == 1  # added after it: found
    queries = hashes + added
    assert _answers(later, queries) == _answers(Matcher(db).load(), queries)


def test_snapshot_too_far_behind_is_rebuilt_and_rewritten(db, tmp_path, small_snapshots, monkeypatch):
    svc = _bank(db, _hashes(40, 4))
    snapdir = tmp_path / "index"
    Matcher(db, snapshot_dir=snapdir).load()
    old = S.read_header(snapdir / "pdq.snap")["cursor"]
    svc.add_records("snap", [HashRecord("pdq", h) for h in _hashes(5, 5)])
    monkeypatch.setattr(M, "SNAPSHOT_MAX_REPLAY", 2)
    m = Matcher(db, snapshot_dir=snapdir).load()
    assert m.index_source == "database"
    assert S.read_header(snapdir / "pdq.snap")["cursor"] == m.cursor > old
    assert Matcher(db, snapshot_dir=snapdir).load().index_source == "snapshot"


def test_corrupt_snapshot_is_rebuilt_never_trusted(db, tmp_path, small_snapshots):
    hashes = _hashes(50, 6)
    _bank(db, hashes)
    snapdir = tmp_path / "index"
    Matcher(db, snapshot_dir=snapdir).load()
    path = snapdir / "pdq.snap"
    header = S.read_header(path)
    # a bit flip inside hash 10: a trusting loader would answer with a wrong row
    _corrupt(path, header["arrays"]["words"]["offset"] + 32 * 10)
    m = Matcher(db, snapshot_dir=snapdir).load()
    assert m.index_source == "database"
    assert _answers(m, hashes[10:11]) == [[(_answers(Matcher(db).load(), hashes[10:11])[0][0])]]
    assert S.open_pdq_index(snapdir, "pdq", 31) is not None  # rewritten whole


def test_snapshot_of_another_database_is_not_used(db, tmp_path, small_snapshots):
    """Same directory, another database with the same number of changes: the change row at
    the snapshot's cursor differs (its time), so the snapshot is rebuilt."""
    from consentry.db import Database

    snapdir = tmp_path / "index"
    _bank(db, _hashes(30, 7))
    Matcher(db, snapshot_dir=snapdir).load()
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.upgrade()
    try:
        mine = _hashes(30, 8)
        _bank(other, mine)
        m = Matcher(other, snapshot_dir=snapdir).load()
        assert m.index_source == "database"
        assert all(len(a) == 1 for a in _answers(m, mine[:5]))
    finally:
        other.dispose()


def test_unwritable_snapshot_directory_is_not_an_error(db, tmp_path, small_snapshots):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    hashes = _hashes(20, 9)
    _bank(db, hashes)
    m = Matcher(db, snapshot_dir=blocker / "index").load()
    assert m.index_source == "database" and len(_answers(m, hashes[:1])[0]) == 1


def test_a_worker_opening_the_snapshot_reads_only_the_other_signals(db, tmp_path, small_snapshots):
    """With a snapshot, start-up reads the non-PDQ entries bank by bank through the (bank, signal
    type, value) index, not every entry (a scan of 10M PDQ entries cost 10 s of each worker's
    start); the MD5 and vPDQ entries of every bank still match."""
    from sqlalchemy import event

    hashes = _hashes(60, 5)
    svc = _bank(db, hashes)
    svc.create_bank("other", "custom")
    svc.add_records("other", [HashRecord("md5", "ab" * 16)])
    svc.add_records("snap", [HashRecord("sha256", "cd" * 32)])
    snapdir = tmp_path / "index"
    Matcher(db, snapshot_dir=snapdir).load()
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):
        if "FROM entries" in statement and "signal_type IN" in statement:
            plan = ""
            if db.dialect == "sqlite":
                plan = " ".join(r[3] for r in cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params))
            statements.append(plan or statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        second = Matcher(db, snapshot_dir=snapdir).load()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert second.index_source == "snapshot" and len(statements) == 2  # one per bank
    if db.dialect == "sqlite":
        assert all("SEARCH entries USING INDEX" in p and "bank_id=?" in p for p in statements), statements
    assert [m.signal_type for m in second.match(QuerySignals(exact={"md5": "ab" * 16})).matches] == ["md5"]
    assert [m.signal_type for m in second.match(QuerySignals(exact={"sha256": "cd" * 32})).matches] == ["sha256"]
    assert _answers(second, hashes[:3]) == _answers(Matcher(db).load(), hashes[:3])
