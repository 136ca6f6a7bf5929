"""Hash-list formats: fixtures parse to exactly the expected records, writers round-trip,
bad records are reported and skipped, tombstones become removes, XML is defused, and reading is
streaming (bounded memory).

The fixtures under tests/fixtures/formats/ are hand-written from the public format descriptions
and hold only made-up or benign hash values.
"""

from __future__ import annotations

import base64
import io
import json
import string
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.banks.formats import FORMATS, csv_format, get_format, ncmec, sniff_format, stopncii, te, vics
from consentry.banks.formats.records import HashRecord, RecordError

FIXTURES = Path(__file__).parent / "fixtures" / "formats"

PDQ1 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ2 = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22"
PDQ3 = "d8f8f0cec0f4a84f8e370a22038f67f0b36a2ed597231e1d72e6b39c4a9c9b22"
MD5_1 = "f3a11c9a34031362bd601107711a2375"
MD5_2 = "417511ef1a447e4c3ae4430c4aaeab1e"
MD5_3 = "7cb3a63c6a0d9277126a539664fbb708"
MD5_4 = "1ccc19a3268804d971574c1206531baa"
MD5_5 = "9f169a04803d8273487eb16f91369e66"
SHA1_1 = "63e1fc9e846f0cb7562ce13185b7893dee31b75f"
SHA1_2 = "b03b05f5fcb9b045f48ea8d3acfed7ba0d02af8c"
SHA1_4 = "14c67aa052e638057994b4b7ded62d29835837bf"
SHA256_1 = "0123456789abcdef" * 4
# A synthetic 144-byte PhotoDNA-shaped value (bytes (7*i) % 256), not a hash of anything.
PDNA_RAW = bytes((i * 7) % 256 for i in range(144))
PDNA = base64.b64encode(PDNA_RAW).decode()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def read_all(module, data: bytes) -> list[HashRecord | RecordError]:
    return list(module.read(io.BytesIO(data), source_name="test"))


def records_only(items) -> list[HashRecord]:
    return [r for r in items if isinstance(r, HashRecord)]


def errors_only(items) -> list[RecordError]:
    return [r for r in items if isinstance(r, RecordError)]


def written(module, records) -> tuple[int, bytes]:
    buf = io.BytesIO()
    n = module.write(records, buf)
    return n, buf.getvalue()


def core(r: HashRecord) -> tuple:
    """Everything but ``position`` and ``source``."""
    return (r.signal_type, r.value, r.op, r.external_ids, r.tags, r.category, r.meta)


def R(signal_type, value, position, source, **kw) -> HashRecord:  # noqa: N802
    return HashRecord(signal_type, value, position=position, source=source, **kw)


# --------------------------------------------------------------------------- registry
def test_registry_names_and_unknown_format_message():
    assert set(FORMATS) == {"te", "stopncii", "ncmec", "vics", "csv", "consentry"}
    for name, module in FORMATS.items():
        assert module.NAME == name
        assert get_format(name) is module
        assert callable(module.read) and callable(module.write)
    assert get_format("NCMEC") is ncmec
    with pytest.raises(KeyError) as exc:
        get_format("stix")
    msg = exc.value.args[0]
    assert "stix" in msg and all(n in msg for n in FORMATS)


@pytest.mark.parametrize("name, expected", [
    ("te_text.txt", "te"), ("te_dataset.csv", "te"), ("plain.csv", "csv"),
    ("stopncii_fetch.json", "stopncii"), ("stopncii.jsonl", "stopncii"),
    ("ncmec_entries.xml", "ncmec"), ("vics_media.json", "vics"), ("vics_cases.json", "vics"),
    ("consentry_hash.jsonl", "consentry"),
])
def test_sniff_fixtures(name, expected):
    assert sniff_format(fixture(name)[:4096]) == expected


@pytest.mark.parametrize("head, expected", [
    (b"# list, made up\n\npdq " + PDQ1.encode() + b"\n", "te"),
    (b"#signal_type,value\n", "csv"),
    (b"md5," + MD5_1.encode() + b"\n", "csv"),
    (b'\xef\xbb\xbf  {"value": [], "@odata.context": "x"}', "vics"),
    (b'[{"signalType": "ImagePDQ"', "stopncii"),
    (b'<?xml version="1.0"?>\n<queryResult', "ncmec"),
])
def test_sniff_other_shapes(head, expected):
    assert sniff_format(head) == expected


@pytest.mark.parametrize("head", [b"", b"   \n", b"hello world\n", b'{"foo": 1}', b"\x00\x01\x02", b"a,b,c\n"])
def test_sniff_unknown_is_none(head):
    assert sniff_format(head) is None


