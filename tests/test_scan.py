"""`consentry scan` end to end over a tree of benign pictures drawn here: nested archives, corrupt
files, duplicates, near-duplicates, a symlink loop, a zip bomb; resume, kill -9, Ray, reports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from conftest import CHROMIUM, CHROMIUM_ARGS
from imagegen import encode, scene



def picture(k: int, w: int = 320, h: int = 240) -> Image.Image:
    """A benign landscape with big shapes of its own, so different k are far apart in PDQ."""
    rng = np.random.default_rng(100 + k)
    img = scene(w, h, seed=k)
    d = ImageDraw.Draw(img)
    for i in range(8):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        s = int(rng.integers(30, 90))
        col = tuple(int(v) for v in rng.integers(0, 255, 3))
        if (k + i) % 2:
            d.ellipse([x0, y0, x0 + s, y0 + s], fill=col)
        else:
            d.rectangle([x0, y0, x0 + s, y0 + s // 2], fill=col)
    return img


def png(k: int, **kw) -> bytes:
    return encode(picture(k, **kw), "PNG")


def generated_png() -> bytes:
    """A benign picture carrying AUTOMATIC1111-style generation parameters."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                                "CFG scale: 7, Seed: 1234, Size: 320x240, Model: sd_xl_base_1.0")
    return encode(picture(9), "PNG", pnginfo=info)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    files = {f"a{k}.png": png(k) for k in range(6)}
    files["near/a0_small.jpg"] = encode(picture(0).resize((200, 150)), "JPEG", quality=80)
    files["near/a1_flip.png"] = encode(picture(1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG")
    files["near/a2_q60.jpg"] = encode(picture(2), "JPEG", quality=60)
    files["dups/a3_copy.png"] = files["a3.png"]
    files["bad/truncated.jpg"] = encode(picture(7), "JPEG")[:300]
    files["bad/garbage.png"] = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20
    files["bad/empty.jpg"] = b""
    files["notes/readme.txt"] = b"case notes: a lighthouse, some hills\n"
    files["gen/lighthouse.png"] = generated_png()
    inner = zip_bytes({
        "x/a4_in_zip.png": files["a4.png"],
        "x/rot.png": encode(picture(5).transpose(Image.Transpose.ROTATE_90), "PNG"),
        "x/broken.jpg": encode(picture(8), "JPEG")[:200],
    })
    files["outer.tar"] = tar_bytes({"plain.png": png(6), "inner.zip": inner})
    files["bomb.zip"] = zip_bytes({"zeros.bin": b"\x00" * (30 << 20)})
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    os.symlink("loop", root / "loop")  # a link to itself
    os.symlink("..", root / "near" / "up")  # a directory loop
    return root


def rel(root: Path, p: str) -> str:
    return os.path.relpath(p, root) if p.startswith(str(root)) else p


@pytest.fixture(scope="module")
def bank_db(tmp_path_factory):
    """A bank database with one benign PDQ (picture 2) in category 1 and an allow bank."""
    from consentry.banks.service import BankService
    from consentry.db import Database
    from consentry.signals.pdq import pdq_from_image

    d = tmp_path_factory.mktemp("banks")
    db = Database(f"sqlite:///{d / 'consentry.db'}")
    db.upgrade()
    svc = BankService(db)
    svc.create_bank("test-known", kind="custom")
    svc.add_entry("test-known", "pdq", pdq_from_image(picture(2))[0], quality=100, category="1",
                  source="test", external_ids=["vics:77"])
    svc.add_entry("test-known", "md5", hashlib.md5(png(6)).hexdigest(), category="2", source="test")
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, bank_db):
    from consentry.scan.pipeline import ScanOptions, run_scan

    base = tmp_path_factory.mktemp("scan")
    root = build_tree(base / "tree")
    kg = base / "NSRLFile.txt"
    kg.write_text('"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\n'
                  f'"{hashlib.sha1(b"case notes: a lighthouse, some hills" + bytes([10])).hexdigest().upper()}",'
                  f'"{"0" * 32}","00000000","readme.txt",37,1,"1",""\n'
                  f'"{"0" * 40}","{hashlib.md5(png(3)).hexdigest().upper()}","00000000","a3.png",1,1,"1",""\n')
    opts = ScanOptions([str(root)], base / "out", known_good=kg, workers=2, database=bank_db,
                       examiner="A. Examiner", case_id="CASE-7")
    summary = run_scan(opts)
    rows = {rel(root, json.loads(x)["path"]): json.loads(x)
            for x in (base / "out" / "results.jsonl").read_text().splitlines()}
    return {"root": root, "base": base, "out": base / "out", "summary": summary, "rows": rows, "opts": opts}


# --------------------------------------------------------------------------- the scan itself
def test_counts_groups_and_errors(scanned):
    s, rows = scanned["summary"], scanned["rows"]
    c = s.counts
    assert c["files"] == 15 and c["archive_members"] == 5 and c["archives"] == 3
    assert s.scanned == 19  # 15 files + 4 members through a worker; the bomb member is stopped by the walker
    assert c["duplicate_stacks"] == 2 and c["duplicate_files"] == 4
    assert c["known_good"] == 3
    tri = json.loads((scanned["out"] / "results.jsonl").read_text().splitlines()[0])  # any row parses
    assert "path" in tri

    # exact duplicate stacks: a3 twice on disk, a4 on disk and inside the zip inside the tar
    stacks = {}
    for p, r in rows.items():
        if r["duplicate_stack"]:
            stacks.setdefault(r["duplicate_stack"], set()).add(p)
    assert sorted(map(sorted, stacks.values())) == [
        ["a3.png", "dups/a3_copy.png"], ["a4.png", "outer.tar!/inner.zip!/x/a4_in_zip.png"]]

    # near-duplicate groups: resized JPEG, mirror, re-encode, and a rotation inside nested archives
    groups = {}
    for p, r in rows.items():
        if r["near_duplicate_group"]:
            groups.setdefault(r["near_duplicate_group"], set()).add(p)
    assert sorted(map(sorted, groups.values())) == [
        ["a0.png", "near/a0_small.jpg"], ["a1.png", "near/a1_flip.png"], ["a2.png", "near/a2_q60.jpg"],
        ["a5.png", "outer.tar!/inner.zip!/x/rot.png"]]

    errors = {p: r["error"] for p, r in rows.items() if r["status"] == "error"}
    assert set(errors) == {"bad/truncated.jpg", "bad/garbage.png", "bad/empty.jpg",
                           "outer.tar!/inner.zip!/x/broken.jpg", "bomb.zip!/zeros.bin"}
    assert "empty" in errors["bad/empty.jpg"]
    assert "zip bomb" in errors["bomb.zip!/zeros.bin"]
    assert c["errors"] == 5
    # digests survive a decode failure; archives are hashed and listed with their members
    assert rows["bad/truncated.jpg"]["sha256"] == hashlib.sha256((scanned["root"] / "bad/truncated.jpg").read_bytes()).hexdigest()
    assert rows["outer.tar"]["kind"] == "archive" and rows["outer.tar"]["members"] == 2
    assert rows["outer.tar!/inner.zip"]["kind"] == "archive" and rows["outer.tar!/inner.zip"]["members"] == 3
    assert rows["outer.tar!/inner.zip!/x/rot.png"]["parent"] == str(scanned["root"] / "outer.tar!/inner.zip")
    # links are recorded and never followed
    assert rows["loop"]["status"] == "skipped" and "not followed" in rows["loop"]["note"]
    assert rows["near/up"]["kind"] == "symlink" and not any(p.startswith("near/up/") for p in rows)
    assert rows["notes/readme.txt"]["content_type"] == "unknown" and rows["notes/readme.txt"]["status"] == "ok"


def test_known_good_matches_and_ai_evidence(scanned):
    rows = scanned["rows"]
    kg = {p for p, r in rows.items() if r["known_good"]}
    assert kg == {"notes/readme.txt", "a3.png", "dups/a3_copy.png"}
    # bank matches with their categories: PDQ of picture 2 (and its JPEG re-encode), MD5 of plain.png
    cats = {p: r["match_categories"] for p, r in rows.items() if r["match_categories"]}
    assert cats == {"a2.png": [{"bank": "test-known", "category": "1"}],
                    "near/a2_q60.jpg": [{"bank": "test-known", "category": "1"}],
                    "outer.tar!/plain.png": [{"bank": "test-known", "category": "2"}]}
    assert rows["near/a2_q60.jpg"]["matches"][0]["signal_type"] == "pdq"
    assert rows["near/a2_q60.jpg"]["matches"][0]["distance"] > 0
    ai = {p: r for p, r in rows.items() if r["ai_verdict"] == "ai_generated"}
    assert set(ai) == {"gen/lighthouse.png"}
    with open(scanned["out"] / "results.csv", newline="") as fh:
        by_path = {rel(scanned["root"], r["path"]): r for r in csv.DictReader(fh)}
    # withheld in the spreadsheet too unless --show-prompts (issue 17); results.jsonl keeps it
    assert by_path["gen/lighthouse.png"]["prompt"].startswith("[prompt withheld: 4 words, fingerprint ")
    assert by_path["gen/lighthouse.png"]["model"] == "sd_xl_base_1.0"
    assert "AUTOMATIC1111" in by_path["gen/lighthouse.png"]["generator"]
    assert by_path["a2.png"]["matches"] == "test-known:1"
    assert len(by_path) == len(rows)


def test_vics_export_and_import_keep_categories(scanned, tmp_path):
    from consentry.banks.formats import vics
    from consentry.banks.service import BankService
    from consentry.db import Database

    doc = json.loads((scanned["out"] / "vics.json").read_text())
    media = doc["value"]
    with_sha = [r for r in scanned["rows"].values() if r["kind"] in ("file", "member") and r["sha256"]]
    assert len(media) == len(with_sha)
    a2 = next(m for m in media if m.get("SHA256") == scanned["rows"]["a2.png"]["sha256"])
    assert a2["Category"] == 1 and a2["MD5"] == scanned["rows"]["a2.png"]["md5"].upper()
    assert "near-duplicate-group" in a2["Tags"] and a2["PDQ"] == scanned["rows"]["a2.png"]["pdq"]
    # import the export as a bank: categories come along, per hash
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.upgrade()
    svc = BankService(db)
    svc.create_bank("seized", kind="custom")
    with open(scanned["out"] / "vics.json", "rb") as fh:
        report = svc.add_records("seized", vics.read(fh))
    assert not report.errors and report.added >= len(media) * 3
    e = svc.find_entry("seized", "sha256", scanned["rows"]["a2.png"]["sha256"])
    assert e is not None and e.category == "1" and "near-duplicate-group-3" in e.tags
    db.dispose()


def test_second_run_skips_everything(scanned):
    from consentry.scan.pipeline import run_scan

    before = (scanned["out"] / "results.jsonl").read_text()
    again = run_scan(scanned["opts"])
    assert again.scanned == 0
    # every file and member (the bomb's stopped member too: its archive is skipped whole)
    assert again.skipped == scanned["summary"].counts["content"] == 20
    assert again.counts == scanned["summary"].counts
    assert _normalise(before) == _normalise((scanned["out"] / "results.jsonl").read_text())


def _normalise(jsonl: str) -> list[dict]:
    out = []
    for line in jsonl.splitlines():
        d = json.loads(line)
        if isinstance(d.get("assessment"), dict):
            d["assessment"].pop("analysed_at", None)
        out.append(d)
    return sorted(out, key=lambda d: d["path"])


# --------------------------------------------------------------------------- reports
def test_custody_hashes_match_the_files(scanned):
    c = json.loads((scanned["out"] / "chain-of-custody.json").read_text())
    assert c["tool"]["name"] == "Consentry" and c["examiner"] == "A. Examiner" and c["case_id"] == "CASE-7"
    assert c["started_at"].endswith("Z") and c["finished_at"].endswith("Z") and c["host"]
    assert c["input_paths"] == [str(scanned["root"])]
    names = {r["file"] for r in c["report_files"]}
    assert names == {"report.html", "report.pdf", "results.jsonl", "results.csv", "vics.json", "scan.db"}
    for r in c["report_files"]:
        assert hashlib.sha256((scanned["out"] / r["file"]).read_bytes()).hexdigest() == r["sha256"], r["file"]
    on_disk = {str(p) for p in scanned["root"].rglob("*") if p.is_file() and not p.is_symlink()}
    listed = {f["path"]: f for f in c["input_files"]}
    assert on_disk <= set(listed)
    for p in on_disk:
        assert listed[p]["sha256"] == hashlib.sha256(Path(p).read_bytes()).hexdigest(), p
    member = listed[str(scanned["root"] / "outer.tar!/inner.zip!/x/a4_in_zip.png")]
    assert member["sha256"] == hashlib.sha256((scanned["root"] / "a4.png").read_bytes()).hexdigest()


def test_pdf_renders_page_one(scanned, tmp_path):
    pdf = scanned["out"] / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
                   check=True, capture_output=True, timeout=60)
    page = next(tmp_path.glob("p*.png"))
    with Image.open(page) as im:
        assert im.width > 300 and im.height > 400
        assert len(np.unique(np.asarray(im.convert("L")))) > 2  # not blank
    # no pictures in the PDF unless asked for
    listed = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True)
    assert len(listed.stdout.strip().splitlines()) == 2  # the header lines only


