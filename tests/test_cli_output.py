"""The CLI's output: results on stdout even with a progress bar on the terminal, tables that fit
80 columns, help with an example and no ``<bool>``, counts in words, weak-query warnings."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen import encode, scene

WEE = "pdq/misc-images/wee.jpg"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONSENTRY_DEBUG", "DATABASE_URL")}
    env.update(CONSENTRY_HOME=str(home), TERM="xterm-256color", **extra)
    return env


def _run(args, env, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consentry", *map(str, args)], capture_output=True, text=True,
                          env=env, input=stdin, timeout=300, cwd=cwd)


def run_with_terminal(args, env, stdout: str, cwd=None) -> tuple[int, bytes, bytes]:
    """Run the CLI with stderr on a pseudo-terminal (so the progress bar shows) and stdout on a
    ``"file"`` or a ``"pipe"``: (exit status, what stdout got, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out_file = tempfile.TemporaryFile() if stdout == "file" else None
    proc = subprocess.Popen([sys.executable, "-m", "consentry", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=out_file if out_file else subprocess.PIPE, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    tty = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            tty.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    piped = proc.stdout.read() if out_file is None else b""
    rc = proc.wait(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    if out_file is not None:
        out_file.seek(0)
        piped = out_file.read()
        out_file.close()
    return rc, piped, bytes(tty)


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        (d / f"p{i}.png").write_bytes(encode(scene(160, 120, seed=i + 1), "PNG"))
    return d


def _json_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


# ------------------------------------------------------------------ 11.5: results survive redirection
@pytest.mark.parametrize("stdout", ["file", "pipe"])
def test_hash_and_analyze_results_reach_stdout_with_a_progress_bar_on_the_terminal(home, photos, stdout):
    env = _env(home)
    for command, key in (("hash", "pdq"), ("analyze", "verdict")):
        rc, out, tty = run_with_terminal([command, photos], env, stdout)
        assert rc == 0, tty.decode(errors="replace")
        assert b"\x1b[?25l" in tty, f"{command}: no progress bar was shown, the test proves nothing"
        rows = _json_lines(out)
        assert sorted(Path(r["path"]).name for r in rows) == ["p0.png", "p1.png", "p2.png"], command
        assert all(r[key] for r in rows)
        assert b'{"' not in tty and b"p0.png" not in tty, f"{command}: results went to the terminal"


@pytest.mark.parametrize("stdout", ["file", "pipe"])
def test_bank_add_and_import_results_reach_stdout_with_a_progress_bar_on_the_terminal(home, photos, tmp_path,
                                                                                      stdout):
    env = _env(home)
    assert _run(["bank", "create", "b"], env).returncode == 0
    rc, out, tty = run_with_terminal(["bank", "add", "b", photos], env, stdout)
    assert rc == 0, tty.decode(errors="replace")
    assert b"\x1b[?25l" in tty
    assert len(_json_lines(out)) == 3 and b'{"' not in tty
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"md5 {i:032x}\n" for i in range(1, 200)))
    rc, out, tty = run_with_terminal(["bank", "import", "b", listing, "--format", "te"], env, stdout)
    assert rc == 0, tty.decode(errors="replace")
    assert b"\x1b[?25l" in tty
    assert _json_lines(out)[0]["added"] == 199 and b'{"' not in tty


@pytest.mark.parametrize("stdout", ["file", "pipe"])
def test_scan_report_paths_reach_stdout_with_a_progress_bar_on_the_terminal(home, photos, tmp_path, stdout):
    out_dir = tmp_path / f"scan-{stdout}"
    rc, out, tty = run_with_terminal(["scan", photos, "--out", out_dir, "--no-match", "--no-evidence"],
                                     _env(home), stdout)
    assert rc == 0, tty.decode(errors="replace")
    assert b"\x1b[?25l" in tty
    paths = out.decode().split()
    assert str(out_dir / "report.html") in paths and all(Path(p).exists() for p in paths)
    assert b"report.html" not in tty
    assert b"scanned 3 files" in tty  # the messages stay on the terminal


def test_hash_piped_into_match_on_a_terminal(home, photos):
    """The README's `consentry hash DIR | consentry match --stdin`, with a terminal on stderr."""
    env = _env(home)
    assert _run(["bank", "create", "b"], env).returncode == 0
    assert _run(["bank", "add", "b", photos / "p1.png"], env).returncode == 0
    rc, hashed, _ = run_with_terminal(["hash", photos], env, "pipe")
    assert rc == 0
    matched = _json_lines(_run(["match", "--stdin"], env, stdin=hashed.decode()).stdout.encode())
    assert [bool(m["matches"]) for m in matched] == [False, True, False]


# ------------------------------------------------------------------ 11.13: tables, --sha1, help
def test_hash_table_rows_fit_80_columns(home, testvectors):
    files = [WEE, "videos/doorknob-hd-no-bar.mp4", "missing.jpg", "pdq/bridge-mods/aaa-orig.jpg"]
    proc = _run(["hash", "--format", "table", *files], _env(home, COLUMNS="80"), cwd=testvectors)
    assert proc.returncode == 1  # missing.jpg
    lines = proc.stdout.rstrip("\n").splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    body = lines[rule + 1:]
    assert all(len(line) <= 80 for line in lines)
    assert len(body) <= 2 * len(files), proc.stdout
    assert "6227401f" in proc.stdout and "no such" in proc.stdout  # a PDQ prefix, the error
    assert "1 of 4 files could not be hashed" in proc.stderr
    wide = _run(["hash", "--format", "table", WEE], _env(home, COLUMNS="400"), cwd=testvectors)
    assert "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d" in wide.stdout


def test_every_command_has_an_example_and_no_bool_placeholder():
    from typer.testing import CliRunner

    from consentry.cli import app
    from consentry.cli_examples import command_paths

    runner = CliRunner()
    paths = [p for p, _ in command_paths(app)]
    assert {"hash", "match", "scan", "bank import", "victim submit", "audit verify"} <= set(paths)
    for path in paths:
        res = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "100"})
        assert res.exit_code == 0, (path, res.output)
        assert "Example" in res.output, f"`consentry {path} --help` has no example"
        assert "<bool>" not in res.output, f"`consentry {path} --help` shows <bool>"
    res = runner.invoke(app, ["scan", "--help"], env={"COLUMNS": "100"})
    assert "--no-match" in res.output and "--help" in res.output  # flags are still listed


