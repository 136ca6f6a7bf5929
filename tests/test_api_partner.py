"""HTTP API behaviour: the ``partner`` role, weak-hash warnings, consistent media errors, rate
limits on every media route, and authentication before the request body is read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import _free_port
from consentry.config import Settings
from consentry.db.models import ROLES
from consentry.keys import KeyStore
from consentry.web.app import create_app
from imagegen import encode, scene

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5_A = "9e107d9d372bb6826bd81d3542a419d6"
MD5_B = "0" * 31 + "b"


@pytest.fixture
def make_client(db, tmp_path):
    apps = []

    def make(**settings):
        app = create_app(Settings(home=tmp_path, **settings), db, background=False)
        apps.append(app)
        return TestClient(app, raise_server_exceptions=False)

    yield make
    for app in apps:
        app.state.consentry.match_log.close()


@pytest.fixture
def keys(db):
    store = KeyStore(db)
    return {role: store.create(role, f"test {role}")[0] for role in ROLES}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def flat_png() -> bytes:
    """A benign uniform grey square: its PDQ quality is 0."""
    return encode(Image.new("RGB", (128, 128), (128, 128, 128)), "PNG")


# ------------------------------------------------------------------ 12.7 partner role
def _two_banks(client, cur):
    """``pub`` is published to partners, ``priv`` is not; both hold the same hashes."""
    client.post("/v1/banks", json={"name": "pub", "kind": "ncii", "shared": True}, headers=cur)
    client.post("/v1/banks", json={"name": "priv", "kind": "ncii", "description": "internal: helpline X"},
                headers=cur)
    ids = {}
    for bank in ("pub", "priv"):
        for st, value in (("pdq", PDQ_A), ("md5", MD5_A)):
            r = client.post(f"/v1/banks/{bank}/entries", headers=cur, json={
                "signal_type": st, "value": value, "quality": 90 if st == "pdq" else None,
                "source": "helpline-intake", "external_ids": ["TICKET-77"], "tags": ["case-secret"],
                "category": "internal-cat"})
            assert r.status_code == 201, r.text
            ids[(bank, st)] = r.json()["entry"]["id"]
    return ids


def test_partner_sees_only_published_banks_without_provenance(make_client, keys):
    client = make_client()
    cur, mat, par = auth(keys["curator"]), auth(keys["matcher"]), auth(keys["partner"])
    ids = _two_banks(client, cur)

    # the platform's own upload path (matcher) sees every bank and the provenance
    full = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=mat).json()
    assert {m["bank"] for m in full["matches"]} == {"pub", "priv"}
    assert full["matches"][0]["provenance"]["tags"] == ["case-secret"]

    for params in ({"signal_type": "pdq", "value": PDQ_A}, {"signal_type": "md5", "value": MD5_A}):
        r = client.get("/v1/match", params=params, headers=par)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [m["bank"] for m in body["matches"]] == ["pub"]
        assert body["matches"][0]["entry_id"] == ids[("pub", params["signal_type"])]  # as in /v1/changes
        assert body["verdict"]["decision"] == "block"
        text = r.text
        for secret in ("priv", "case-secret", "TICKET-77", "helpline-intake", "internal-cat", "key:",
                       "helpline X", f'"entry_id":{ids[("priv", params["signal_type"])]},'):
            assert secret not in text, secret
        prov = body["matches"][0]["provenance"]
        assert prov["tags"] == [] and prov["external_ids"] == [] and prov["added_by"] is None

    # an unpublished bank does not exist for a partner, even by name
    r = client.get("/v1/match", params={"signal_type": "md5", "value": MD5_A, "bank": "priv"}, headers=par)
    assert r.status_code == 404 and r.json()["detail"] == "no bank named 'priv'"
    assert client.get("/v1/match", params={"signal_type": "md5", "value": MD5_A, "bank": "pub"},
                      headers=par).json()["matches"][0]["bank"] == "pub"

    # uploads too
    png = encode(scene(200, 150, seed=3), "PNG")
    import hashlib

    md5 = hashlib.md5(png).hexdigest()
    client.post("/v1/banks/priv/entries", json={"signal_type": "md5", "value": md5}, headers=cur)
    r = client.post("/v1/match", files={"file": ("x.png", png)}, headers=par)
    assert r.status_code == 200 and r.json()["matches"] == [] and r.json()["verdict"]["decision"] == "no_match"
    assert [m["bank"] for m in client.post("/v1/match", files={"file": ("x.png", png)},
                                            headers=mat).json()["matches"]] == ["priv"]

    # an unpublished allow bank neither shows nor suppresses anything for a partner
    client.post("/v1/banks", json={"name": "ok", "kind": "allow"}, headers=cur)
    client.post("/v1/banks/ok/entries", json={"signal_type": "md5", "value": MD5_A}, headers=cur)
    assert client.get("/v1/match", params={"signal_type": "md5", "value": MD5_A},
                      headers=mat).json()["allowed_by"][0]["bank"] == "ok"
    body = client.get("/v1/match", params={"signal_type": "md5", "value": MD5_A}, headers=par).json()
    assert [m["bank"] for m in body["matches"]] == ["pub"] and body["allowed_by"] == [] and body["suppressed"] == []

    # un-publishing takes effect at once
    client.patch("/v1/banks/pub", json={"shared": False}, headers=cur)
    assert client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=par).json()["matches"] == []


def test_partner_lookups_run_no_hub_actions_and_hide_rule_names(make_client, keys):
    """A partner's query is another organisation's content: no review case, no vault copy, no
    webhook on the hub, and the hub's rule names stay internal."""
    client = make_client()
    cur, mat, par = auth(keys["curator"]), auth(keys["matcher"]), auth(keys["partner"])
    _two_banks(client, cur)
    mod = auth(keys["moderator"])
    body = client.get("/v1/match", params={"signal_type": "md5", "value": MD5_A}, headers=par).json()
    assert body["verdict"]["decision"] == "block" and body["verdict"]["rules"] == []
    assert body["verdict"]["reasons"] == ["matched ncii bank 'pub'"]
    # the platform's own path opens a case (in the background): wait for it, then count
    own = client.get("/v1/match", params={"signal_type": "pdq", "value": PDQ_A}, headers=mat).json()
    assert own["verdict"]["rules"], own["verdict"]
    deadline, cases = time.time() + 15, []
    while time.time() < deadline:
        cases = client.get("/v1/cases", headers=mod).json()["cases"]
        if cases:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    cases = client.get("/v1/cases", headers=mod).json()["cases"]
    assert len(cases) == 1, cases
    detail = client.get(f"/v1/cases/{cases[0]['id']}", headers=mod).json()
    assert "pdq" in json.dumps(detail) and MD5_A not in json.dumps(detail.get("items", []))