def test_html_report_renders_in_chromium(scanned, tmp_path):
    from playwright.sync_api import sync_playwright

    html = (scanned["out"] / "report.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<link" not in html
    # verdicts in words people read, not codes (issue 11, point 14)
    assert ">AI-generated<" in html and ">ai_generated<" not in html
    external = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto((scanned["out"] / "report.html").as_uri())
        assert page.locator("#chart rect").count() == 9
        assert page.locator("text=Near-duplicate groups").count() >= 1
        thumbs = page.locator("button.thumb img")
        assert thumbs.count() >= 8
        first = thumbs.first
        assert "blur" in first.evaluate("e => getComputedStyle(e).filter")
        assert "grayscale" in first.evaluate("e => getComputedStyle(e).filter")
        first.click()
        assert first.evaluate("e => getComputedStyle(e).filter") == "none"
        assert page.locator("button.thumb").first.get_attribute("aria-pressed") == "true"
        page.keyboard.press("Enter")  # focused button: hides it again
        assert "blur" in first.evaluate("e => getComputedStyle(e).filter")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert external == []
    with Image.open(shot) as im:
        assert im.width == 1200 and im.height > 900
    # prompts are withheld from the reports unless --show-prompts (issue 17): count and fingerprint only
    assert "a lighthouse at dusk" not in html and "prompt withheld: 4 words" in html and "CASE-7" in html


# --------------------------------------------------------------------------- crash safety
def _big_tree(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    for k in range(n):
        (root / f"d{k % 4}").mkdir(exist_ok=True)
        (root / f"d{k % 4}" / f"p{k:03d}.png").write_bytes(encode(picture(k, 480, 360), "PNG"))
    (root / "pack.zip").write_bytes(zip_bytes({f"z{k}.png": png(200 + k) for k in range(6)}))
    return root


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path):
    from consentry.scan.pipeline import ScanOptions, run_scan

    root = _big_tree(tmp_path / "tree", 60)
    out = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if k != "CONSENTRY_DEBUG"}
    env["CONSENTRY_HOME"] = str(tmp_path / "home")  # no bank database: nothing to match
    cmd = [sys.executable, "-m", "consentry", "scan", str(root), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    recorded = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "scan.db").exists():
                try:
                    with sqlite3.connect(out / "scan.db", timeout=5) as conn:
                        recorded = conn.execute("SELECT COUNT(*) FROM items WHERE kind = 'file'").fetchone()[0]
                except sqlite3.OperationalError:
                    recorded = 0
                if recorded >= 8:
                    break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers
        proc.wait(timeout=30)
    assert 8 <= recorded < 60, "the scan was not caught mid-way"
    assert not (out / "report.html").exists()

    resumed = run_scan(ScanOptions([str(root)], out, match=False, workers=1))
    assert resumed.skipped >= recorded and resumed.scanned == 66 - resumed.skipped
    fresh = run_scan(ScanOptions([str(root)], tmp_path / "fresh", match=False, workers=1))
    assert fresh.scanned == 66 and fresh.counts == resumed.counts
    assert _normalise((out / "results.jsonl").read_text()) == _normalise((tmp_path / "fresh" / "results.jsonl").read_text())
    with sqlite3.connect(out / "scan.db") as conn:
        runs = conn.execute("SELECT status FROM runs ORDER BY id").fetchall()
    assert [r[0] for r in runs] == ["running", "finished"]  # the killed run never finished