# --------------------------------------------------------------------------- te
def test_te_text_fixture():
    got = read_all(te, fixture("te_text.txt"))
    assert got == [
        R("pdq", PDQ1, "line 4", "te"),
        R("pdq", PDQ2, "line 5", "te", tags=["bridge", "edited"]),
        R("md5", MD5_1, "line 6", "te"),  # pytx video_md5 -> md5
        R("md5", MD5_2, "line 7", "te"),
        R("pdq", PDQ3, "line 8", "te", meta={"collab": "Sample Data", "extra": "FetchedSignalMetadata()"}),
        RecordError("line 9", "unknown signal type 'tmk'"),
        RecordError("line 10", "not a PDQ hash (64 hex characters): '0123456789abcdef'"),
        R("sha1", SHA1_1, "line 11", "te"),
    ]


def test_te_dataset_csv_fixture():
    got = read_all(te, fixture("te_dataset.csv"))
    assert got == [
        R("pdq", PDQ1, "line 2", "te", tags=["media_type_photo", "known"],
          meta={"collab": "Sample Data", "opinion": "TRUE_POSITIVE"}),
        R("md5", MD5_1, "line 3", "te", meta={"collab": "Sample Data", "opinion": "WORTH_INVESTIGATING"}),
        RecordError("line 4", "unknown signal type 'raw_text'"),
        RecordError("line 5", "not a PDQ hash (64 hex characters): 'not-a-hash'"),
    ]


def test_te_csv_with_signal_type_value_header_and_indicator_types():
    data = f"signal_type,value\nHASH_PDQ,{PDQ1}\nVIDEO_HASH_MD5,{MD5_1}\n".encode()
    assert [core(r) for r in read_all(te, data)] == [
        ("pdq", PDQ1, "add", [], [], None, {}), ("md5", MD5_1, "add", [], [], None, {})]


def test_te_writer_writes_pytx_text_and_skips_removes():
    recs = [HashRecord("pdq", PDQ1, tags=["x"], category="c"), HashRecord("md5", MD5_1, op="remove"),
            HashRecord("md5", MD5_2)]
    n, out = written(te, recs)
    assert n == 2
    assert out == f"pdq {PDQ1}\nmd5 {MD5_2}\n".encode()
    # what pytx's LocalFileSignalExchangeAPI does with each line:
    for line in out.decode().splitlines():
        stype, _, signal = line.strip().partition(" ")
        assert stype in ("pdq", "md5") and " " not in signal


def test_te_vpdq_written_as_one_word_and_read_back():
    from consentry.signals import get_signal_type

    value = get_signal_type("vpdq").examples()[0]
    n, out = written(te, [HashRecord("vpdq", value)])
    assert n == 1 and out.count(b" ") == 1
    assert [core(r) for r in read_all(te, out)] == [("vpdq", value, "add", [], [], None, {})]


HEX = st.sampled_from("0123456789abcdef")


def hex_str(n: int):
    return st.text(HEX, min_size=n, max_size=n)


SIGNAL_VALUES = {
    "md5": hex_str(32), "sha1": hex_str(40), "sha256": hex_str(64), "pdq": hex_str(64),
    "photodna": st.binary(min_size=144, max_size=144).map(lambda b: base64.b64encode(b).decode()),
}
TAG = st.text(string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=12)
TAGS = st.lists(TAG, max_size=4, unique=True)


def signal_pair(types=tuple(SIGNAL_VALUES)):
    return st.sampled_from(types).flatmap(lambda t: SIGNAL_VALUES[t].map(lambda v: (t, v)))


@settings(max_examples=60, deadline=None)
@given(st.lists(signal_pair(), max_size=30))
def test_te_round_trip(pairs):
    recs = [HashRecord(t, v) for t, v in pairs]
    n, out = written(te, recs)
    back = read_all(te, out)
    assert n == len(recs)
    assert [core(r) for r in back] == [core(r) for r in recs]
    assert all(r.source == "te" for r in back)


# --------------------------------------------------------------------------- csv
def test_csv_fixture():
    got = read_all(csv_format, fixture("plain.csv"))
    assert got == [
        R("pdq", PDQ1, "line 2", "csv", tags=["demo", "bridge"]),
        R("md5", MD5_2, "line 3", "csv"),
        R("sha1", SHA1_1, "line 4", "csv", tags=["a", "b"]),
        R("sha256", SHA256_1, "line 5", "csv", tags=["x"]),
        RecordError("line 6", "unknown signal type 'phash'"),
        RecordError("line 7", "not an MD5 (32 hex characters): 'zz'"),
        RecordError("line 8", "expected 'signal_type,value[,tags]'"),
    ]


def test_csv_without_header_and_with_comments():
    data = f"# a comment\npdq,{PDQ1},a|b\n\nmd5,{MD5_1}\n".encode()
    assert [(r.position, core(r)) for r in read_all(csv_format, data)] == [
        ("line 2", ("pdq", PDQ1, "add", [], ["a", "b"], None, {})),
        ("line 4", ("md5", MD5_1, "add", [], [], None, {})),
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(signal_pair(), TAGS, st.booleans()), max_size=30))
def test_csv_round_trip(items):
    recs = [HashRecord(t, v, op="remove" if rm else "add", tags=tags) for (t, v), tags, rm in items]
    n, out = written(csv_format, recs)
    adds = [r for r in recs if r.op == "add"]
    assert n == len(adds)
    assert out.startswith(b"signal_type,value,tags\n")
    assert [core(r) for r in read_all(csv_format, out)] == [core(r) for r in adds]


