"""Every list format through real banks (SQLite and PostgreSQL): import, idempotent re-import,
export -> re-import round trip, and withdrawals/tombstones that stop matches."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from consentry.banks.formats import get_format
from consentry.banks.matcher import Matcher, QuerySignals
from consentry.banks.service import BankService

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
CASES = [("te", "te_text.txt"), ("te", "te_dataset.csv"), ("csv", "plain.csv"),
         ("stopncii", "stopncii_fetch.json"), ("stopncii", "stopncii.jsonl"),
         ("ncmec", "ncmec_entries.xml"), ("vics", "vics_media.json"), ("vics", "vics_cases.json")]


def _import(svc, bank, fmt, data: bytes):
    return svc.add_records(bank, get_format(fmt).read(io.BytesIO(data), source_name="t"))


def _active(svc, bank):
    return {(e.signal_type, e.value) for e in svc.list_entries(bank, status="active", limit=10_000)}


@pytest.mark.parametrize("fmt,name", CASES)
def test_import_is_idempotent_and_export_round_trips(db, fmt, name):
    svc = BankService(db)
    svc.create_bank("a", "custom")
    svc.create_bank("b", "custom")
    data = (FIXTURES / name).read_bytes()
    first = _import(svc, "a", fmt, data)
    assert first.added > 0
    again = _import(svc, "a", fmt, data)
    assert again.added == 0 and again.reactivated == 0
    active = _active(svc, "a")
    assert len(active) == first.added
    out = io.BytesIO()
    written = get_format(fmt).write(svc.iter_records("a"), out)
    assert written > 0
    back = _import(svc, "b", fmt, out.getvalue())
    assert not back.errors
    assert _active(svc, "b") == active
    # provenance survives where the format carries it
    if fmt in ("ncmec", "vics", "stopncii"):
        a_ext = {(e.signal_type, e.value, tuple(e.external_ids)) for e in svc.list_entries("a", limit=10_000)}
        b_ext = {(e.signal_type, e.value, tuple(e.external_ids)) for e in svc.list_entries("b", limit=10_000)}
        assert a_ext == b_ext


def test_stopncii_withdrawal_removes_matches(db):
    svc = BankService(db)
    svc.create_bank("hub", "ncii")
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    active = (b'{"hashRecords": [{"signalType": "ImagePDQ", "hashValue": "%s", "hashStatus": "Active",'
              b' "caseNumbers": {"c1": "Active"}, "lastModtimestamp": 1}]}' % pdq.encode())
    _import(svc, "hub", "stopncii", active)
    m = Matcher(db).load()
    assert len(m.match(QuerySignals(pdq=[pdq])).matches) == 1
    withdrawn = active.replace(b'"hashStatus": "Active"', b'"hashStatus": "Withdrawn"')
    report = _import(svc, "hub", "stopncii", withdrawn)
    assert report.removed == 1
    m.refresh()
    assert m.match(QuerySignals(pdq=[pdq])).matches == []
    assert svc.find_entry("hub", "pdq", pdq).status == "withdrawn"


def test_ncmec_tombstones_remove_matches(db):
    svc = BankService(db)
    svc.create_bank("ncmec", "csam")
    data = (FIXTURES / "ncmec_entries.xml").read_bytes()
    _import(svc, "ncmec", "ncmec", data)
    m = Matcher(db).load()
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    hits = m.match(QuerySignals(pdq=[pdq])).matches
    assert hits and hits[0].provenance["external_ids"]
    ext = hits[0].provenance["external_ids"][0]
    member, entry = ext.removeprefix("ncmec:").split("/")
    tomb = (f'<?xml version="1.0"?><queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
            f'<images><deletedImage><member id="{member}">M</member><id>{entry}</id>'
            f'<timestamp>2024-01-01T00:00:00Z</timestamp></deletedImage></images></queryResult>').encode()
    report = _import(svc, "ncmec", "ncmec", tomb)
    assert report.removed >= 1 and not report.errors
    m.refresh()
    assert m.match(QuerySignals(pdq=[pdq])).matches == []
