"""Hub and partner as two real uvicorn processes on loopback, each with its own home: a victim's
submission reaches the partner within one `exchange pull`, a withdrawal removes it at the next
pull, and the partner's feedback shows in the victim's case status (counts only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from conftest import _free_port, make_key, wait_ready

PIN = "harbour-lights-7"


def _env(home) -> dict:
    env = dict(os.environ, CONSENTRY_HOME=str(home), CONSENTRY_INDEX_REFRESH_SECONDS="0.1",
               CONSENTRY_EXCHANGE_PULL_SECONDS="0")
    env.pop("DATABASE_URL", None)
    return env


def _start(home, port, log):
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "consentry.web.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info"],
        env=_env(home), stdout=log, stderr=subprocess.STDOUT)


def _cli(home, *args, stdin=None):
    r = subprocess.run([sys.executable, "-m", "consentry", *args], env=_env(home), input=stdin,
                       capture_output=True, text=True, timeout=120)
    return r


def _until(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_submit_pull_match_feedback_withdraw_pull_no_match(tmp_path, testvectors):
    from consentry.config import MediaLimits
    from consentry.hashing import hash_path

    photo = testvectors / "pdq" / "bridge-mods" / "aaa-orig.jpg"
    edited = testvectors / "pdq" / "bridge-mods" / "shrink-a-little.jpg"
    hashed = hash_path(photo, MediaLimits())
    hub_home, partner_home = tmp_path / "hub", tmp_path / "partner"
    partner_on_hub = make_key(hub_home, "partner")  # the hub operator gives the platform a partner key
    partner_admin = make_key(partner_home, "admin")
    hub_port, partner_port = _free_port(), _free_port()
    hub, partner = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{partner_port}"
    hub_log = open(tmp_path / "hub.log", "w+")
    partner_log = open(tmp_path / "partner.log", "w")
    procs = [_start(hub_home, hub_port, hub_log), _start(partner_home, partner_port, partner_log)]
    try:
        wait_ready(hub, procs[0])
        wait_ready(partner, procs[1])
        # 1. the victim submits hashes only (as the page does)
        r = httpx.post(hub + "/v1/victim/cases", json={
            "version": 1, "depicted_adult": True, "pin": PIN,
            "items": [{"kind": "photo", "md5": hashed.md5, "pdq": hashed.pdq, "pdq_quality": hashed.pdq_quality}]})
        assert r.status_code == 201, r.text
        case = r.json()["case_number"]

        # 2. the platform subscribes and pulls once
        r = _cli(partner_home, "exchange", "add", "--type", "consentry-hub", "--url", hub, "--key", partner_on_hub,
                 "--name", "helpline")
        assert r.returncode == 0, r.stderr
        assert partner_on_hub not in r.stdout
        listed = _cli(partner_home, "exchange", "list")
        assert partner_on_hub not in listed.stdout and json.loads(listed.stdout)["cursor"] == 0
        r = _cli(partner_home, "exchange", "pull")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["added"] == 2 and report["cursor_to"] > 0
        assert case not in r.stdout

        auth = {"Authorization": f"Bearer {partner_admin}"}

        def partner_matches(path) -> list:
            with open(path, "rb") as fh:
                resp = httpx.post(partner + "/v1/match", files={"file": ("x.jpg", fh)}, headers=auth)
            assert resp.status_code == 200, resp.text
            return [m for m in resp.json()["matches"] if m["bank"] == "helpline"]

        assert _until(lambda: len(partner_matches(photo)) == 2)  # md5 and PDQ
        near = partner_matches(edited)
        assert [m["signal_type"] for m in near] == ["pdq"] and 0 < near[0]["distance"] <= 31
        assert partner_matches(photo)[0]["provenance"]["source"] == "exchange:helpline"

        # a second pull from the checkpoint brings nothing new
        again = json.loads(_cli(partner_home, "exchange", "pull", "helpline").stdout)
        assert again["changes"] == 0 and again["cursor_from"] == report["cursor_to"]

        # 3. the platform reports what it did; the victim sees counts only
        r = _cli(partner_home, "exchange", "feedback", "helpline", "--status", "blocked", "--pdq", hashed.pdq)
        assert r.returncode == 0 and json.loads(r.stdout) == {"accepted": 1, "unknown": 0}, r.stderr
        st = httpx.post(f"{hub}/v1/victim/cases/{case}/status", json={"pin": PIN}).json()
        assert st["matched"] == 1 and st["feedback"]["blocked"] == 1 and st["active"] == 2

        # 4. the victim withdraws; after the next pull the partner no longer matches
        st = httpx.post(f"{hub}/v1/victim/cases/{case}/withdraw", json={"pin": PIN}).json()
        assert st["status"] == "withdrawn" and st["active"] == 0
        assert partner_matches(photo)  # nothing changes at the partner before it pulls
        r = _cli(partner_home, "exchange", "pull")
        assert json.loads(r.stdout)["removed"] == 2
        assert _until(lambda: partner_matches(photo) == [])
        assert partner_matches(edited) == []
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
    # the key is stored encrypted, and no log line links an address to the case number
    raw = (partner_home / "consentry.db").read_bytes()
    assert partner_on_hub.encode() not in raw
    hub_log.seek(0)
    log = hub_log.read()
    assert "/v1/victim/cases" in log  # the access log is on...
    assert case not in log and case.replace("-", "") not in log and PIN not in log
    victim_lines = [line for line in log.splitlines() if "/v1/victim/" in line]
    assert victim_lines and not any("127.0.0.1" in line for line in victim_lines)