def test_bad_values_are_not_echoed_beyond_80_characters():
    long_bad = "q" * 500
    for module, data in [
        (csv_format, f"pdq,{long_bad}\n{long_bad},{PDQ1}\n"),
        (te, f"pdq {long_bad}\n{long_bad} {PDQ1}\n"),
        (stopncii, json.dumps([{"signalType": long_bad, "hashValue": PDQ1},
                               {"signalType": "ImagePDQ", "hashValue": long_bad}])),
    ]:
        errs = read_all(module, data.encode())
        assert len(errs) == 2 and all(isinstance(e, RecordError) for e in errs)
        for e in errs:
            assert "q" * 81 not in e.message and len(e.message) < 200


def test_overlong_line_is_reported_and_skipped():
    data = b"pdq " + b"a" * (200 * 1024) + b"\n" + f"md5 {MD5_1}\n".encode()
    got = read_all(te, data)
    assert got == [RecordError("line 1", "line longer than 64 KiB"), R("md5", MD5_1, "line 2", "te")]


def test_not_utf8_line_is_reported_and_skipped():
    got = read_all(csv_format, b"pdq,\xff\xfe\n" + f"md5,{MD5_1}\n".encode())
    assert got == [RecordError("line 1", "line is not UTF-8"), R("md5", MD5_1, "line 2", "csv")]


# --------------------------------------------------------------------------- stopncii
CASE = "00000000-0000-4000-8000-00000000000"


def test_stopncii_fixture():
    got = read_all(stopncii, fixture("stopncii_fetch.json"))
    assert got == [
        R("pdq", PDQ1, "record 1", "stopncii",
          external_ids=[f"stopncii:{CASE}1", f"stopncii:{CASE}2"],
          meta={"case_numbers": {f"{CASE}1": "Received", f"{CASE}2": "Received"},
                "hash_status": "Received", "last_modified": 1625167804}),
        R("md5", MD5_1, "record 2", "stopncii", external_ids=[f"stopncii:{CASE}3"],
          tags=["reviewed", "blocked"],
          meta={"case_numbers": {f"{CASE}3": "Active"},
                "csp_feedbacks": [
                    {"source": "ExamplePlatform", "feedbackValue": "Blocked", "tags": ["reviewed", "blocked"]},
                    {"source": "OtherPlatform", "feedbackValue": "PendingReview", "tags": ["reviewed"]}],
                "hash_status": "Active", "last_modified": 1625175071, "regions": ["UK"]}),
        R("pdq", PDQ2, "record 3", "stopncii", op="remove", external_ids=[f"stopncii:{CASE}4"],
          meta={"case_numbers": {f"{CASE}4": "Withdrawn"}, "hash_status": "Withdrawn",
                "last_modified": 1625175100}),
        R("md5", MD5_2, "record 4", "stopncii", op="remove",
          meta={"hash_status": "Deleted", "last_modified": 1625175200}),
        RecordError("record 5", "StopNCII signal type 'VideoTMK' is not supported"),
        RecordError("record 6", "not a PDQ hash (64 hex characters): 'not-a-pdq-hash'"),
    ]


def test_stopncii_withdrawn_and_deleted_are_removes():
    data = json.dumps({"hashRecords": [
        {"signalType": "ImagePDQ", "hashValue": PDQ1, "hashStatus": status} for status in
        ("Active", "Received", "Withdrawn", "Deleted", "withdrawn")]}).encode()
    assert [r.op for r in read_all(stopncii, data)] == ["add", "add", "remove", "remove", "remove"]


def test_stopncii_unknown_status_is_an_error_not_an_add():
    data = json.dumps([{"signalType": "ImagePDQ", "hashValue": PDQ1, "hashStatus": "Mystery"}]).encode()
    assert read_all(stopncii, data) == [RecordError("record 1", "unknown hashStatus 'Mystery'")]


def test_stopncii_json_lines_fixture():
    got = read_all(stopncii, fixture("stopncii.jsonl"))
    assert got == [
        R("pdq", PDQ3, "line 1", "stopncii", external_ids=["stopncii:case-a"],
          meta={"hash_status": "Active", "last_modified": 1625167804}),
        R("pdq", PDQ1, "line 2", "stopncii", op="remove", external_ids=["stopncii:case-b"],
          meta={"case_numbers": {"case-b": "Withdrawn"}, "hash_status": "Withdrawn",
                "last_modified": 1625167805}),
        RecordError("line 3", "unknown hashStatus 'Mystery'"),
        RecordError("line 4", "not JSON: Expecting value"),
        R("md5", MD5_5, "line 5", "stopncii", meta={"last_modified": 1625167808}),
    ]


