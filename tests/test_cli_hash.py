"""`consentry hash`: output shape, exit codes and every kind of bad input, via the real CLI."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from imagegen import encode, scene

KEYS = ["path", "content_type", "size", "sha256", "md5", "pdq", "pdq_quality", "vpdq", "error"]


def run_cli(*args, env=None, cwd=None):
    e = dict(os.environ)
    e.pop("CONSENTRY_DEBUG", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "consentry", *map(str, args)],
        capture_output=True, text=True, env=e, cwd=cwd, timeout=300,
    )


def lines(proc):
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _png_bomb() -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    # a real zlib stream of zeros that would inflate to 30 GB of pixels
    comp = zlib.compressobj(9)
    idat = comp.compress(b"\x00" * (8 << 20)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def bad_inputs(tmp_path: Path, testvectors: Path) -> dict[str, Path]:
    good_jpeg = encode(scene(320, 240), "JPEG", quality=90)
    mp4 = (testvectors / "videos" / "doorknob-hd-no-bar.mp4").read_bytes()
    files = {
        "empty.jpg": b"",
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 3],
        "text-named.jpg": b"this is a text file, not a photo\n",
        "bomb.png": _png_bomb(),
        "random.bin": os.urandom(4096),
        "fake.mp4": mp4[:32] + os.urandom(20000),
        "truncated.mp4": mp4[:5000],
        "header-only.gif": b"GIF89a\x10\x00\x10\x00",
    }
    out = {}
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        out[name] = p
    return out


def test_every_malformed_input_gives_an_error_line_and_exit_1(bad_inputs):
    proc = run_cli("hash", *bad_inputs.values())
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    rows = lines(proc)
    assert [Path(r["path"]).name for r in rows] == list(bad_inputs)
    for row in rows:
        assert list(row) == KEYS
        assert row["error"], row["path"]
        assert len(row["error"]) < 200
        assert row["pdq"] is None and row["vpdq"] is None
    by_name = {Path(r["path"]).name: r for r in rows}
    assert "empty" in by_name["empty.jpg"]["error"]
    assert "pixel" in by_name["bomb.png"]["error"]
    # digests still identify files that could not be decoded (exact matching works on them)
    assert by_name["random.bin"]["sha256"] and by_name["random.bin"]["content_type"] == "unknown"
    assert by_name["fake.mp4"]["content_type"] == "video"


def test_directories_recurse_and_good_files_exit_0(tmp_path, testvectors):
    d = tmp_path / "in" / "nested"
    d.mkdir(parents=True)
    (tmp_path / "in" / "a.png").write_bytes(encode(scene(100, 80, 1), "PNG"))
    # a real photo with a misleading name is still hashed: type comes from magic bytes
    (d / "looks-like-text.txt").write_bytes(encode(scene(100, 80, 2), "JPEG"))
    (d / "clip.bin").write_bytes((testvectors / "videos" / "test-padded-dimensions.mp4").read_bytes())
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    proc = run_cli("hash", tmp_path / "in")
    assert proc.returncode == 0, proc.stderr
    rows = lines(proc)
    names = sorted(Path(r["path"]).name for r in rows)
    assert names == ["a.png", "clip.bin", "looks-like-text.txt"]
    for r in rows:
        assert r["error"] is None
        assert len(r["sha256"]) == 64 and len(r["md5"]) == 32
        if r["content_type"] == "photo":
            assert len(r["pdq"]) == 64 and r["pdq_quality"] >= 50 and r["vpdq"] is None
        else:
            assert r["content_type"] == "video" and r["pdq"] is None
            assert len(r["vpdq"]) == 5 and r["vpdq"][0].count(",") == 2


def test_mixed_good_and_bad_exit_1_and_all_lines_printed(tmp_path, testvectors):
    good = testvectors / "pdq" / "misc-images" / "wee.jpg"
    proc = run_cli("hash", good, tmp_path / "missing.jpg")
    assert proc.returncode == 1
    rows = lines(proc)
    assert rows[0]["pdq"] == "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d"
    assert rows[1]["error"] == "no such file"


def test_usage_errors_exit_2():
    assert run_cli("hash").returncode == 2
    proc = run_cli("hash", "--format", "xml", ".")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert run_cli("no-such-command").returncode == 2


def test_table_format(testvectors):
    proc = run_cli("hash", "--format", "table", testvectors / "pdq" / "misc-images" / "wee.jpg",
                   env={"COLUMNS": "400"})
    assert proc.returncode == 0
    assert "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d" in proc.stdout


def test_limits_from_environment(testvectors):
    proc = run_cli("hash", testvectors / "pdq" / "bridge-mods" / "aaa-orig.jpg",
                   env={"CONSENTRY_MAX_PIXELS": "1000"})
    assert proc.returncode == 1
    assert "pixel" in lines(proc)[0]["error"]
    proc = run_cli("hash", ".", env={"CONSENTRY_MAX_PIXELS": "lots"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "CONSENTRY_MAX_PIXELS" in proc.stderr


def test_parallel_workers_give_the_same_lines_in_order(testvectors):
    target = testvectors / "pdq" / "bridge-mods"
    one = run_cli("hash", target)
    two = run_cli("hash", "--workers", "2", target)
    assert one.returncode == two.returncode == 0
    assert lines(one) == lines(two) and len(lines(one)) == 12
