"""The bank, match and keys commands end to end (real processes, SQLite under CONSENTRY_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def cli(tmp_path):
    env = dict(os.environ, CONSENTRY_HOME=str(tmp_path / "home"))
    env.pop("DATABASE_URL", None)

    def run(*args, stdin: str | None = None):
        return subprocess.run([sys.executable, "-m", "consentry", *map(str, args)], capture_output=True,
                              text=True, env=env, input=stdin, timeout=300)

    return run


def jl(proc):
    return [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]


def test_bank_commands_end_to_end(cli, tmp_path, testvectors):
    assert cli("bank", "create", "hub", "--kind", "ncii", "--threshold", "pdq=31").returncode == 0
    assert cli("bank", "create", "hub").returncode == 1  # exists
    assert cli("bank", "create", "x", "--kind", "nope").returncode == 1
    assert cli("bank", "create", "y", "--threshold", "pdq").returncode == 2
    listing = tmp_path / "list.txt"
    listing.write_text(f"pdq {PDQ_A}\nmd5 {'ab' * 16}\npdq not-a-hash\n")
    imp = cli("bank", "import", "hub", listing, "--format", "te", "--errors-out", tmp_path / "err.jsonl")
    assert imp.returncode == 1  # one bad record
    assert jl(imp)[0]["added"] == 2 and jl(imp)[0]["errors"] == 1
    assert "line 3" in (tmp_path / "err.jsonl").read_text()
    again = cli("bank", "import", "hub", listing)  # format detected; nothing new
    assert jl(again)[0]["added"] == 0 and jl(again)[0]["format"] == "te"

    dih = testvectors / "pdq" / "reg-test-input" / "dih"
    add = cli("bank", "add", "hub", dih / "bridge-1-original.jpg", "--tag", "confirmed")
    assert add.returncode == 0 and {a["signal_type"] for a in jl(add)[0]["added"]} == {"md5", "sha256", "pdq"}

    m = cli("match", dih / "bridge-6-flipy.jpg", "--pdq", PDQ_A, "--md5", "ab" * 16, "--md5", "zz")
    rows = jl(m)
    assert m.returncode == 1  # the bad --md5 value
    by_query = {json.dumps(r["query"], sort_keys=True): r for r in rows}
    assert len(rows) == 4
    pdq_row = next(r for r in rows if r["query"].get("signal_type") == "pdq")
    assert [x["distance"] for x in pdq_row["matches"]] == [0] or pdq_row["matches"][0]["distance"] == 0
    file_row = next(r for r in rows if "path" in r["query"])
    hit = next(x for x in file_row["matches"] if x["signal_type"] == "pdq")
    assert hit["transform"] != "original" and isinstance(hit["distance"], int)
    assert next(r for r in rows if r["query"].get("value") == "zz")["error"]
    assert by_query

    piped = cli("hash", dih / "bridge-1-original.jpg")
    m2 = cli("match", "--stdin", stdin=piped.stdout + f"pdq {PDQ_A}\n")
    assert [len(r["matches"]) > 0 for r in jl(m2)] == [True, True]

    out = tmp_path / "export.csv"
    assert cli("bank", "export", "hub", "--format", "csv", "--out", out).returncode == 0
    assert PDQ_A in out.read_text()
    w = cli("bank", "withdraw", "hub", "--pdq", PDQ_A)
    assert jl(w)[0]["status"] == "withdrawn"
    assert jl(cli("match", "--pdq", PDQ_A))[0]["matches"] == []
    assert cli("bank", "withdraw", "hub").returncode == 2
    shown = json.loads(cli("bank", "show", "hub").stdout)
    assert shown["counts"]["withdrawn"] == 1
    assert cli("bank", "delete", "hub").returncode == 2  # not interactive, no --yes
    assert cli("bank", "delete", "hub", "--yes").returncode == 0
    assert "Traceback" not in "".join([imp.stderr, m.stderr, w.stderr])


def test_keys_commands(cli):
    created = cli("keys", "create", "--role", "matcher", "--name", "upload path")
    assert created.returncode == 0 and created.stdout.strip().startswith("cst_")
    listed = jl(cli("keys", "list"))
    assert listed[0]["role"] == "matcher" and created.stdout.strip() not in json.dumps(listed)
    assert jl(cli("keys", "revoke", str(listed[0]["id"])))[0]["revoked_at"]
    assert cli("keys", "create", "--role", "wizard").returncode == 2
    assert cli("db", "upgrade").returncode == 0


def test_bank_list_to_a_file_keeps_every_value_whole(cli):
    """Redirected (not a terminal), a listing is tab-separated lines with a header: no value is
    cut to fit an assumed 80 columns."""
    name = "victims-helpline-submissions-reviewed-by-two-people"
    description = "Hashes that victims submitted through the helpline page\tand a reviewer confirmed"
    assert cli("bank", "create", name, "--kind", "ncii", "--description", description).returncode == 0
    out = cli("bank", "list")
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert lines[0][:3] == ["name", "kind", "active"] and len(lines[0]) == 9
    row = next(r for r in lines[1:] if r[0] == name)
    assert row[1] == "ncii" and row[-1] == description.replace("\t", " ")
    assert "…" not in out.stdout and "│" not in out.stdout