def test_match_sha1(home, tmp_path):
    import hashlib

    env = _env(home)
    photo = tmp_path / "a.png"
    photo.write_bytes(encode(scene(200, 150, seed=7), "PNG"))
    sha1 = hashlib.sha1(photo.read_bytes()).hexdigest()
    listing = tmp_path / "ncmec-like.txt"
    listing.write_text(f"sha1 {sha1}\n")
    assert _run(["bank", "create", "b"], env).returncode == 0
    assert _run(["bank", "import", "b", listing, "--format", "te"], env).returncode == 0
    by_value = _json_lines(_run(["match", "--sha1", sha1.upper()], env).stdout.encode())
    assert by_value[0]["query"] == {"signal_type": "sha1", "value": sha1}
    assert [m["signal_type"] for m in by_value[0]["matches"]] == ["sha1"]
    by_file = _json_lines(_run(["match", photo], env).stdout.encode())
    assert [m["signal_type"] for m in by_file[0]["matches"]] == ["sha1"]
    by_line = _json_lines(_run(["match", "--stdin"], env, stdin=f"sha1 {sha1}\n").stdout.encode())
    assert by_line[0]["matches"]
    assert "--sha1" in _run(["match"], env).stderr  # the usage error names it


def test_analyze_text_says_its_summary_once(home, testvectors):
    proc = _run(["analyze", "--format", "text", testvectors / WEE], _env(home))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.count("Adobe Photoshop") == 1, text  # the one evidence item, not repeated as a summary
    assert text.lower().count("edited, with no indication of ai") == 1, text
    missing = _run(["analyze", "--format", "text", testvectors / "missing.jpg"], _env(home))
    assert missing.stdout.count("inconclusive") == 1 and "no such file" in missing.stdout
    assert "1 of 1 file could not be analysed" in missing.stderr


# ------------------------------------------------------------------ 11.15: scan usage, plurals
def test_scan_of_a_missing_path_is_a_usage_error_before_any_work(home, photos, tmp_path):
    out_dir = tmp_path / "out"
    proc = _run(["scan", photos, tmp_path / "no-such-dir", "--out", out_dir], _env(home))
    assert proc.returncode == 2, proc.stderr
    assert "no-such-dir" in proc.stderr and "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out_dir.exists()  # no scan.db, no reports


def test_scan_counts_are_in_words(home, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.png").write_bytes(encode(scene(160, 120, seed=3), "PNG"))
    (d / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    proc = _run(["scan", d, "--out", tmp_path / "o", "--no-match", "--no-evidence"], _env(home))
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert "scanned 2 files" in err and "1 error in this run" in err, err
    assert "1 errors" not in err and "(s)" not in err
    assert "1 error (" in err


def test_plural():
    from consentry.cli_common import plural

    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"


# ------------------------------------------------------------------ 11.11: weak queries warn
def test_match_warns_about_a_low_quality_pdq_query(home, tmp_path):
    env = _env(home)
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(grey)
    good = tmp_path / "good.png"
    good.write_bytes(encode(scene(200, 150, seed=9), "PNG"))
    assert _run(["bank", "create", "b"], env).returncode == 0
    added = _run(["bank", "add", "b", grey], env)
    assert "PDQ quality 0 < 50" in added.stdout  # bank add's wording, reused below
    m = _run(["match", grey, good], env)
    assert m.returncode == 0
    assert f"warning: {grey}: PDQ quality 0 < 50: not used to match" in " ".join(m.stderr.split())
    assert str(good) not in m.stderr  # a good photo gets no warning
    rows = _json_lines(m.stdout.encode())
    assert {x["signal_type"] for x in rows[0]["matches"]} == {"md5", "sha256"}  # exact hashes still match
    hashed = _run(["hash", grey], env).stdout
    piped = _run(["match", "--stdin"], env, stdin=hashed)
    assert "warning: " in piped.stderr and "PDQ quality 0 < 50" in piped.stderr
    assert _json_lines(piped.stdout.encode())[0]["matches"]


def test_hash_of_an_empty_folder_says_so(tmp_path):
    """An empty folder is not silently 'done': the user is told nothing was found."""
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "consentry", "hash", str(empty)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == ""
    assert f"no files found in {empty}" in r.stderr


def test_redirected_summaries_are_not_broken_at_80_columns(tmp_path):
    """A scan's summary sent to a file keeps each sentence on its line (a log to grep), where
    Rich used to break it at 80 columns in the middle of a sentence."""
    ev = tmp_path / "ev"
    ev.mkdir()
    for i in range(3):
        (ev / f"p{i}.png").write_bytes(encode(scene(96, 64, i), "PNG"))
    r = _run(["scan", ev, "--out", tmp_path / "out"], _env(tmp_path / "home"))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    summary = [ln for ln in lines if ln.startswith("3 files and archive members in")]
    assert summary and "0 errors" in summary[0] and "nothing matched" in summary[0], lines
    assert max(len(ln) for ln in lines) > 80  # long lines were not folded