def test_stopncii_bare_list_and_aliases():
    data = json.dumps([{"signalType": "HashPDQ", "hashValue": PDQ1.upper()},
                       {"signalType": "HashMD5", "hashValue": MD5_1}, "nonsense"]).encode()
    assert read_all(stopncii, data) == [
        R("pdq", PDQ1, "record 1", "stopncii"), R("md5", MD5_1, "record 2", "stopncii"),
        RecordError("record 3", "hash record must be a JSON object, not str")]


def test_stopncii_truncated_json_keeps_earlier_records_and_reports():
    data = fixture("stopncii_fetch.json")
    cut = data[: data.index(b'"hashStatus": "Withdrawn"')]
    got = read_all(stopncii, cut)
    assert [r.position for r in records_only(got)] == ["record 1", "record 2"]
    (err,) = errors_only(got)
    assert err.position == "record 3" and err.message.startswith("malformed or truncated JSON")


def test_stopncii_not_a_fetch_response():
    assert read_all(stopncii, b'{"foo": [1, 2]}') == [RecordError("document", "no hashRecords list found")]


def test_stopncii_oversized_record_stops_the_read():
    data = b'[{"signalType": "ImagePDQ", "hashValue": "' + b"a" * (17 << 20) + b'"}]'
    assert read_all(stopncii, data) == [RecordError("record 1", "one record is larger than 16 MiB")]


def test_stopncii_fixture_round_trip_keeps_everything():
    recs = records_only(read_all(stopncii, fixture("stopncii_fetch.json")))
    n, out = written(stopncii, recs)
    assert n == 4
    doc = json.loads(out)
    assert set(doc) == {"hashRecords", "count", "nextPageToken", "nextSetTimestamp", "hasMoreRecords"}
    assert doc["count"] == 4 and doc["hasMoreRecords"] is False
    assert [h["hashStatus"] for h in doc["hashRecords"]] == ["Received", "Active", "Withdrawn", "Deleted"]
    assert [h["signalType"] for h in doc["hashRecords"]] == ["ImagePDQ", "VideoMD5", "ImagePDQ", "VideoMD5"]
    assert [core(r) for r in read_all(stopncii, out)] == [core(r) for r in recs]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(signal_pair(("pdq", "md5", "sha1")), TAGS, st.booleans(),
                          st.lists(st.uuids().map(str), max_size=3, unique=True)), max_size=25))
def test_stopncii_round_trip(items):
    recs = [HashRecord(t, v, op="remove" if rm else "add", tags=tags,
                       external_ids=[f"stopncii:{c}" for c in cases])
            for (t, v), tags, rm, cases in items]
    n, out = written(stopncii, recs)
    kept = [r for r in recs if r.signal_type in ("pdq", "md5")]  # StopNCII has no SHA-1
    assert n == len(kept) == json.loads(out)["count"]
    back = read_all(stopncii, out)
    assert [(r.signal_type, r.value, r.op, r.external_ids, r.tags) for r in back] == \
           [(r.signal_type, r.value, r.op, r.external_ids, r.tags) for r in kept]
    assert all(r.meta["hash_status"] == ("Withdrawn" if r.op == "remove" else "Active") for r in back)


# --------------------------------------------------------------------------- ncmec
def _ncmec_meta(entry_type, ts, name):
    return {"entry_type": entry_type, "timestamp": ts, "member_name": name}


def test_ncmec_fixture():
    got = read_all(ncmec, fixture("ncmec_entries.xml"))
    m1 = _ncmec_meta("image", "2017-10-24T15:00:00Z", "Example Member")
    m2 = _ncmec_meta("image", "2017-10-24T15:05:00Z", "Example Member")
    assert got == [
        R("md5", MD5_1, "image[1].md5", "ncmec", external_ids=["ncmec:42/image1"], category="A1", meta=m1),
        R("sha1", SHA1_1, "image[1].sha1", "ncmec", external_ids=["ncmec:42/image1"], category="A1", meta=m1),
        R("photodna", PDNA, "image[1].pdna", "ncmec", external_ids=["ncmec:42/image1"], category="A1", meta=m1),
        R("pdq", PDQ1, "image[1].pdq", "ncmec", external_ids=["ncmec:42/image1"], category="A1", meta=m1),
        RecordError("image[2].md5", "not an MD5 (32 hex characters): 'zz11'"),
        RecordError("image[2].netclean", "unknown NCMEC fingerprint type 'netclean'"),
        R("sha1", SHA1_2, "image[2].sha1", "ncmec", external_ids=["ncmec:42/image2"], category="B1", meta=m2),
        R("", "", "deletedImage[1]", "ncmec", op="remove", external_ids=["ncmec:43/image4"],
          meta={**_ncmec_meta("image", "2017-10-24T15:10:00Z", "Example Member2"), "remove_by": "external_id"}),
        R("md5", MD5_3, "video[1].md5", "ncmec", external_ids=["ncmec:42/video1"],
          meta=_ncmec_meta("video", "2017-10-24T15:00:00Z", "Example Member")),
        R("", "", "deletedVideo[1]", "ncmec", op="remove", external_ids=["ncmec:42/video4"],
          meta={**_ncmec_meta("video", "2017-10-24T15:20:00Z", "Example Member"), "remove_by": "external_id"}),
    ]