def test_partner_may_tail_changes_and_send_feedback_but_nothing_else(make_client, keys):
    client = make_client()
    cur, par, mat = auth(keys["curator"]), auth(keys["partner"]), auth(keys["matcher"])
    ids = _two_banks(client, cur)
    for key in (par, mat):  # matcher keys issued to partners before the role existed keep working
        rows = client.get("/v1/changes", headers=key).json()["changes"]
        assert {r["bank"] for r in rows} == {"pub"}, rows
        r = client.post("/v1/feedback", json={"items": [{"status": "blocked", "signal_type": "pdq", "value": PDQ_A}]},
                        headers=key)
        assert r.status_code == 200, r.text
    for method, url, kw in (
        ("post", "/v1/hash", {"files": {"file": ("x.png", flat_png())}}),
        ("post", "/v1/analyze", {"files": {"file": ("x.png", flat_png())}}),
        ("get", "/v1/banks", {}),
        ("get", "/v1/banks/pub", {}),
        ("get", f"/v1/banks/pub/entries/{ids[('pub', 'pdq')]}", {}),
        ("post", "/v1/banks/pub/entries", {"json": {"signal_type": "md5", "value": MD5_B}}),
        ("get", "/v1/banks/pub/export?format=te", {}),
        ("post", "/v1/cases", {"data": {"md5": MD5_B}}),
        ("get", "/v1/cases", {}),
        ("get", "/v1/audit", {}),
    ):
        r = getattr(client, method)(url, headers=par, **kw)
        assert r.status_code == 403, (url, r.status_code, r.text)