def test_batched_rows_are_committed_whole_and_on_time(tmp_path, monkeypatch):
    """Rows are committed in small batches (issue 17); another reader, like a resumed scan after a
    kill -9, sees only committed rows, and a batch is committed when full, when old, or on close."""
    from consentry.scan import store as store_mod
    from consentry.scan.store import ScanStore
    from consentry.scan.worker import FileResult

    clock = [1000.0]
    monkeypatch.setattr(store_mod.time, "monotonic", lambda: clock[0])
    s = ScanStore(tmp_path / "scan.db")
    run = s.start_run("host", "inline", 1, [])
    s.start_batching(max_rows=3, max_seconds=0.5)

    def seen() -> int:
        with sqlite3.connect(tmp_path / "scan.db", timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def add(i: int) -> None:
        s.record_result(FileResult(f"/e/{i}.png", "file", None, 10, 1, sha256=f"{i:064x}"), run,
                        matches=None, match_key=None)

    add(0), add(1)
    assert seen() == 0  # an open batch is invisible: a kill -9 now would lose these two, not more
    add(2)
    assert seen() == 3  # full: committed
    add(3)
    s.tick()
    assert seen() == 3  # young: kept open
    clock[0] += 0.6
    s.tick()
    assert seen() == 4  # old: committed as the next file starts
    add(4)
    s.set_known_good({})  # a transaction of its own commits the open batch first
    assert seen() == 5
    add(5)
    s.close()
    assert seen() == 6


# --------------------------------------------------------------------------- Ray
def test_ray_executor_gives_the_same_results_as_local(tmp_path):
    ray = pytest.importorskip("ray")
    from consentry.scan.pipeline import ScanOptions, run_scan

    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.png").write_bytes(png(0))
    (root / "a_small.jpg").write_bytes(encode(picture(0).resize((160, 120)), "JPEG", quality=85))
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    (root / "pack.zip").write_bytes(zip_bytes({"b.png": png(1), "again.png": png(0)}))
    local = run_scan(ScanOptions([str(root)], tmp_path / "local", match=False, workers=1, include_thumbnails=True))
    # --include-thumbnails puts the pictures into the PDF (the near-duplicate group's two photos)
    listed = subprocess.run(["pdfimages", "-list", str(tmp_path / "local" / "report.pdf")],
                            capture_output=True, text=True, check=True)
    assert len(listed.stdout.strip().splitlines()) - 2 >= 2
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_scan(ScanOptions([str(root)], tmp_path / "ray", match=False, executor="ray"))
    finally:
        ray.shutdown()
    assert remote.scanned == local.scanned == 5
    assert remote.counts == local.counts
    assert _normalise((tmp_path / "ray" / "results.jsonl").read_text()) == \
        _normalise((tmp_path / "local" / "results.jsonl").read_text())
    with sqlite3.connect(tmp_path / "ray" / "scan.db") as conn:
        assert conn.execute("SELECT executor FROM runs").fetchone()[0] == "ray"


# --------------------------------------------------------------------------- pieces
def test_expansion_budget_across_members(tmp_path):
    from consentry.scan.walk import Walker, WalkLimits, WalkRecord, WorkItem

    p = tmp_path / "many.zip"
    p.write_bytes(zip_bytes({f"m{i}.bin": os.urandom(1 << 20) for i in range(5)}))
    out = list(Walker(WalkLimits(max_expansion_bytes=(3 << 20) + 10)).walk([p]))
    items = [w for w in out if isinstance(w, WorkItem)]
    errs = [w for w in out if isinstance(w, WalkRecord) and w.kind == "member"]
    arch = [w for w in out if isinstance(w, WalkRecord) and w.kind == "archive"]
    assert len(items) == 3 and len(errs) == 1 and "expansion limit" in errs[0].error
    assert arch[0].status == "error" and "not scanned" in arch[0].error
    # nesting deeper than the limit is recorded, not opened
    deep = zip_bytes({"img.png": png(1)})
    for _ in range(3):
        deep = zip_bytes({"nested.zip": deep})
    (tmp_path / "deep.zip").write_bytes(deep)
    out = list(Walker(WalkLimits(max_depth=2)).walk([tmp_path / "deep.zip"]))
    assert any(isinstance(w, WalkRecord) and "nested deeper" in (w.error or "") for w in out)
    assert not any(isinstance(w, WorkItem) for w in out)


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _tar_of_zeros(path, mode: str, sizes: list[int]) -> None:
    """Members of zeros, streamed (never held in memory): a few hundred MB compress to KB."""
    import tarfile

    with tarfile.open(path, mode, compresslevel=1) as tf:
        for i, n in enumerate(sizes):
            ti = tarfile.TarInfo(f"zeros{i}.bin")
            ti.size = n
            tf.addfile(ti, io.BufferedReader(_Zeros(n), 1 << 20))
        ti = tarfile.TarInfo("after.txt")
        ti.size = 5
        tf.addfile(ti, io.BytesIO(b"hello"))


@pytest.mark.parametrize("mode,ext", [("w:gz", "tar.gz"), ("w:bz2", "tar.bz2")])
def test_tar_bomb_members_skipped_or_not_count_and_stop_the_archive(tmp_path, monkeypatch, mode, ext):
    import _compression

    from consentry.scan.walk import Walker, WalkLimits, WalkRecord, WorkItem

    inflated = 0
    real = _compression.DecompressReader.readinto

    def counting(self, b):
        nonlocal inflated
        n = real(self, b)
        inflated += n
        return n

    # one member far over the member limit (skipped, but tarfile decompresses it to get past it)
    big = tmp_path / f"big.{ext}"
    _tar_of_zeros(big, mode, [(256 if mode == "w:gz" else 48) << 20])
    # many members each over the member limit, together over the archive's expansion limit
    many = tmp_path / f"many.{ext}"
    _tar_of_zeros(many, mode, [3 << 20] * 6)
    assert big.stat().st_size < 2_000_000 and many.stat().st_size < 200_000
    monkeypatch.setattr(_compression.DecompressReader, "readinto", counting)
    limits = WalkLimits(max_member_bytes=1 << 20, max_expansion_bytes=8 << 20)
    for path in (big, many):
        inflated = 0
        t0 = time.monotonic()
        out = list(Walker(limits).walk([path]))
        arch = [w for w in out if isinstance(w, WalkRecord) and w.kind == "archive"]
        assert len(arch) == 1 and arch[0].status == "error", arch
        assert "expansion limit" in arch[0].error and "bomb" in arch[0].error
        assert not any(isinstance(w, WorkItem) for w in out)  # after.txt is past the bomb
        assert inflated <= (8 << 20) + (1 << 20), f"{inflated} bytes decompressed"
        assert time.monotonic() - t0 < 10
    members = [w for w in out if isinstance(w, WalkRecord) and w.kind == "member"]
    assert [m.path.rsplit("!/", 1)[1] for m in members] == ["zeros0.bin", "zeros1.bin", "zeros2.bin"]
    assert "over the limit" in members[0].error and "tar bomb" in members[2].error


def test_tar_members_within_limits_still_scan(tmp_path):
    from consentry.scan.walk import Walker, WalkLimits, WalkRecord, WorkItem

    p = tmp_path / "ok.tar.gz"
    _tar_of_zeros(p, "w:gz", [1000, 2000])
    out = list(Walker(WalkLimits(max_member_bytes=1 << 20, max_expansion_bytes=8 << 20)).walk([p]))
    assert sorted(w.path.rsplit("!/", 1)[1] for w in out if isinstance(w, WorkItem)) == \
        ["after.txt", "zeros0.bin", "zeros1.bin"]
    arch = [w for w in out if isinstance(w, WalkRecord) and w.kind == "archive"]
    assert arch[0].status == "ok" and arch[0].members == 3


def test_known_good_plain_lines_and_csv(tmp_path):
    from consentry.scan.triage import load_known_good

    plain = tmp_path / "kg.txt"
    plain.write_text(f"# comment\n{'a' * 32}  file.jpg\n{'B' * 40}\nsha256:{'c' * 64}\nnot-a-hash\n")
    kg = load_known_good(plain)
    assert kg.hashes["md5"] == {"a" * 32} and kg.hashes["sha1"] == {"b" * 40}
    assert kg.hashes["sha256"] == {"c" * 64} and kg.bad_lines == 1
    rds = tmp_path / "rds.csv"
    rds.write_text('"sha256","sha1","md5","file_name"\n' f'"{"D" * 64}","{"e" * 40}","{"f" * 32}","x"\n"bad","","",""\n')
    kg = load_known_good(rds)
    assert kg.hashes["sha256"] == {"d" * 64} and kg.hashes["md5"] == {"f" * 32} and kg.bad_lines == 1


def test_unreadable_file_is_an_error_and_the_scan_goes_on_as_nobody(tmp_path):
    """As root, permissions cannot make a file unreadable: a forked child drops to 'nobody' (after
    a warm-up scan has imported everything) and scans in-process."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the 'nobody' user (the test below covers non-root)")
    import tempfile

    from consentry.scan.pipeline import ScanOptions, run_scan

    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "w.png").write_bytes(png(3))
    run_scan(ScanOptions([str(warm)], tmp_path / "warm-out", match=False, evidence=False))
    work = Path(tempfile.mkdtemp(prefix="consentry-unreadable-", dir="/tmp"))
    try:
        work.chmod(0o777)
        root = work / "t"
        root.mkdir(mode=0o755)
        (root / "ok.png").write_bytes(png(1))
        (root / "ok.png").chmod(0o644)
        (root / "locked.png").write_bytes(png(2))
        (root / "locked.png").chmod(0)
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                s = run_scan(ScanOptions([str(root)], work / "out", match=False, evidence=False))
                code = 0 if (s.counts["errors"], s.counts["photos"]) == (1, 1) else 4
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        rows = [json.loads(line) for line in (work / "out" / "results.jsonl").read_text().splitlines()]
        by_name = {Path(row["path"]).name: row for row in rows}
        assert by_name["ok.png"]["error"] is None
        assert "permission" in by_name["locked.png"]["error"].lower()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_unreadable_file_is_an_error_and_the_scan_goes_on(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions cannot make a file unreadable")
    from consentry.scan.pipeline import ScanOptions, run_scan

    root = tmp_path / "t"
    root.mkdir()
    (root / "ok.png").write_bytes(png(1))
    locked = root / "locked.png"
    locked.write_bytes(png(2))
    locked.chmod(0)
    try:
        s = run_scan(ScanOptions([str(root)], tmp_path / "out", match=False, reports=False))
    finally:
        locked.chmod(0o644)
    assert s.counts["errors"] == 1 and s.counts["photos"] == 1


def test_cli_bad_options_are_clean_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CONSENTRY_DEBUG"}
    env["CONSENTRY_HOME"] = str(tmp_path / "home")
    (tmp_path / "a.png").write_bytes(png(1))
    base = [sys.executable, "-m", "consentry", "scan", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]
    r = subprocess.run(base + ["--bank", "nope"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "database" in r.stderr
    r = subprocess.run(base + ["--ray-address", "x:1"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--executor ray" in r.stderr
    r = subprocess.run(base + ["--no-evidence"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "scanned 1 file" in r.stderr and (tmp_path / "o" / "report.html").exists()
    r = subprocess.run(base + ["--no-evidence"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "scanned 0 file" in r.stderr and "skipped 1 already done" in r.stderr
    shutil.rmtree(tmp_path / "o")


def test_scan_workers_keep_picture_buffers_on_the_heap():
    """A scan worker raises glibc's mmap threshold once (bench/scan_bench.py: a quarter of a bare
    decode + PDQ loop goes to zero-filling fresh maps); elsewhere it is a no-op, never an error."""
    import platform

    from consentry.scan import allocator

    allocator._done = None
    applied = allocator.tune_for_scanning()
    assert applied is allocator.tune_for_scanning()  # once per process
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied is True
    else:
        assert applied is False


def test_a_boxed_copy_on_the_evidence_matches_through_its_trimmed_picture(tmp_path):
    """Issue 21 in scans: with banks to match, workers also hash the trimmed picture (letterbox bars
    removed); the boxed copy of a banked picture is matched and says how; exports keep to the
    standard hashes; with the canonical query off the same copy is missed."""
    from PIL import Image

    from consentry.banks.service import BankService
    from consentry.config import MediaLimits
    from consentry.db import Database
    from consentry.scan.pipeline import ScanOptions, run_scan
    from consentry.signals.pdq import pdq_from_image
    from imagegen import encode, scene

    pic = scene(640, 480, 51)
    db = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    db.upgrade()
    try:
        BankService(db).create_bank("victims", "ncii")
        BankService(db).add_entry("victims", "pdq", pdq_from_image(pic)[0], quality=100)
        ev = tmp_path / "ev"
        ev.mkdir()
        boxed = Image.new("RGB", (640, 1138))
        boxed.paste(pic, (0, 329))
        (ev / "boxed.png").write_bytes(encode(boxed, "PNG"))
        (ev / "other.png").write_bytes(encode(scene(640, 480, 52), "PNG"))
        for on in (True, False):
            out = tmp_path / f"out-{on}"
            run_scan(ScanOptions([str(ev)], out, database=db, limits=MediaLimits().with_(canonical_query=on)))
            rows = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line)
                    for line in (out / "results.jsonl").read_text().splitlines()}
            assert rows["other.png"]["matches"] == []
            assert "pdq_extra" not in rows["boxed.png"]  # local signals stay out of the exports
            if on:
                (m,) = rows["boxed.png"]["matches"]
                assert m["bank"] == "victims" and m["query_variant"] in ("trimmed", "screenshot")
            else:
                assert rows["boxed.png"]["matches"] == []
    finally:
        db.dispose()


def test_a_letterboxed_clip_on_the_evidence_matches_a_banked_video(tmp_path):
    """Issue 21 in scans, videos: a clip re-cut from a banked video (stored with every frame) and
    posted inside 9:16 bars is matched through its frames without the bars, with where it starts;
    the exports keep to the standard hashes; with the canonical query off it is missed."""
    from consentry.banks.service import BankService
    from consentry.config import MediaLimits
    from consentry.db import Database
    from consentry.media.content import Content
    from consentry.scan.pipeline import ScanOptions, run_scan
    from consentry.signals.vpdq import VPDQSignal, frames_to_json
    from test_vpdq_dense import _video

    db = Database(f"sqlite:///{tmp_path / 'consentry.db'}")
    db.upgrade()
    try:
        source = Content.from_bytes(_video(tmp_path / "s.mp4", 12), MediaLimits())
        BankService(db).create_bank("victims", "ncii")
        BankService(db).add_entry("victims", "vpdq", frames_to_json(VPDQSignal.compute_frames(source, dense=True)))
        ev = tmp_path / "ev"
        ev.mkdir()
        _video(ev / "clip.mp4", 6, start=3.4, boxed=True)
        for on in (True, False):
            out = tmp_path / f"out-{on}"
            run_scan(ScanOptions([str(ev)], out, database=db, limits=MediaLimits().with_(canonical_query=on)))
            (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            assert "vpdq_extra" not in row and len(row["vpdq"]) >= 5
            if on:
                (m,) = row["matches"]
                assert m["bank"] == "victims" and m["query_variant"] == "trimmed"
                assert m["offset_seconds"] == pytest.approx(3.4, abs=0.3)
            else:
                assert row["matches"] == []
    finally:
        db.dispose()