def test_ncmec_deleted_image_with_fingerprints_removes_each_hash():
    data = f"""<queryResult xmlns="{ncmec.NAMESPACE}"><images>
      <deletedImage><member id="7"/><id>e1</id>
        <fingerprints><md5>{MD5_1}</md5><pdq>{PDQ1}</pdq></fingerprints></deletedImage>
    </images></queryResult>""".encode()
    assert [(r.signal_type, r.value, r.op, r.external_ids) for r in read_all(ncmec, data)] == [
        ("md5", MD5_1, "remove", ["ncmec:7/e1"]), ("pdq", PDQ1, "remove", ["ncmec:7/e1"])]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<queryResult><images><image><member id="1">&lol9;</member><id>x</id>
<fingerprints><md5>f3a11c9a34031362bd601107711a2375</md5></fingerprints></image></images></queryResult>
"""


def test_ncmec_billion_laughs_is_refused_not_expanded():
    tracemalloc.start()
    try:
        got = read_all(ncmec, BILLION_LAUGHS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [RecordError("document", "refused: the document has a DTD (entity expansion is not allowed)")]
    assert peak < 5 * 1024 * 1024  # fully expanded it would be ~3 GB


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE queryResult SYSTEM "http://example.invalid/x.dtd"><queryResult/>',
    b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY e SYSTEM "file:///etc/hostname">]><queryResult>&e;</queryResult>',
])
def test_ncmec_external_references_are_refused(doc):
    (err,) = read_all(ncmec, doc)
    assert isinstance(err, RecordError) and err.message.startswith("refused:")


def test_ncmec_huge_text_value_is_refused():
    data = (b'<queryResult><images><image><member id="1">m</member><id>a</id><fingerprints><md5>'
            + b"a" * (100 * 1024) + b"</md5></fingerprints></image></images></queryResult>")
    assert read_all(ncmec, data) == [RecordError("image[1]", "refused: a text value is longer than 64 KiB")]


def test_ncmec_truncated_xml_keeps_complete_entries():
    data = fixture("ncmec_entries.xml")
    cut = data[: data.index(b"<id>image2</id>")]
    got = read_all(ncmec, cut)
    assert [r.position for r in records_only(got)] == ["image[1].md5", "image[1].sha1", "image[1].pdna",
                                                       "image[1].pdq"]
    (err,) = errors_only(got)
    assert err.message.startswith("malformed or truncated XML")


def test_ncmec_wrong_root_is_reported():
    assert read_all(ncmec, b"<status><member id='1'>x</member></status>") == [
        RecordError("document", "expected <queryResult>, found <status>")]


def test_ncmec_fixture_round_trip():
    recs = records_only(read_all(ncmec, fixture("ncmec_entries.xml")))
    n, out = written(ncmec, recs)
    assert n == len(recs) == 8
    assert [core(r) for r in read_all(ncmec, out)] == [core(r) for r in recs]
    assert b"<pdna>" + PDNA_RAW.hex().encode() + b"</pdna>" in out  # PhotoDNA written as hex


def test_ncmec_writer_groups_an_entry_and_gives_ids_to_other_records():
    recs = [HashRecord("md5", MD5_1, external_ids=["ncmec:5/a"], category="A1"),
            HashRecord("sha1", SHA1_1, external_ids=["ncmec:5/a"], category="A1"),
            HashRecord("pdq", PDQ1, category="B2"), HashRecord("vpdq", "[]"), HashRecord("sha256", SHA256_1)]
    n, out = written(ncmec, recs)
    assert n == 3  # vPDQ and SHA-256 have no NCMEC fingerprint element
    assert out.count(b"<image>") == 2 and b"<videos" not in out
    back = read_all(ncmec, out)
    assert [(r.signal_type, r.external_ids[0].split("/")[0], r.category) for r in back] == [
        ("md5", "ncmec:5", "A1"), ("sha1", "ncmec:5", "A1"), ("pdq", "ncmec:0", "B2")]
    assert back[0].external_ids == back[1].external_ids == ["ncmec:5/a"]


NCMEC_FP = ("md5", "sha1", "pdq", "photodna")


@st.composite
def ncmec_entries(draw):
    entries = []
    for i in range(draw(st.integers(0, 8))):
        entry_type = draw(st.sampled_from(["image", "video"]))
        deleted = draw(st.booleans())
        member = str(draw(st.integers(1, 99999)))
        meta = {"entry_type": entry_type, "timestamp": f"2020-01-0{draw(st.integers(1, 9))}T00:00:00Z"}
        if draw(st.booleans()):
            meta["member_name"] = draw(st.text(string.ascii_letters + " ", min_size=1, max_size=20)).strip() or "m"
        category = None if deleted else draw(st.none() | st.sampled_from(["A1", "A2", "B1", "B2"]))
        types = draw(st.lists(st.sampled_from(NCMEC_FP), min_size=1, max_size=4, unique=True))
        for t in types:
            entries.append(HashRecord(t, draw(SIGNAL_VALUES[t]), op="remove" if deleted else "add",
                                      external_ids=[f"ncmec:{member}/entry-{i}"], category=category,
                                      meta=dict(meta)))
    return entries


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ncmec_entries())
def test_ncmec_round_trip(recs):
    n, out = written(ncmec, recs)
    assert n == len(recs)
    back = read_all(ncmec, out)
    expected = sorted(recs, key=lambda r: r.meta["entry_type"] != "image")  # images, then videos
    assert [core(r) for r in back] == [core(r) for r in expected]


# --------------------------------------------------------------------------- vics
def test_vics_media_fixture():
    got = read_all(vics, fixture("vics_media.json"))
    tags1 = ["synthetic", "fixture"]
    meta1 = {"vics": {"IsPrecategorized": "true"}}
    assert got == [
        R("md5", MD5_1, "media[1].MD5", "vics", external_ids=["vics:1"], tags=tags1, category="3", meta=meta1),
        R("sha1", SHA1_1, "media[1].SHA1", "vics", external_ids=["vics:1"], tags=tags1, category="3", meta=meta1),
        R("photodna", PDNA, "media[1].AlternativeHashes[1]", "vics", external_ids=["vics:1"], tags=tags1,
          category="3", meta=meta1),
        R("md5", MD5_2, "media[2].MD5", "vics", external_ids=["vics:2"], category="0",
          meta={"vics": {"Series": "Synthetic series A", "VictimIdentified": "false"}}),
        RecordError("media[3].MD5", "not an MD5 (32 hex characters): 'not-an-md5'"),
        RecordError("media[4]", "Media without any hash"),
        R("md5", MD5_3, "media[5].MD5", "vics", external_ids=["vics:5"], category="2"),
        RecordError("media[5].AlternativeHashes[1]", "unknown VICS hash name 'FancyHash'"),
    ]


def test_vics_cases_fixture():
    got = read_all(vics, fixture("vics_cases.json"))
    assert got == [
        R("md5", MD5_4, "media[1].MD5", "vics", external_ids=["vics:9000"], category="1"),
        R("sha1", SHA1_4, "media[1].SHA1", "vics", external_ids=["vics:9000"], category="1"),
        R("md5", MD5_5, "media[2].MD5", "vics", external_ids=["vics:9001"], tags=["a", "b"], category="5"),
    ]


def test_vics_1x_photodna_field_and_bom():
    doc = {"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media",
           "value": [{"MediaID": 7, "Category": 1, "MD5": MD5_1.upper(), "PhotoDNA": PDNA}]}
    data = b"\xef\xbb\xbf" + json.dumps(doc).encode()
    assert [core(r) for r in read_all(vics, data)] == [
        ("md5", MD5_1, "add", ["vics:7"], [], "1", {}), ("photodna", PDNA, "add", ["vics:7"], [], "1", {})]


def test_vics_truncated_json_keeps_earlier_media():
    data = fixture("vics_media.json")
    got = read_all(vics, data[: data.index(b'"MediaID": 3')])
    assert [r.position for r in records_only(got)][-1] == "media[2].MD5"
    (err,) = errors_only(got)
    assert err.position == "media[3]" and err.message.startswith("malformed or truncated JSON")


def test_vics_not_a_vics_document():
    assert read_all(vics, b'{"foo": 1}') == [RecordError("document", "no 'value' list found (not a VICS document)")]
    assert read_all(vics, b"[1, 2]") == [
        RecordError("document", "expected a VICS JSON object with a 'value' list")]


def test_vics_writer_emits_vics_media_and_groups_hashes():
    recs = [HashRecord("md5", MD5_1, external_ids=["vics:10"], category="1", tags=["t"]),
            HashRecord("sha1", SHA1_1, external_ids=["vics:10"], category="1", tags=["t"]),
            HashRecord("photodna", PDNA, external_ids=["vics:10"], category="1", tags=["t"]),
            HashRecord("md5", MD5_2, op="remove"), HashRecord("vpdq", "[]"), HashRecord("pdq", PDQ1, category="A1")]
    n, out = written(vics, recs)
    assert n == 4
    doc = json.loads(out)
    assert doc["@odata.context"].endswith("/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media")
    assert doc["value"] == [
        {"MediaID": 10, "Category": 1, "MD5": MD5_1.upper(), "SHA1": SHA1_1.upper(),
         "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": PDNA}], "Tags": "t"},
        {"MediaID": 1, "PDQ": PDQ1},  # NCMEC-style category "A1" is not a VICS category
    ]
    assert [core(r) for r in read_all(vics, out)] == [core(r) for r in recs[:3]] + [
        ("pdq", PDQ1, "add", ["vics:1"], [], None, {})]


@st.composite
def vics_records(draw):
    recs = []
    for i in range(draw(st.integers(0, 10))):
        category = draw(st.none() | st.integers(0, 5).map(str))
        tags = draw(TAGS)
        flags = draw(st.none() | st.fixed_dictionaries({"Series": TAG}))
        types = draw(st.lists(st.sampled_from(list(SIGNAL_VALUES)), min_size=1, max_size=5, unique=True))
        for t in sorted(types, key=list(vics.WRITE_FIELDS).index):
            recs.append(HashRecord(t, draw(SIGNAL_VALUES[t]), external_ids=[f"vics:{100 + i}"], tags=tags,
                                   category=category, meta={"vics": dict(flags)} if flags else {}))
    return recs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vics_records())
def test_vics_round_trip(recs):
    n, out = written(vics, recs)
    assert n == len(recs)
    assert [core(r) for r in read_all(vics, out)] == [core(r) for r in recs]


# --------------------------------------------------------------------------- streaming
def _generate(path: Path, head: bytes, line, count: int, tail: bytes) -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        for start in range(0, count, 1000):
            fh.write(b"".join(line(i) for i in range(start, min(count, start + 1000))))
        fh.write(tail)
    return path


def _pdq(i: int) -> str:
    return f"{i:016x}" * 4


def _peak_while_reading(module, path: Path) -> tuple[int, int]:
    """Records read from the file at ``path`` and the peak of memory allocated meanwhile."""
    with open(path, "rb") as stream:
        tracemalloc.start()
        try:
            count = sum(1 for rec in module.read(stream) if isinstance(rec, HashRecord))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return count, peak


def test_te_200k_records_stream_in_bounded_memory(tmp_path):
    n = 200_000
    path = _generate(tmp_path / "big.txt", b"# generated\n", lambda i: f"pdq {_pdq(i)} t{i % 7}\n".encode(),
                     n, b"")
    size = path.stat().st_size
    count, peak = _peak_while_reading(te, path)
    assert count == n and size > 14_000_000
    assert peak < 1_000_000 and peak * 14 < size


STREAM_CASES = {
    "csv": (b"signal_type,value,tags\n", lambda i: f"pdq,{_pdq(i)},a;b\n".encode(), b""),
    "stopncii": (b'{"count": 0, "hashRecords": [\n',
                 lambda i: (b"," if i else b"") + json.dumps(
                     {"signalType": "ImagePDQ", "hashValue": _pdq(i), "hashStatus": "Active",
                      "caseNumbers": {f"case-{i}": "Active"}, "lastModtimestamp": 1700000000}).encode() + b"\n",
                 b'], "hasMoreRecords": false}'),
    "ncmec": (f'<?xml version="1.0"?><queryResult xmlns="{ncmec.NAMESPACE}"><images>'.encode(),
              lambda i: (f'<image><member id="1">m</member><timestamp>2020-01-01T00:00:00Z</timestamp>'
                         f"<id>e{i}</id><classification>A1</classification><fingerprints>"
                         f"<pdq>{_pdq(i)}</pdq></fingerprints></image>\n").encode(),
              b"</images></queryResult>"),
    "vics": (f'{{"@odata.context": "{vics.CONTEXT}", "value": ['.encode(),
             lambda i: (b"," if i else b"") + json.dumps(
                 {"MediaID": i, "Category": 1, "PDQ": _pdq(i), "Tags": "x, y"}).encode() + b"\n",
             b"]}"),
}


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_reading_memory_does_not_grow_with_input(name, tmp_path):
    head, line, tail = STREAM_CASES[name]
    module = get_format(name)
    small = _generate(tmp_path / "small", head, line, 5_000, tail)
    big = _generate(tmp_path / "big", head, line, 30_000, tail)
    count_small, peak_small = _peak_while_reading(module, small)
    count_big, peak_big = _peak_while_reading(module, big)
    assert (count_small, count_big) == (5_000, 30_000)
    # six times the input, same working memory (allow for allocator noise)
    assert peak_big < peak_small * 1.5 + 256 * 1024
    assert peak_big * 3 < big.stat().st_size


def test_readers_do_not_close_the_callers_stream():
    for name, module in FORMATS.items():
        stream = io.BytesIO(fixture({"te": "te_text.txt", "csv": "plain.csv", "stopncii": "stopncii.jsonl",
                                     "ncmec": "ncmec_entries.xml", "vics": "vics_cases.json",
                                     "consentry": "consentry_hash.jsonl"}[name]))
        list(module.read(stream))
        assert not stream.closed, name
        out = io.BytesIO()
        module.write([HashRecord("md5", MD5_1)], out)
        assert not out.closed, name


def test_stopncii_records_first_and_records_last_read_the_same():
    """A FetchHashes answer whose ``hashRecords`` come first is read by ijson's C item builder, one
    with other keys first event by event: both give the same records, errors included."""
    doc = json.loads(fixture("stopncii_fetch.json"))
    records = doc["hashRecords"] + ["not a record"]
    first = json.dumps({"hashRecords": records, "nextPageToken": "t"}).encode()
    last = json.dumps({"nextPageToken": "t", "count": len(records), "hashRecords": records}).encode()
    got_first, got_last = read_all(stopncii, first), read_all(stopncii, last)
    assert got_first == got_last and len(got_first) == len(records) and len(records_only(got_first)) == 4
    assert got_first[-1] == RecordError(f"record {len(records)}", "hash record must be a JSON object, not str")


def test_consentry_hash_output_imports_as_a_list(tmp_path, monkeypatch):
    """What `consentry hash` prints (JSON Lines, one object a file) is a list format: sniffed,
    read into one entry per signal (PDQ with its quality, a video's frames as one vPDQ entry, a
    failed file's digests), never keeping the local path; a line with nothing usable is reported;
    written back and read again unchanged. End to end: hash two drawn photos, import the output,
    and each photo then matches its bank entries."""
    from typer.testing import CliRunner

    from consentry.banks.formats import consentry_hash
    from consentry.cli import app
    from imagegen import encode, scene

    frames = [f"{PDQ1},100,0.0", f"{PDQ2},90,1.0"]
    lines = [
        {"path": "/evidence/a.jpg", "content_type": "photo", "size": 9, "sha256": "ab" * 32, "md5": MD5_1,
         "pdq": PDQ1, "pdq_quality": 87, "vpdq": None, "error": None},
        {"path": "clip.mp4", "content_type": "video", "size": 9, "sha256": None, "md5": MD5_2, "pdq": None,
         "pdq_quality": None, "vpdq": frames, "error": None},
        {"path": "broken.png", "content_type": "photo", "size": 9, "sha256": "cd" * 32, "md5": None, "pdq": None,
         "pdq_quality": None, "vpdq": None, "error": "cannot decode"},
        {"path": "empty.bin", "content_type": "unknown", "size": 0, "sha256": None, "md5": None, "pdq": None,
         "pdq_quality": None, "vpdq": None, "error": "unrecognised or unsupported file format"},
    ]
    data = ("\n".join(json.dumps(x) for x in lines) + "\nnot json\n").encode()
    assert sniff_format(data[:4096]) == "consentry" and FORMATS["consentry"] is consentry_hash
    got = read_all(consentry_hash, data)
    recs = records_only(got)
    assert [(r.signal_type, r.position) for r in recs] == [
        ("md5", "line 1"), ("sha256", "line 1"), ("pdq", "line 1"), ("md5", "line 2"), ("vpdq", "line 2"),
        ("sha256", "line 3")]
    pdq = recs[2]
    assert pdq.value == PDQ1 and pdq.meta == {"quality": 87} and pdq.source == "consentry"
    assert json.loads(recs[4].value) == frames
    assert not any("evidence" in json.dumps(r.__dict__) for r in recs)  # the path is not kept
    errors = [g for g in got if isinstance(g, RecordError)]
    assert [(e.position, "unsupported" in e.message or "not JSON" in e.message) for e in errors] == \
        [("line 4", True), ("line 5", True)]
    out = io.BytesIO()
    assert consentry_hash.write(recs, out) == 6
    again = records_only(read_all(consentry_hash, out.getvalue()))
    assert [(r.signal_type, r.value, r.meta) for r in again] == [(r.signal_type, r.value, r.meta) for r in recs]

    monkeypatch.setenv("CONSENTRY_HOME", str(tmp_path / "home"))
    photos = []
    for seed in (3, 4):
        p = tmp_path / f"p{seed}.png"
        p.write_bytes(encode(scene(320, 240, seed=seed), "PNG"))
        photos.append(str(p))
    runner = CliRunner()
    hashed = runner.invoke(app, ["hash", *photos])
    assert hashed.exit_code == 0, hashed.output
    (tmp_path / "h.jsonl").write_text(hashed.stdout)
    assert runner.invoke(app, ["bank", "create", "mine"]).exit_code == 0
    imported = runner.invoke(app, ["bank", "import", "mine", str(tmp_path / "h.jsonl")])
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.stdout.strip().splitlines()[-1])
    assert summary["format"] == "consentry" and summary["added"] == 6 and summary["errors"] == 0
    matched = runner.invoke(app, ["match", photos[0]])
    kinds = {m["signal_type"] for m in json.loads(matched.stdout)["matches"]}
    assert kinds == {"md5", "sha256", "pdq"}