def test_keys_create_role_partner_on_the_command_line(tmp_path):
    env = dict(os.environ, CONSENTRY_HOME=str(tmp_path / "home"))
    env.pop("DATABASE_URL", None)
    run = lambda *a: subprocess.run([sys.executable, "-m", "consentry", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=300)
    created = run("keys", "create", "--role", "partner", "--name", "platform X")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("cst_")
    listed = [json.loads(x) for x in run("keys", "list").stdout.splitlines() if x.strip()]
    assert listed[0]["role"] == "partner"


# ------------------------------------------------------------------ 11.11 warnings
def test_weak_hashes_warn_on_every_route(make_client, keys):
    client = make_client()
    cur, mat = auth(keys["curator"]), auth(keys["matcher"])
    client.post("/v1/banks", json={"name": "b", "kind": "ncii"}, headers=cur)
    flat, good = flat_png(), encode(scene(240, 180, seed=5), "PNG")

    r = client.post("/v1/hash", files={"file": ("flat.png", flat)}, headers=mat)
    assert r.status_code == 200 and r.json()["pdq_quality"] < 50
    (w,) = r.json()["warnings"]
    assert w["code"] == "low-quality-pdq" and "below 50" in w["message"] and set(w) == {"code", "message"}
    assert client.post("/v1/hash", files={"file": ("ok.png", good)}, headers=mat).json()["warnings"] == []

    r = client.post("/v1/banks/b/entries/file", files={"file": ("flat.png", flat)}, headers=cur)
    assert r.status_code == 201 and [w["code"] for w in r.json()["warnings"]] == ["low-quality-pdq"]
    assert "not used to match" in r.json()["warnings"][0]["message"]
    r = client.post("/v1/banks/b/entries/file", files={"file": ("ok.png", good)}, headers=cur)
    assert r.status_code == 201 and r.json()["warnings"] == []

    r = client.post("/v1/banks/b/entries", json={"signal_type": "pdq", "value": PDQ_A, "quality": 12}, headers=cur)
    assert r.status_code == 201 and r.json()["warnings"][0]["code"] == "low-quality-pdq"
    assert "12" in r.json()["warnings"][0]["message"]
    for body in ({"signal_type": "pdq", "value": PDQ_A[::-1], "quality": 90}, {"signal_type": "md5", "value": MD5_B}):
        assert client.post("/v1/banks/b/entries", json=body, headers=cur).json()["warnings"] == []
    weak_video = [f"{PDQ_A},10,{t}.0" for t in range(3)]
    r = client.post("/v1/banks/b/entries", json={"signal_type": "vpdq", "value": weak_video}, headers=cur)
    assert r.status_code == 201 and r.json()["warnings"][0]["code"] == "no-usable-vpdq-frames"

    # a low-quality query says why it found nothing by PDQ
    r = client.post("/v1/match", files={"file": ("flat2.png", encode(Image.new("RGB", (90, 90), (40, 40, 40)), "PNG"))},
                    headers=mat)
    assert r.status_code == 200 and r.json()["verdict"]["decision"] == "no_match"
    assert [w["code"] for w in r.json()["warnings"]] == ["low-quality-pdq"]
    assert "exact hashes" in r.json()["warnings"][0]["message"]
    r = client.post("/v1/match", files={"file": ("ok.png", good)}, headers=mat)
    assert r.status_code == 200 and r.json()["warnings"] == []
    r = client.get("/v1/match", params={"signal_type": "vpdq", "value": json.dumps(weak_video)}, headers=mat)
    assert r.status_code == 200 and r.json()["warnings"][0]["code"] == "no-usable-vpdq-frames"
    assert client.get("/v1/match", params={"signal_type": "md5", "value": MD5_B},
                      headers=mat).json()["warnings"] == []


def test_victim_submission_warns_about_weak_hashes(make_client):
    client = make_client()
    items = [{"kind": "photo", "pdq": PDQ_A, "pdq_quality": 90, "md5": MD5_A},
             {"kind": "photo", "pdq": PDQ_A[::-1], "pdq_quality": 7, "md5": MD5_B}]
    r = client.post("/v1/victim/cases", json={"version": 1, "items": items, "pin": "lighthouse-42",
                                              "depicted_adult": True})
    assert r.status_code == 201, r.text
    (w,) = r.json()["warnings"]
    assert w["code"] == "low-quality-pdq" and w["message"].startswith("item 2: PDQ quality 7 ")


# ------------------------------------------------------------------ 11.12 consistent media errors
def test_media_routes_agree_on_unsupported_and_broken_media(make_client, keys):
    client = make_client()
    cur, mat = auth(keys["curator"]), auth(keys["matcher"])
    client.post("/v1/banks", json={"name": "b"}, headers=cur)
    text = ("notes.txt", b"just some plain text, not a picture\n" * 4, "text/plain")
    broken = ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "image/png")
    for route in ("/v1/match", "/v1/hash", "/v1/analyze", "/v1/banks/b/entries/file"):
        for upload, kind in ((text, "unsupported"), (broken, "broken")):
            headers = cur if "banks" in route else mat
            r = client.post(route, files={"file": upload}, headers=headers)
            assert r.status_code == 422, (route, kind, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("/bad-media") and r.json()["detail"], (route, r.json())
            if kind == "unsupported":
                assert "unsupported" in r.json()["detail"]


def test_add_by_file_takes_tags_from_form_fields_and_query(make_client, keys):
    client = make_client()
    cur = auth(keys["curator"])
    client.post("/v1/banks", json={"name": "b"}, headers=cur)
    png = encode(scene(120, 90, seed=8), "PNG")
    r = client.post("/v1/banks/b/entries/file", params={"tag": "from-query"}, headers=cur,
                    files={"file": ("a.png", png)}, data={"tags": ["one, two", "three"]})
    assert r.status_code == 201, r.text
    assert {tuple(e["tags"]) for e in r.json()["entries"]} == {("from-query", "one", "two", "three")}
    png2 = encode(scene(120, 90, seed=9), "PNG")
    r = client.post("/v1/banks/b/entries/file", headers=cur, files={"file": ("b.png", png2)},
                    data={"tags": "solo"})
    assert {tuple(e["tags"]) for e in r.json()["entries"]} == {("solo",)}


def test_bad_hash_messages_use_the_right_article(make_client, keys):
    client = make_client()
    r = client.get("/v1/match", params={"signal_type": "md5", "value": "zz"}, headers=auth(keys["matcher"]))
    assert r.status_code == 422 and r.json()["detail"].startswith("not an MD5 (32 hex characters)")
    r = client.get("/v1/match", params={"signal_type": "sha256", "value": "zz"}, headers=auth(keys["matcher"]))
    assert r.json()["detail"].startswith("not a SHA256")
    from consentry.errors import article

    assert [article(w) for w in ("MD5", "PDQ hash", "SHA1", "ncii", "ai-abuse", "custom", "csam", "allow")] == \
        ["an", "a", "a", "an", "an", "a", "a", "an"]


# ------------------------------------------------------------------ 12.4 rate limits
@pytest.mark.parametrize("route", ["/v1/hash", "/v1/analyze"])
def test_hash_and_analyze_are_rate_limited_per_key(make_client, keys, route):
    client = make_client(match_rate_limit=1.0)
    png = encode(scene(64, 48, seed=1), "PNG")
    codes = [client.post(route, files={"file": ("a.png", png)}, headers=auth(keys["matcher"])).status_code
             for _ in range(5)]
    assert codes[0] == 200 and 429 in codes, codes
    r = client.post(route, files={"file": ("a.png", png)}, headers=auth(keys["matcher"]))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
    # per key: another key is not limited by the first one's requests
    assert client.post(route, files={"file": ("a.png", png)}, headers=auth(keys["curator"])).status_code == 200


# ------------------------------------------------------------------ 12.9 auth before the body
def test_key_is_verified_once_and_public_routes_stay_open(make_client, keys):
    client = make_client()
    store = client.app.state.keys
    calls = []
    real = store.verify
    store.verify = lambda token: calls.append(token) or real(token)
    r = client.post("/v1/hash", files={"file": ("a.png", encode(scene(64, 48), "PNG"))}, headers=auth(keys["matcher"]))
    assert r.status_code == 200 and len(calls) == 1
    # wrong role: still a 403 from the route (the key itself is fine)
    assert client.post("/v1/hash", files={"file": ("a.png", b"x")}, headers=auth(keys["auditor"])).status_code == 403
    # public victim routes are not behind the key check
    r = client.post("/v1/victim/cases/AAAA-AAAA-AAAA-AAAA-AAAA/status", json={"pin": "lighthouse-42"})
    assert r.status_code != 401


def _raw_request(port: int, head: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode("latin-1"))  # headers only: the promised body never comes
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_end = data.index(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in data[:head_end].split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(data) < head_end + 4 + length:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data[head_end + 4:], time.monotonic() - start


def test_anonymous_upload_is_refused_before_its_body_is_read(tmp_path):
    import uvicorn

    from consentry.db import open_database

    settings = Settings(home=tmp_path)
    db = open_database(settings)
    key, _ = KeyStore(db).create("matcher", "t")
    app = create_app(settings, db, background=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        big = 150 * 1024 * 1024  # under the 200 MiB upload limit: only authentication can refuse it
        for path, extra in (("/v1/match", ""), ("/v1/hash", ""), ("/v1/banks/x/entries/file", ""),
                            ("/v1/hash", "Authorization: Bearer cst_not-a-real-key\r\n")):
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
                    f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {big}\r\n\r\n")
            status, body, elapsed = _raw_request(port, head)
            assert status == 401, (path, status, body)
            problem = json.loads(body)
            assert problem["status"] == 401 and problem["type"].endswith("/unauthenticated")
            assert elapsed < 5
        # with a key, the same request is read as usual (here: a small, valid upload)
        boundary = "xyz"
        part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode()
        part += encode(scene(64, 48), "PNG") + f"\r\n--{boundary}--\r\n".encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall((f"POST /v1/hash HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(part)}\r\n"
                       "Connection: close\r\n\r\n").encode() + part)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.consentry.match_log.close()
        db.dispose()
