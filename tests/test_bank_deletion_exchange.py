"""Issue 23.2: deleting a published bank on the hub withdraws its entries on every subscribed
partner at the next pull (also when the bank was un-published before it was deleted); a bank that
was never published stays invisible to partners, its deletion included. Hub and partner are two
real uvicorn processes, as in test_exchange_hub.py. Hashes only: no media at all."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import _free_port, make_key, wait_ready
from test_exchange_hub import _cli, _start, _until

PDQ_GONE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_KEPT = "07070f311f0b57b0f9c8f5ddfc709c0f4c91d12a699de1e2cc194c63b16364dd"  # every bit flipped
MD5_GONE = "0123456789abcdef0123456789abcdef"
MD5_QUIET = "fedcba9876543210fedcba9876543210"
MD5_LATE = "00112233445566778899aabbccddeeff"


@pytest.mark.slow
def test_hub_bank_deletion_withdraws_its_entries_on_the_partner(tmp_path):
    hub_home, partner_home = tmp_path / "hub", tmp_path / "partner"
    hub_admin = make_key(hub_home, "admin")
    partner_on_hub = make_key(hub_home, "partner")
    partner_admin = make_key(partner_home, "admin")
    hub_port, partner_port = _free_port(), _free_port()
    hub, partner = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{partner_port}"
    procs = [_start(hub_home, hub_port, open(tmp_path / "hub.log", "w")),
             _start(partner_home, partner_port, open(tmp_path / "partner.log", "w"))]
    h = {"Authorization": f"Bearer {hub_admin}"}
    try:
        wait_ready(hub, procs[0])
        wait_ready(partner, procs[1])

        def bank(name: str, shared: bool, *entries: tuple[str, str]) -> None:
            r = httpx.post(hub + "/v1/banks", json={"name": name, "kind": "ncii", "shared": shared}, headers=h)
            assert r.status_code == 201, r.text
            for st, value in entries:
                r = httpx.post(f"{hub}/v1/banks/{name}/entries", json={"signal_type": st, "value": value}, headers=h)
                assert r.status_code == 201, r.text

        bank("gone", True, ("pdq", PDQ_GONE), ("md5", MD5_GONE))
        bank("kept", True, ("pdq", PDQ_KEPT))
        bank("quiet", True, ("md5", MD5_QUIET))

        assert _cli(partner_home, "exchange", "add", "--type", "consentry-hub", "--url", hub, "--key",
                    partner_on_hub, "--name", "helpline").returncode == 0
        first = json.loads(_cli(partner_home, "exchange", "pull").stdout)
        assert first["added"] == 4, first

        auth = {"Authorization": f"Bearer {partner_admin}"}

        def partner_has(st: str, value: str) -> bool:
            r = httpx.get(partner + "/v1/match", params={"signal_type": st, "value": value}, headers=auth)
            assert r.status_code == 200, r.text
            return any(m["bank"] == "helpline" for m in r.json()["matches"])

        assert _until(lambda: partner_has("pdq", PDQ_GONE) and partner_has("md5", MD5_QUIET))

        # "quiet" is un-published: what is added afterwards never reaches the partner ...
        assert httpx.patch(hub + "/v1/banks/quiet", json={"shared": False}, headers=h).status_code == 200
        assert httpx.post(hub + "/v1/banks/quiet/entries", json={"signal_type": "md5", "value": MD5_LATE},
                          headers=h).status_code == 201
        # ... but its deletion does, like that of the published "gone"; a never-published bank's does not
        bank("private", False, ("md5", MD5_LATE))
        for name in ("gone", "quiet", "private"):
            assert httpx.delete(f"{hub}/v1/banks/{name}", headers=h).status_code == 200

        seen = httpx.get(hub + "/v1/changes", params={"cursor": first["cursor_to"], "published": "true"},
                         headers={"Authorization": f"Bearer {partner_on_hub}"}).json()["changes"]
        assert [c["op"] for c in seen] == ["bank_deleted", "bank_deleted"]  # gone and quiet, not private

        second = json.loads(_cli(partner_home, "exchange", "pull").stdout)
        assert second["removed"] == 3 and second["added"] == 0 and not second["errors"], second
        assert _until(lambda: not partner_has("pdq", PDQ_GONE))
        assert not partner_has("md5", MD5_GONE) and not partner_has("md5", MD5_QUIET)
        assert not partner_has("md5", MD5_LATE)
        assert partner_has("pdq", PDQ_KEPT)  # the other published bank is untouched
        # the withdrawals are on the partner's own change log (its workers and partners follow)
        ops = [c["op"] for c in httpx.get(partner + "/v1/changes", params={"cursor": 0, "limit": 10_000},
                                          headers=auth).json()["changes"]]
        assert ops.count("withdraw") == 3
        # pulling again changes nothing
        third = json.loads(_cli(partner_home, "exchange", "pull").stdout)
        assert third["changes"] == 0 and third["removed"] == 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
